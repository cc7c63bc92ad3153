// The etcpipe binary end to end: exit codes and messages for bad input, and
// load/status/unload on a veth pair inside a network namespace this test
// creates (and removes), with bounded UDP traffic between the two ends.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <tuple>

#include "common/netns.hpp"
#include "common/pcap.hpp"
#include "tests/common/shell.hpp"

namespace fs = std::filesystem;

namespace {

using namespace etcpipe::testing;

std::string tmpfile(const std::string& name) {
    return "/tmp/etcpipe-cli-" + std::to_string(getpid()) + "-" + name;
}

size_t count_lines(const std::string& s) {
    return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

std::string first_capture() {
    // A small real capture from the fetched nDPI set.
    const fs::path p = "testdata/ndpi/pcap/http_ipv6.pcap";
    return fs::exists(p) ? p.string() : "";
}

class Cli : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!fs::exists(etcpipe_bin())) GTEST_SKIP() << etcpipe_bin() << " not built (run make)";
    }
};

TEST_F(Cli, HelpAndVersion) {
    auto h = sh(etcpipe_bin() + " --help");
    EXPECT_EQ(h.status, 0);
    for (const char* cmd : {"load", "unload", "status", "replay", "version"})
        EXPECT_NE(h.out.find(cmd), std::string::npos) << cmd;
    auto v = sh(etcpipe_bin() + " version");
    EXPECT_EQ(v.status, 0);
    EXPECT_NE(v.out.find("libbpf v1."), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("libxdp "), std::string::npos) << v.out;
}

TEST_F(Cli, UsageErrorsExitTwo) {
    struct Case {
        std::string args;
        std::string needle;  // must appear in stderr
    };
    const Case cases[] = {
        {"", "subcommand"},
        {"load", "IFACE"},
        {"load etcpipe-nosuch0", "etcpipe-nosuch0"},
        {"load lo --packets 0", "--packets"},
        {"load lo --protocols tcp,bogus", "bogus"},
        {"load lo --ports 70000", "70000"},
        {"load lo --allow 10.0.0.0/33", "10.0.0.0/33"},
        {"load lo --mode warp", "warp"},
        {"replay x.pcap --snap 5000", "--snap"},
        {"frobnicate", "frobnicate"},
    };
    for (const auto& c : cases) {
        auto r = sh(etcpipe_bin() + " " + c.args);
        EXPECT_EQ(r.status, 2) << c.args << "\n" << r.err;
        EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
    }
}

TEST_F(Cli, ReplayIoAndDataErrors) {
    auto missing = sh(etcpipe_bin() + " replay /nonexistent/etcpipe.pcap");
    EXPECT_EQ(missing.status, 4) << missing.err;
    EXPECT_NE(missing.err.find("/nonexistent/etcpipe.pcap"), std::string::npos) << missing.err;

    const std::string garbage = tmpfile("garbage.pcap");
    {
        std::ofstream g(garbage, std::ios::binary);
        g << "this is not a capture, just some text of sufficient length";
    }
    auto bad = sh(etcpipe_bin() + " replay " + garbage);
    EXPECT_EQ(bad.status, 5) << bad.err;
    EXPECT_NE(bad.err.find(garbage), std::string::npos) << bad.err;
    unlink(garbage.c_str());

    const std::string empty = tmpfile("empty.pcap");
    { std::ofstream e(empty); }
    auto emp = sh(etcpipe_bin() + " replay " + empty);
    EXPECT_EQ(emp.status, 5) << emp.err;
    unlink(empty.c_str());
}

