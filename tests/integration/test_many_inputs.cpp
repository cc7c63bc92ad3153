// `features` and `classify` over many captures in one process: the output
// equals the per-capture runs (flow for flow, byte for byte), does not depend
// on --jobs, skips what is no capture, and names a failing capture while
// the others go on. Inputs: real nDPI captures (linked into a directory the
// test makes) and one corrupt capture the test writes itself.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "common/pcap.hpp"
#include "tests/common/shell.hpp"

namespace fs = std::filesystem;

namespace {

using namespace etcpipe::testing;

const char* const kModel = "models/etc_app.onnx";
const char* const kSpec = "payload:10x256,sizes:10,iat:10";

std::string read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// The lines of a many-captures JSON Lines output that belong to `capture`.
std::vector<std::string> lines_for(const std::vector<std::string>& all, const std::string& capture) {
    std::vector<std::string> out;
    const std::string key = "{\"capture\":\"" + capture + "\",";
    for (const std::string& l : all)
        if (l.rfind(key, 0) == 0) out.push_back(l);
    return out;
}

// The data of a .npy file (after its header, whatever the header's padding).
std::string npy_data(const std::string& path) {
    const std::string b = read_all(path);
    if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) return "<not npy: " + path + ">";
    const size_t hlen = static_cast<uint8_t>(b[8]) | (static_cast<size_t>(static_cast<uint8_t>(b[9])) << 8);
    return b.substr(10 + hlen);
}

// A flows.csv line without its first (row) and, when present, capture column.
std::string csv_flow(const std::string& line, bool has_capture) {
    std::string s = line.substr(line.find(',') + 1);
    if (has_capture) s = s.substr(0, s.rfind(','));
    return s;
}

class ManyInputs : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!fs::exists(etcpipe_bin())) GTEST_SKIP() << etcpipe_bin() << " not built (run make)";
        for (const char* name : {"http_ipv6.pcap", "skype_udp.pcap", "quic.pcap", "dns_dot.pcap",
                                 "tls_torrent.pcapng", "signal.pcap", "teredo.pcap"}) {
            const fs::path p = fs::path("testdata/ndpi/pcap") / name;
            if (fs::exists(p)) real_.push_back(p);
        }
        if (real_.size() < 4) GTEST_SKIP() << "testdata/ndpi/pcap missing (make testdata)";
        dir_ = "/tmp/etcpipe-many-" + std::to_string(getpid());
        fs::remove_all(dir_);
        fs::create_directories(dir_ + "/sub/deeper");
        // Spread over nested directories: the walk is recursive and sorted.
        for (size_t i = 0; i < real_.size(); ++i) {
            const std::string where = i % 3 == 0 ? dir_ : i % 3 == 1 ? dir_ + "/sub" : dir_ + "/sub/deeper";
            const std::string link = where + "/" + real_[i].filename().string();
            fs::create_symlink(fs::absolute(real_[i]), link);
            captures_.push_back(link);
        }
        std::ofstream(dir_ + "/README.txt") << "not a capture\n";
        std::ofstream(dir_ + "/sub/notes.pcap") << "named like one, but no magic\n";
        // A classic pcap whose first record claims 2 GiB: corrupt at byte 24.
        corrupt_ = dir_ + "/sub/corrupt.pcap";
        std::ofstream c(corrupt_, std::ios::binary);
        const uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
        const uint32_t rec[4] = {0, 0, 0x7fffffff, 0x7fffffff};
        c.write(reinterpret_cast<const char*>(hdr), sizeof hdr);
        c.write(reinterpret_cast<const char*>(rec), sizeof rec);
        c.close();
        captures_.push_back(corrupt_);
        std::sort(captures_.begin(), captures_.end());
    }
    void TearDown() override {
        if (!dir_.empty()) fs::remove_all(dir_);
    }

    std::vector<fs::path> real_;
    std::vector<std::string> captures_;  // what the walk should find, sorted
    std::string dir_, corrupt_;
};

