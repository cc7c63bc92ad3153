// Hostile input to the etcpipe binary, as an outside tester tried it: each
// case a reproducer from the report, now a clear error with the documented
// exit code (2 usage, 4 I/O, 5 malformed data) instead of a crash, a hang,
// exit 0 with the output lost, or a misleading hint. Inputs are made here.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/common/shell.hpp"

namespace fs = std::filesystem;

namespace {

using namespace etcpipe::testing;

std::string tmp(const std::string& name) {
    return "/tmp/etcpipe-hostile-" + std::to_string(getpid()) + "-" + name;
}

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << bytes;
}

void put_le32(std::string& s, uint32_t v) {
    for (int i = 0; i < 4; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

// A classic pcap of one 60-byte frame with the given link type.
std::string pcap_with_linktype(uint32_t linktype) {
    std::string s;
    put_le32(s, 0xa1b2c3d4);
    put_le32(s, 0x00040002);  // version 2.4
    put_le32(s, 0);
    put_le32(s, 0);
    put_le32(s, 65535);
    put_le32(s, linktype);
    put_le32(s, 1);  // ts sec
    put_le32(s, 0);
    put_le32(s, 60);
    put_le32(s, 60);
    s += std::string(60, '\x45');
    return s;
}

class Hostile : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!fs::exists(etcpipe_bin())) GTEST_SKIP() << etcpipe_bin() << " not built (run make)";
    }
    struct Case {
        std::string args;
        int status;
        std::string needle;  // must appear in stderr
    };
    void run_cases(const std::vector<Case>& cases) {
        for (const auto& c : cases) {
            auto r = sh("timeout 20 " + etcpipe_bin() + " " + c.args);
            EXPECT_EQ(r.status, c.status) << c.args << "\n" << r.err;
            EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
            EXPECT_LT(r.err.size(), 2000u) << c.args << ": stderr echoes too much";
        }
    }
};

TEST_F(Hostile, NumericOptionsOutOfRangeExitTwo) {
    const std::string cap = "testdata/ndpi/pcap/http_ipv6.pcap";
    run_cases({
        {"features " + cap + " --threads -1", 2, "negative"},
        {"features " + cap + " --threads 100000", 2, "maximum"},
        {"features " + cap + " --batch 99999999999999999999", 2, "out of range"},
        {"run lo -d -1", 2, "negative"},
        {"run lo -d nan", 2, "not a number"},
        {"run lo -d inf", 2, "out of range"},
        {"run lo -d 1e308", 2, "maximum"},
        {"run lo -d 1e309", 2, "out of range"},
        {"anova bench --windows 100000000000", 2, "maximum"},
        {"anova bench --windows -1", 2, "negative"},
        {"replay " + cap + " -c +-5", 2, "not a whole number"},
        {"load lo --delivery inline --ringbuf-kib 1", 2, "--ringbuf-kib"},
        {"load lo --ringbuf-kib 99999999", 2, "--ringbuf-kib"},
    });
    // No bench topology was left behind by the refused bench.
    auto ns = sh("ip netns list");
    EXPECT_EQ(ns.out.find("etcan"), std::string::npos) << ns.out;
}

TEST_F(Hostile, SeriesValuesAndLines) {
    const std::string s = tmp("series.txt");
    write_file(s, "1\n2\n+-5\n");
    const std::string big = tmp("big.txt");
    write_file(big, "1\n" + std::string(10 << 20, '7') + "x\n");
    const std::string huge = tmp("huge.txt");
    write_file(huge, "1\n1e309\n");
    const std::string nanv = tmp("nan.txt");
    write_file(nanv, "1\nnan\n");
    const std::string csv = tmp("s.csv");
    write_file(csv, "a,b\n1,2\n3,4\n");
    run_cases({
        {"anova split " + s, 5, "line 3: not a number: '+-5'"},
        {"anova split " + big, 5, "longer than"},
        {"anova split " + huge, 5, "out of range"},
        {"anova split " + nanv, 5, "not a finite number"},
        {"anova split " + csv + " --column 9", 2, "no column '9'"},
        {"anova split /dev/zero", 5, "longer than"},
    });
    for (const auto& f : {s, big, huge, nanv, csv}) unlink(f.c_str());
}