TEST_F(Cli, ReplayTruncatedCaptureReportsWhatWasReadThenTheOffset) {
    const std::string src = first_capture();
    if (src.empty()) GTEST_SKIP() << "testdata/ndpi missing (make testdata)";
    const auto size = fs::file_size(src);
    const std::string cut = tmpfile("cut.pcap");
    fs::copy_file(src, cut, fs::copy_options::overwrite_existing);
    fs::resize_file(cut, size * 2 / 3);  // mid-record, almost surely

    auto full = sh(etcpipe_bin() + " replay -q " + src);
    ASSERT_EQ(full.status, 0) << full.err;
    auto r = sh(etcpipe_bin() + " replay " + cut);
    EXPECT_EQ(r.status, 5) << r.err;
    EXPECT_NE(r.err.find("byte"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("frames read"), std::string::npos) << r.err;
    // The flows of the readable part were printed before the error.
    EXPECT_GT(count_lines(r.out), 0u);
    EXPECT_LE(count_lines(r.out), count_lines(full.out));
    unlink(cut.c_str());
}

TEST_F(Cli, ReplayPkttagPrintsPacketsFlowsAndNoMismatch) {
    const std::string src = first_capture();
    if (src.empty()) GTEST_SKIP() << "testdata/ndpi missing (make testdata)";
    if (geteuid() != 0) GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root";
    for (const char* variant : {"meta", "dscp"}) {
        auto r = sh(etcpipe_bin() + " replay --prog pkttag --pkttag-variant " + variant + " --features " + src);
        ASSERT_EQ(r.status, 0) << variant << ": " << r.err;
        size_t packets = 0, flows = 0, with_x = 0;
        std::istringstream in(r.out);
        std::string line;
        while (std::getline(in, line)) {
            packets += line.find("\"type\":\"packet\"") != std::string::npos;
            flows += line.find("\"type\":\"flow\"") != std::string::npos;
            with_x += line.find("\"x\":[") != std::string::npos;
            EXPECT_EQ(line.find("\"reference\""), std::string::npos) << line;
        }
        EXPECT_GT(packets, 0u);
        EXPECT_GT(flows, 0u);
        EXPECT_GT(with_x, 0u);
        EXPECT_NE(r.err.find(" 0 tags differing from the reference"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("flows by majority tag:"), std::string::npos) << r.err;
    }
    auto t = sh(etcpipe_bin() + " replay --prog pkttag -t -q " + src);
    ASSERT_EQ(t.status, 0) << t.err;
    EXPECT_NE(t.out.find("majority"), std::string::npos) << t.out;
}

TEST_F(Cli, ReplayWritesFlowsAndSelectedPackets) {
    const std::string src = first_capture();
    if (src.empty()) GTEST_SKIP() << "testdata/ndpi missing (make testdata)";
    if (geteuid() != 0) GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root";
    const std::string json = tmpfile("flows.jsonl"), sel = tmpfile("sel.pcap");
    auto r = sh(etcpipe_bin() + " replay -q -o " + json + " -w " + sel + " " + src);
    ASSERT_EQ(r.status, 0) << r.err;

    std::ifstream in(json);
    std::string line;
    uint64_t selected_sum = 0, flows = 0;
    const std::regex sel_re("\"selected\":([0-9]+)");
    while (std::getline(in, line)) {
        ++flows;
        EXPECT_EQ(line.front(), '{');
        EXPECT_EQ(line.back(), '}');
        std::smatch m;
        ASSERT_TRUE(std::regex_search(line, m, sel_re)) << line;
        selected_sum += std::stoull(m[1]);
    }
    EXPECT_GT(flows, 0u);

    auto reader = etcpipe::pcap::Reader::open(sel);
    ASSERT_TRUE(reader) << reader.error().message();
    etcpipe::pcap::Frame f;
    uint64_t frames = 0;
    while (true) {
        auto more = reader->next(f);
        ASSERT_TRUE(more) << more.error().message();
        if (!*more) break;
        ++frames;
        EXPECT_EQ(f.linktype, etcpipe::pcap::kLinktypeEthernet);
    }
    EXPECT_EQ(frames, selected_sum) << "every selected packet (per the JSON) is in the pcap";
    unlink(json.c_str());
    unlink(sel.c_str());
}

TEST_F(Cli, CheckNfpVerdictsAndExitCodes) {
    const std::string b = build_dir();
    // Both ANOVA objects (u32 and f64 encodings) in one call.
    auto ok = sh(etcpipe_bin() + " check --target nfp " + b + "/bpf/anova.bpf.o " + b +
                 "/bpf/anova_f64.bpf.o");
    EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
    EXPECT_NE(ok.out.find("NFP instructions (estimate)"), std::string::npos) << ok.out;
    EXPECT_NE(ok.out.find("verdict: offloadable"), std::string::npos) << ok.out;
    EXPECT_NE(ok.out.find("anova_f64.bpf.o"), std::string::npos) << ok.out;
    auto bad = sh(etcpipe_bin() + " check --target nfp " + b + "/bpf/flowmgr.bpf.o");
    EXPECT_EQ(bad.status, 1) << bad.out;
    EXPECT_NE(bad.out.find("[map-type]"), std::string::npos) << bad.out;
    auto missing = sh(etcpipe_bin() + " check --target nfp /nonexistent.bpf.o");
    EXPECT_EQ(missing.status, 4) << missing.err;
    auto target = sh(etcpipe_bin() + " check --target tpu " + b + "/bpf/anova.bpf.o");
    EXPECT_EQ(target.status, 2) << target.err;
}

TEST_F(Cli, AnovaSplitGoldenAndPlot) {
    if (geteuid() != 0) GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root";
    const std::string svg = tmpfile("osh.svg");
    auto r = sh(etcpipe_bin() + " anova split testdata/anova/osh_000001SZ_daily.txt --plot " + svg);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("splits: 748 of 3239 windows"), std::string::npos);
    EXPECT_TRUE(fs::exists(svg) && fs::file_size(svg) > 1000);
    unlink(svg.c_str());
    auto col = sh(etcpipe_bin() + " anova split testdata/anova/EuStockMarkets.csv --column nosuch");
    EXPECT_NE(col.status, 0);
    EXPECT_NE(col.err.find("nosuch"), std::string::npos) << col.err;
}

// ---- live attach in a network namespace ------------------------------------

class NetnsVeth : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!fs::exists(etcpipe_bin())) GTEST_SKIP() << etcpipe_bin() << " not built";
        if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces and XDP";
        // Two hosts: "a" sends from veth-a, "b" runs the FlowManager on veth-b.
        ns_a_ = "etcpipe-test-a-" + std::to_string(getpid());
        ns_ = "etcpipe-test-b-" + std::to_string(getpid());
        // A private bpffs for the pins: `ip netns exec` would give every command
        // its own /sys, and pins made there would vanish with the command.
        pin_root_ = "/tmp/etcpipe-bpffs-" + std::to_string(getpid());
        pin_ = pin_root_ + "/etcpipe";
        // Static neighbours and no IPv6: no ARP/ND in the counted traffic.
        etcpipe::VethPairSpec spec;
        spec.ns_a = ns_a_;
        spec.ns_b = ns_;
        spec.veth_a = "veth-a";
        spec.veth_b = "veth-b";
        spec.mac_a = "02:77:00:00:00:01";
        spec.mac_b = "02:77:00:00:00:02";
        spec.addr_a = "10.77.0.1/24";
        spec.addr_b = "10.77.0.2/24";
        spec.static_neighbours = true;
        auto net = etcpipe::NetnsPair::create(spec);
        if (!net) GTEST_SKIP() << "cannot create netns/veth: " << net.error().message();
        net_ = std::move(*net);
        auto r = sh("mkdir -p " + pin_root_ + " && mount -t bpf bpf " + pin_root_);
        created_ = true;
        if (r.status != 0) {
            TearDown();
            created_ = false;
            GTEST_SKIP() << "cannot create bpffs: " << r.err;
        }
    }
    void TearDown() override {
        net_.reset();
        if (!created_) return;
        sh("umount " + pin_root_ + " && rmdir " + pin_root_);
    }

    // The etcpipe binary in host b's network namespace (only the network
    // namespace: bpffs and /sys stay the test's own).
    CmdResult in_ns(const std::string& args) {
        return sh("nsenter --net=/run/netns/" + ns_ + " " + etcpipe_bin() + " " + args);
    }

    // Sends `count` UDP datagrams veth-a → veth-b from inside the namespace.
    void send_udp(int count, size_t payload) {
        int sent = 0;
        auto in_a = etcpipe::in_netns(ns_a_, [&]() -> etcpipe::Result<void> {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            sockaddr_in src{}, dst{};
            src.sin_family = dst.sin_family = AF_INET;
            src.sin_port = htons(4444);
            dst.sin_port = htons(5555);
            inet_pton(AF_INET, "10.77.0.1", &src.sin_addr);
            inet_pton(AF_INET, "10.77.0.2", &dst.sin_addr);
            const bool bound = s >= 0 && bind(s, reinterpret_cast<sockaddr*>(&src), sizeof(src)) == 0;
            std::string data(payload, 'x');
            for (int i = 0; bound && i < count; ++i)  // bounded: count datagrams, no retries
                if (sendto(s, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&dst),
                           sizeof(dst)) == static_cast<ssize_t>(data.size()))
                    ++sent;
            if (s >= 0) close(s);
            return {};
        });
        ASSERT_TRUE(in_a.ok()) << in_a.error().message();
        EXPECT_EQ(sent, count);
        usleep(100 * 1000);  // let veth's NAPI run the receive side
    }

    static uint64_t counter(const std::string& status, const std::string& name) {
        std::smatch m;
        if (!std::regex_search(status, m, std::regex("\\n\\s+" + name + "\\s+([0-9]+)"))) return 0;
        return std::stoull(m[1]);
    }

    std::string ns_a_, ns_, pin_root_, pin_;
    std::optional<etcpipe::NetnsPair> net_;
    bool created_ = false;
};