TEST_F(ManyInputs, ClassifyEqualsPerCaptureRunsWhateverJobs) {
    const std::string base = etcpipe_bin() + " classify " + dir_ + " -m " + kModel + " --device cpu -q";
    auto one = sh(base + " --jobs 1");
    auto two = sh(base + " --jobs 2");
    auto four = sh(base + " --jobs 4 --threads 1");
    // The corrupt capture: exit 5, named, the others classified.
    EXPECT_EQ(one.status, 5) << one.err;
    EXPECT_NE(one.err.find(corrupt_ + ": read capture: corrupt record"), std::string::npos) << one.err;
    EXPECT_EQ(one.out, two.out);
    EXPECT_EQ(one.out, four.out);

    const std::vector<std::string> all = lines_of(one.out);
    size_t expected = 0;
    for (const std::string& cap : captures_) {
        if (cap == corrupt_) continue;
        auto single = sh(etcpipe_bin() + " classify " + cap + " -m " + kModel + " --device cpu -q");
        ASSERT_EQ(single.status, 0) << cap << "\n" << single.err;
        const std::vector<std::string> mine = lines_of(single.out);
        EXPECT_EQ(lines_for(all, cap), mine) << cap;
        EXPECT_FALSE(mine.empty()) << cap;
        expected += mine.size();
    }
    EXPECT_EQ(all.size(), expected);
    // In input (sorted path) order: each capture's lines are contiguous.
    std::string last;
    size_t changes = 0;
    for (const std::string& l : all) {
        const std::string cap = l.substr(0, l.find("\",\"flow\""));
        if (cap != last) {
            ++changes;
            EXPECT_LT(last, cap);
        }
        last = cap;
    }
    EXPECT_EQ(changes, captures_.size() - 1);

    // Without -q: the skipped files are counted and the failure summed up.
    auto loud = sh(etcpipe_bin() + " classify " + dir_ + " -m " + kModel + " --device cpu -o /dev/null");
    EXPECT_EQ(loud.status, 5);
    EXPECT_NE(loud.err.find("2 files skipped (no pcap/pcapng magic)"), std::string::npos) << loud.err;
    EXPECT_NE(loud.err.find("1 of " + std::to_string(captures_.size()) + " captures failed"), std::string::npos)
        << loud.err;
    // A file and a directory together; a missing path is an error up front.
    auto mixed = sh(etcpipe_bin() + " classify " + real_[0].string() + " " + dir_ + "/sub/deeper -m " + kModel +
                    " --device cpu -q");
    EXPECT_EQ(mixed.status, 0) << mixed.err;
    auto missing = sh(etcpipe_bin() + " classify " + dir_ + "/nosuch -m " + kModel + " -q");
    EXPECT_EQ(missing.status, 4) << missing.err;
    EXPECT_NE(missing.err.find("nosuch"), std::string::npos) << missing.err;
}

TEST_F(ManyInputs, FeaturesIsOneDatasetEqualToThePerCaptureOnes) {
    const std::string ds1 = dir_ + "-ds1", ds2 = dir_ + "-ds2";
    auto a = sh(etcpipe_bin() + " features " + dir_ + " -o " + ds1 + " --features " + kSpec +
                " --device cpu -q --jobs 1");
    auto b = sh(etcpipe_bin() + " features " + dir_ + " -o " + ds2 + " --features " + kSpec +
                " --device cpu -q --jobs 2");
    EXPECT_EQ(a.status, 5) << a.err;
    EXPECT_EQ(b.status, 5) << b.err;
    EXPECT_NE(a.err.find(corrupt_), std::string::npos) << a.err;
    const char* const files[] = {"payload_10x256.npy", "sizes_10.npy", "iat_10.npy", "flows.csv"};
    for (const char* f : files) EXPECT_EQ(read_all(ds1 + "/" + f), read_all(ds2 + "/" + f)) << f;

    // Concatenating the per-capture datasets gives the same rows.
    std::vector<std::string> data(3);
    std::vector<std::string> flows;
    for (const std::string& cap : captures_) {
        if (cap == corrupt_) continue;
        const std::string one = dir_ + "-one";
        fs::remove_all(one);
        auto r = sh(etcpipe_bin() + " features " + cap + " -o " + one + " --features " + kSpec + " --device cpu -q");
        ASSERT_EQ(r.status, 0) << cap << "\n" << r.err;
        for (size_t f = 0; f < 3; ++f) data[f] += npy_data(one + "/" + files[f]);
        const auto csv = lines_of(read_all(one + "/flows.csv"));
        ASSERT_FALSE(csv.empty());
        EXPECT_EQ(csv[0], "row,proto,src,sport,dst,dport,vlan0,vlan1,first_ns,packets,selected,capture");
        for (size_t i = 1; i < csv.size(); ++i) {
            EXPECT_EQ(csv[i].substr(csv[i].rfind(',') + 1), cap);
            flows.push_back(csv_flow(csv[i], true) + "," + cap);
        }
        fs::remove_all(one);
    }
    for (size_t f = 0; f < 3; ++f) EXPECT_EQ(npy_data(ds1 + "/" + files[f]), data[f]) << files[f];
    const auto csv = lines_of(read_all(ds1 + "/flows.csv"));
    ASSERT_EQ(csv.size(), flows.size() + 1);
    for (size_t i = 1; i < csv.size(); ++i) {
        EXPECT_EQ(csv[i].substr(0, csv[i].find(',')), std::to_string(i - 1)) << "rows numbered across captures";
        EXPECT_EQ(csv_flow(csv[i], true) + csv[i].substr(csv[i].rfind(',')), flows[i - 1]);
    }
    // numpy reads the patched headers (when python3-numpy is there).
    if (sh("/usr/bin/python3 -c 'import numpy'").status == 0) {
        auto np = sh("/usr/bin/python3 -c \"import numpy as n; a=n.load('" + ds1 +
                     "/payload_10x256.npy'); b=n.load('" + ds1 + "/sizes_10.npy'); print(a.shape, b.shape)\"");
        EXPECT_EQ(np.status, 0) << np.err;
        EXPECT_EQ(np.out, "(" + std::to_string(flows.size()) + ", 10, 256) (" + std::to_string(flows.size()) +
                              ", 10)\n");
    }
    fs::remove_all(ds1);
    fs::remove_all(ds2);
}

}  // namespace