TEST_F(Hostile, EndlessInputsFailFast) {
    run_cases({
        {"replay /dev/zero", 5, "not a pcap or pcapng file"},
        {"features /dev/zero -o " + tmp("zero-ds"), 5, "not a pcap or pcapng file"},
    });
}

TEST_F(Hostile, FailedWritesExitFourNamingTheTarget) {
    const std::string cap = "testdata/ndpi/pcap/http_ipv6.pcap";
    if (!fs::exists(cap)) GTEST_SKIP() << cap << " missing (make testdata)";
    run_cases({
        {"replay " + cap + " -o /dev/full", 4, "/dev/full"},
        {"replay " + cap + " -o - >/dev/full", 4, "stdout"},
        {"anova split testdata/anova/osh_000001SZ_daily.txt >/dev/full", 4, "stdout"},
        {"classify " + cap + " -m models/etc_app.onnx -o - >/dev/full", 4, "stdout"},
        {"classify " + cap + " -m models/etc_app.onnx -o /dev/full", 4, "/dev/full"},
    });
}

TEST_F(Hostile, UnsupportedLinkTypeIsAnError) {
    const std::string cap = tmp("user0.pcap");
    write_file(cap, pcap_with_linktype(147));  // LINKTYPE_USER0
    run_cases({
        {"replay " + cap, 5, "link type 147"},
        {"features " + cap + " -o " + tmp("user0-ds"), 5, "link type 147"},
        {"classify " + cap + " -m models/etc_app.onnx -q", 5, "link type 147"},
    });
    unlink(cap.c_str());
    fs::remove_all(tmp("user0-ds"));
}

// Checked before anything is attached: nothing lands on lo.
TEST_F(Hostile, LiveTargetsValidatedBeforeTheRun) {
    if (geteuid() != 0) GTEST_SKIP() << "run and load need root";
    const std::string file = tmp("existing");
    write_file(file, "x");
    run_cases({
        {"run lo -d 1 -o " + file, 4, "not a directory"},
        {"run lo -d 1 -o " + tmp("ds") + " --ready-file /nonexistent/x", 4, "/nonexistent/x"},
        {"load lo -p /nonexistent/etcpipe", 2, "neither it nor its parent"},
        {"load lo -p /tmp/etcpipe-pins", 2, "not on a bpffs mount"},
    });
    auto st = sh(etcpipe_bin() + " status lo");
    EXPECT_EQ(st.out.find("xdp_flowmgr"), std::string::npos) << st.out;
    unlink(file.c_str());
    fs::remove_all(tmp("ds"));
}

}  // namespace

namespace {

// Each command with one needed capability dropped names exactly that one
// (setpriv from util-linux: root with a reduced bounding set).
TEST_F(Hostile, MissingCapabilitiesAreNamed) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to drop capabilities";
    if (sh("command -v setpriv").status != 0) GTEST_SKIP() << "setpriv missing";
    const std::string cap = "testdata/ndpi/pcap/http_ipv6.pcap";
    if (!fs::exists(cap)) GTEST_SKIP() << cap << " missing (make testdata)";
    struct CapCase {
        std::string args;
        std::vector<std::string> needs;
    };
    const std::vector<CapCase> cases = {
        {"replay " + cap + " -q", {"bpf", "net_admin", "perfmon"}},
        {"load etcpipe-nosuch0", {"bpf", "net_admin", "perfmon"}},
        {"run etcpipe-nosuch0 -d 1", {"bpf", "net_admin", "perfmon", "net_raw"}},
    };
    for (const auto& c : cases) {
        for (size_t drop = 0; drop < c.needs.size(); ++drop) {
            std::string keep;
            for (size_t i = 0; i < c.needs.size(); ++i)
                if (i != drop) keep += ",+" + c.needs[i];
            auto r = sh("setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all" + keep + " " +
                        etcpipe_bin() + " " + c.args);
            std::string upper = "CAP_" + c.needs[drop];
            for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            EXPECT_EQ(r.status, 2) << c.args << " without " << upper << "\n" << r.err;
            EXPECT_NE(r.err.find("missing " + upper), std::string::npos) << c.args << "\n" << r.err;
        }
    }
    // With all of them replay runs.
    auto ok = sh("setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,+bpf,+net_admin,+perfmon " +
                 etcpipe_bin() + " replay " + cap + " -q");
    EXPECT_EQ(ok.status, 0) << ok.err;
}

}  // namespace