TEST_F(NetnsVeth, LoadStatusUnloadWithLiveTraffic) {
    for (const char* mode : {"native", "skb"}) {
        SCOPED_TRACE(mode);
        auto load = in_ns(std::string("load veth-b --mode ") + mode + " -N 3 -p " + pin_);
        ASSERT_EQ(load.status, 0) << load.err;
        EXPECT_NE(load.out.find("FlowManager attached"), std::string::npos) << load.out;
        EXPECT_TRUE(fs::exists(pin_ + "/etc_counters"));
        EXPECT_TRUE(fs::exists(pin_ + "/etc_flows4"));
        EXPECT_TRUE(fs::exists(pin_ + "/etc_flows"));

        // A second load on the same interface and mode fails or stacks through
        // libxdp; either way the first program stays. We only load once here.
        send_udp(8, 64);

        auto st = in_ns("status veth-b");
        ASSERT_EQ(st.status, 0) << st.err;
        EXPECT_NE(st.out.find("xdp_flowmgr"), std::string::npos) << st.out;
        EXPECT_NE(st.out.find("N=3"), std::string::npos) << st.out;
        EXPECT_GE(counter(st.out, "rx"), 8u) << st.out;
        EXPECT_EQ(counter(st.out, "selected"), 3u) << st.out;      // first N of the one flow
        EXPECT_EQ(counter(st.out, "skip_beyond_n"), 5u) << st.out;  // the other 5
        EXPECT_EQ(counter(st.out, "xsk_no_socket"), 3u) << st.out;  // tap, no AF_XDP socket
        EXPECT_EQ(counter(st.out, "flow_new"), 1u) << st.out;

        auto all = in_ns("status");
        EXPECT_EQ(all.status, 0);
        EXPECT_NE(all.out.find("veth-b"), std::string::npos) << all.out;

        auto un = in_ns("unload veth-b -p " + pin_);
        EXPECT_EQ(un.status, 0) << un.err;
        EXPECT_FALSE(fs::exists(pin_ + "/etc_counters"));
        EXPECT_FALSE(fs::exists(pin_ + "/etc_flows4"));
        EXPECT_FALSE(fs::exists(pin_ + "/etc_flows"));
        auto after = in_ns("status veth-b");
        EXPECT_EQ(after.status, 0);
        EXPECT_EQ(after.out.find("xdp_flowmgr"), std::string::npos) << after.out;

        auto again = in_ns("unload veth-b");
        EXPECT_EQ(again.status, 3) << again.err;  // nothing to detach: a BPF/XDP error
        EXPECT_NE(again.err.find("veth-b"), std::string::npos) << again.err;
    }
}