namespace {

using namespace etcpipe::testing;

// Every frame of a pcap, as bytes.
std::vector<std::string> frames_of(const std::string& path) {
    std::vector<std::string> out;
    auto reader = etcpipe::pcap::Reader::open(path);
    if (!reader) return out;
    etcpipe::pcap::Frame f;
    for (;;) {
        auto more = reader->next(f);
        if (!more || !*more) break;
        out.emplace_back(reinterpret_cast<const char*>(f.data.data()), f.data.size());
    }
    return out;
}

TEST_F(ManyInputs, ReplayLoadsOnceAndEqualsPerCaptureRuns) {
    if (geteuid() != 0) GTEST_SKIP() << "BPF_PROG_TEST_RUN needs root";
    const std::string sel = dir_ + "-sel.pcap";
    auto one = sh(etcpipe_bin() + " replay " + dir_ + " -q --jobs 1 --snap 128 -w " + sel);
    auto two = sh(etcpipe_bin() + " replay " + dir_ + " -q --jobs 2 --snap 128");
    EXPECT_EQ(one.status, 5) << one.err;
    EXPECT_NE(one.err.find(corrupt_), std::string::npos) << one.err;
    EXPECT_EQ(one.out, two.out);
    const std::vector<std::string> all = lines_of(one.out);
    size_t expected = 0;
    std::vector<std::string> selected_whole;  // per-capture runs' selected frames, in order
    size_t longer_than_snap = 0;
    for (const std::string& cap : captures_) {
        if (cap == corrupt_) continue;
        const std::string mine_pcap = dir_ + "-mine.pcap";
        auto single = sh(etcpipe_bin() + " replay " + cap + " -q --snap 128 -w " + mine_pcap);
        ASSERT_EQ(single.status, 0) << cap << "\n" << single.err;
        const std::vector<std::string> mine = lines_of(single.out);
        EXPECT_EQ(lines_for(all, cap), mine) << cap;
        expected += mine.size();
        // Selected frames are whole: each is a frame of the capture, byte for byte.
        const std::vector<std::string> src = frames_of(cap);
        for (const std::string& f : frames_of(mine_pcap)) {
            selected_whole.push_back(f);
            if (f.size() > 128) ++longer_than_snap;
            EXPECT_NE(std::find(src.begin(), src.end(), f), src.end()) << cap << ": a selected frame was cut";
        }
        unlink(mine_pcap.c_str());
    }
    EXPECT_EQ(all.size(), expected);
    EXPECT_GT(longer_than_snap, 0u) << "no selected frame longer than --snap: the test shows nothing";
    EXPECT_EQ(frames_of(sel), selected_whole) << "one pcap over all captures, in input order";
    unlink(sel.c_str());
}

}  // namespace