TEST_F(NetnsVeth, AnovaLoadStatusUnload) {
    auto load = in_ns("load veth-b --prog anova --reply tx --port 9999");
    ASSERT_EQ(load.status, 0) << load.err;
    EXPECT_NE(load.out.find("ANOVA program attached"), std::string::npos) << load.out;
    auto st = in_ns("status veth-b");
    EXPECT_NE(st.out.find("xdp_anova"), std::string::npos) << st.out;
    EXPECT_NE(st.out.find("udp/9999  reply=tx"), std::string::npos) << st.out;
    auto un = in_ns("unload veth-b");
    EXPECT_EQ(un.status, 0) << un.err;
    auto after = in_ns("status veth-b");
    EXPECT_EQ(after.out.find("xdp_anova"), std::string::npos) << after.out;
}

// The stateless in-NIC programs: load, status names them as etcpipe's, unload.
TEST_F(NetnsVeth, NicnnAndPkttagLoadStatusUnload) {
    for (const auto& [prog, name, said] : {std::tuple{"nicnn", "xdp_nicnn", "digit CNN attached"},
                                           std::tuple{"pkttag", "xdp_pkttag", "per-packet tagger attached"}}) {
        auto load = in_ns(std::string("load veth-b --prog ") + prog);
        ASSERT_EQ(load.status, 0) << prog << ": " << load.err;
        EXPECT_NE(load.out.find(said), std::string::npos) << load.out;
        auto st = in_ns("status veth-b");
        EXPECT_NE(st.out.find(name), std::string::npos) << st.out;
        EXPECT_NE(st.out.find("stateless"), std::string::npos) << st.out;  // described as ours
        auto un = in_ns("unload veth-b");
        EXPECT_EQ(un.status, 0) << un.err;
        auto after = in_ns("status veth-b");
        EXPECT_EQ(after.out.find(name), std::string::npos) << after.out;
    }
}

TEST_F(NetnsVeth, HwModeIsRefusedWithAReason) {
    auto r = in_ns("load veth-b --mode hw");
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("offload"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--mode native"), std::string::npos) << r.err;
}

}  // namespace
