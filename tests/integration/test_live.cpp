// `etcpipe run` end to end on a veth pair between two network namespaces the
// test creates and removes: real nDPI captures are sent into one end
// (`etcpipe send`, AF_PACKET, bounded and paced), `etcpipe run` captures on
// the other in native and skb XDP mode, and the flows and feature bytes it
// writes must equal `etcpipe features --select flowmgr` on the same capture
// (iat excepted: live it is arrival time, not capture time). Also: counters
// add up, the `ip link … sec xdp` + --attach-existing path, and that killing
// the process leaves no program attached unless pinned.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/netns.hpp"
#include "gpu/features.hpp"
#include "tests/common/shell.hpp"

namespace fs = std::filesystem;

namespace {

using Cmd = etcpipe::testing::CmdResult;
using etcpipe::testing::build_dir;
using etcpipe::testing::etcpipe_bin;
using etcpipe::testing::sh;

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

uint64_t counter(const std::string& text, const std::string& name) {
    std::smatch m;
    if (!std::regex_search(text, m, std::regex("(^|\\n)\\s+" + name + "\\s+([0-9]+)"))) return 0;
    return std::stoull(m[2]);
}

// ---- reading what `features` and `run -o DIR` write -------------------------

struct Npy {
    std::vector<size_t> shape;
    size_t elem = 1;
    std::string data;
    size_t row_bytes() const {
        size_t b = elem;
        for (size_t i = 1; i < shape.size(); ++i) b *= shape[i];
        return b;
    }
};

Npy read_npy(const std::string& path) {
    Npy n;
    const std::string s = slurp(path);
    if (s.size() < 10 || s.compare(0, 6, "\x93NUMPY") != 0) return n;
    const size_t hlen = static_cast<uint8_t>(s[8]) | (static_cast<size_t>(static_cast<uint8_t>(s[9])) << 8);
    const std::string h = s.substr(10, hlen);
    n.elem = h.find("u1") != std::string::npos ? 1 : h.find("i4") != std::string::npos ? 4 : 8;
    const size_t a = h.find('('), b = h.find(')');
    std::stringstream dims(h.substr(a + 1, b - a - 1));
    std::string d;
    while (std::getline(dims, d, ','))
        if (d.find_first_of("0123456789") != std::string::npos) n.shape.push_back(std::stoul(d));
    n.data = s.substr(10 + hlen);
    return n;
}

// Flows of one output directory: flow key → feature bytes per feature, and
// the selected count.
struct FlowData {
    uint32_t selected = 0;
    std::map<std::string, std::string> rows;  // feature file stem → row bytes
};
using FlowSet = std::map<std::string, FlowData>;

const std::vector<std::string> kCompared = {"payload_10x128", "packet_10x64", "sizes_10"};

// Reads DIR (features) or DIR/part-*/ (run) into one set.
FlowSet read_flows(const std::string& dir) {
    FlowSet set;
    std::vector<std::string> parts;
    if (fs::exists(dir + "/flows.csv")) parts.push_back(dir);
    else
        for (const auto& e : fs::directory_iterator(dir))
            if (e.is_directory()) parts.push_back(e.path().string());
    std::sort(parts.begin(), parts.end());
    for (const auto& part : parts) {
        std::ifstream csv(part + "/flows.csv");
        std::string line;
        std::getline(csv, line);  // header
        std::vector<std::pair<std::string, uint32_t>> keys;
        while (std::getline(csv, line)) {
            std::vector<std::string> c;
            std::stringstream ss(line);
            std::string f;
            while (std::getline(ss, f, ',')) c.push_back(f);
            if (c.size() < 11) continue;
            // proto,src,sport,dst,dport,vlan0,vlan1 (first_ns and packets differ by design)
            keys.emplace_back(c[1] + "|" + c[2] + "|" + c[3] + "|" + c[4] + "|" + c[5] + "|" + c[6] + "|" + c[7],
                              static_cast<uint32_t>(std::stoul(c[10])));
        }
        std::map<std::string, Npy> feats;
        for (const auto& name : kCompared) feats[name] = read_npy(part + "/" + name + ".npy");
        const Npy iat = read_npy(part + "/iat_10.npy");
        for (size_t r = 0; r < keys.size(); ++r) {
            FlowData& fd = set[keys[r].first];
            fd.selected = keys[r].second;
            for (const auto& [name, npy] : feats) {
                const size_t rb = npy.row_bytes();
                if ((r + 1) * rb <= npy.data.size()) fd.rows[name] = npy.data.substr(r * rb, rb);
            }
            // iat: live arrival times, so only its shape is checked: 0 first,
            // never negative on one queue.
            if ((r + 1) * 80 <= iat.data.size()) {
                std::array<int64_t, 10> v;
                std::memcpy(v.data(), iat.data.data() + r * 80, 80);
                fd.rows["iat_ok"] = (v[0] == 0 && std::all_of(v.begin(), v.end(), [](int64_t x) { return x >= 0; }))
                                        ? "ok" : "bad";
            }
        }
    }
    return set;
}

constexpr const char* kSpec = "payload:10x128,packet:10x64,sizes:10,iat:10";

// Real captures whose frames all fit a 1500-byte MTU (sent as they are).
const std::vector<std::string> kCaptures = {
    "quic.pcap", "tls_verylong_certificate.pcap", "signal.pcap", "dns_doh.pcap", "ssh.pcap",
    "android.pcap",
};

class LiveVeth : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!fs::exists(etcpipe_bin())) GTEST_SKIP() << etcpipe_bin() << " not built";
        if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces, XDP and AF_XDP";
        if (!fs::exists("testdata/ndpi/pcap/quic.pcap")) GTEST_SKIP() << "testdata/ndpi missing (make testdata)";
        const std::string id = std::to_string(getpid());
        ns_a_ = "etcpipe-live-a-" + id;
        ns_b_ = "etcpipe-live-b-" + id;
        tmp_ = "/tmp/etcpipe-live-" + id;
        // IPv6 off before the links exist: no ND/MLD in the counted traffic.
        etcpipe::VethPairSpec spec;
        spec.ns_a = ns_a_;
        spec.ns_b = ns_b_;
        spec.veth_a = "veth-a";
        spec.veth_b = "veth-b";
        auto net = etcpipe::NetnsPair::create(spec);
        if (!net) GTEST_SKIP() << "cannot create netns/veth: " << net.error().message();
        net_ = std::move(*net);
        auto r = sh("mkdir -p " + tmp_);
        created_ = true;
        if (r.status != 0) {
            TearDown();
            created_ = false;
            GTEST_SKIP() << "cannot create " << tmp_ << ": " << r.err;
        }
    }
    void TearDown() override {
        net_.reset();
        if (!created_) return;
        sh("rm -rf " + tmp_);
    }

    std::string in_b(const std::string& cmd) const { return "nsenter --net=/run/netns/" + ns_b_ + " " + cmd; }
    std::string in_a(const std::string& cmd) const { return "nsenter --net=/run/netns/" + ns_a_ + " " + cmd; }

    // `etcpipe run` in the background in namespace b; returns its pid once
    // its sockets are bound (or -1).
    pid_t start_run(const std::string& args, const std::string& tag, bool own_group = false) {
        const std::string ready = tmp_ + "/" + tag + ".ready";
        const std::string err = tmp_ + "/" + tag + ".err";
        unlink(ready.c_str());
        const pid_t pid = fork();
        if (pid == 0) {
            // own_group: the run leads a process group of its own (as under a
            // service manager), so the test can kill that whole group.
            if (own_group) setpgid(0, 0);
            const std::string cmd = "exec " + in_b(etcpipe_bin() + " run veth-b --ready-file " + ready + " " + args) +
                                    " >" + tmp_ + "/" + tag + ".out 2>" + err;
            execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        for (int i = 0; i < 100; ++i) {  // bounded: 10 s
            if (fs::exists(ready) && fs::file_size(ready) > 0) return pid;
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) return -1;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        return -1;
    }

    // Signals the run and waits (bounded) for it; returns the exit status.
    int stop_run(pid_t pid, int sig) {
        kill(pid, sig);
        for (int i = 0; i < 200; ++i) {  // bounded: 20 s
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        return -1;
    }

    uint64_t send(const std::string& capture) {
        auto s = sh(in_a(etcpipe_bin() + " send testdata/ndpi/pcap/" + capture + " veth-a --max-seconds 20"));
        EXPECT_EQ(s.status, 0) << s.err;
        std::smatch m;
        const std::regex sent(": ([0-9]+) frames, ([0-9]+) sent");
        if (!std::regex_search(s.out, m, sent)) {
            ADD_FAILURE() << s.out;
            return 0;
        }
        EXPECT_EQ(m[1], m[2]) << "every frame must be sendable for the comparison: " << s.out;
        return std::stoull(m[2]);
    }

    // One capture through `run` (extra args) vs `features --select flowmgr`.
    void check_capture(const std::string& capture, const std::string& run_args, const std::string& tag) {
        SCOPED_TRACE(capture + " " + run_args);
        const std::string live = tmp_ + "/" + tag + "-live", ref = tmp_ + "/" + tag + "-ref";
        // An already attached program (--attach-existing) has counted before:
        // the kernel counters are compared as differences.
        const std::string before = sh(in_b(etcpipe_bin() + " status veth-b")).out;
        auto kcounter = [&](const std::string& text, const std::string& n) {
            return counter(text, n) - counter(before, n);
        };
        const std::string device = run_args.find("--device") == std::string::npos ? " --device cpu " : " ";
        const pid_t pid = start_run("-o " + live + " --features " + kSpec + device + run_args, tag);
        ASSERT_GT(pid, 0) << slurp(tmp_ + "/" + tag + ".err");
        const uint64_t sent = send(capture);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let NAPI and the poll loop drain
        ASSERT_EQ(stop_run(pid, SIGINT), 0) << slurp(tmp_ + "/" + tag + ".err");
        const std::string err = slurp(tmp_ + "/" + tag + ".err");

        auto r = sh(etcpipe_bin() + " features testdata/ndpi/pcap/" + capture + " -o " + ref +
                    " --select flowmgr --device cpu -q --features " + kSpec);
        ASSERT_EQ(r.status, 0) << r.err;

        // Counters add up: everything sent was seen; seen = selected + not
        // selected + filtered + parse failures; verdicts likewise; every
        // selected packet reached user space and was taken into a flow.
        const uint64_t rx = kcounter(err, "rx");
        EXPECT_EQ(rx, sent) << err;
        uint64_t parse = 0;
        for (const char* n : {"parse_trunc_eth", "parse_trunc_vlan", "parse_vlan_depth", "parse_not_ip",
                              "parse_trunc_ipv4", "parse_bad_ipv4", "parse_trunc_ipv6", "parse_bad_ipv6",
                              "parse_trunc_ipv6_ext", "parse_ipv6_ext_depth", "parse_fragment",
                              "parse_trunc_tcp", "parse_bad_tcp", "parse_trunc_udp"})
            parse += kcounter(err, n);
        const uint64_t selected = kcounter(err, "selected");
        EXPECT_EQ(rx, selected + kcounter(err, "not_selected") + kcounter(err, "filtered") + parse) << err;
        EXPECT_EQ(rx, kcounter(err, "verdict_pass") + kcounter(err, "verdict_drop") +
                          kcounter(err, "verdict_redirect") + kcounter(err, "verdict_aborted"))
            << err;
        const uint64_t delivered = counter(err, "xsk_rx") + counter(err, "ring_rx");
        const uint64_t lost = counter(err, "xsk_rx_dropped") + counter(err, "xsk_rx_ring_full") +
                              counter(err, "xsk_fill_empty") + kcounter(err, "ringbuf_full");
        EXPECT_EQ(selected, delivered + lost + kcounter(err, "xsk_no_socket")) << err;
        EXPECT_EQ(kcounter(err, "xsk_no_socket"), 0u) << err;
        EXPECT_EQ(lost, 0u) << err;
        EXPECT_EQ(delivered, counter(err, "accepted") + counter(err, "no_meta") + counter(err, "beyond_h") +
                                 counter(err, "pending_full"))
            << err;
        EXPECT_EQ(counter(err, "no_meta"), 0u) << err;

        const FlowSet a = read_flows(live), b = read_flows(ref);
        EXPECT_GT(b.size(), 0u);
        EXPECT_EQ(a.size(), b.size());
        EXPECT_EQ(counter(err, "flows_complete") + counter(err, "flows_partial"), a.size()) << err;
        size_t equal = 0;
        for (const auto& [key, ref_flow] : b) {
            auto it = a.find(key);
            if (it == a.end()) {
                ADD_FAILURE() << "flow missing live: " << key;
                continue;
            }
            EXPECT_EQ(it->second.selected, ref_flow.selected) << key;
            bool same = it->second.selected == ref_flow.selected;
            for (const auto& name : kCompared) {
                const bool eq = it->second.rows.at(name) == ref_flow.rows.at(name);
                EXPECT_TRUE(eq) << key << " " << name;
                same = same && eq;
            }
            // One queue keeps arrival order; across queues iat may go negative.
            if (run_args.find("-q ") == std::string::npos) {
                EXPECT_EQ(it->second.rows.at("iat_ok"), "ok") << key;
            }
            equal += same;
        }
        EXPECT_EQ(equal, b.size());
        std::printf("  %-32s %-28s sent %6llu  selected %5llu  flows %4zu  equal %4zu\n", capture.c_str(),
                    run_args.c_str(), static_cast<unsigned long long>(sent),
                    static_cast<unsigned long long>(selected), b.size(), equal);
    }

    bool attached(uint32_t* id = nullptr) {
        auto st = sh(in_b(etcpipe_bin() + " status veth-b"));
        std::smatch m;
        if (!std::regex_search(st.out, m, std::regex("xdp_flowmgr\\w*\\s+id ([0-9]+)"))) return false;
        if (id) *id = static_cast<uint32_t>(std::stoul(m[1]));
        return true;
    }

    std::string ns_a_, ns_b_, tmp_;
    std::optional<etcpipe::NetnsPair> net_;
    bool created_ = false;
};

TEST_F(LiveVeth, FeaturesEqualTheFeaturesCommandNativeMode) {
    for (const auto& c : kCaptures) check_capture(c, "-m native", "n-" + c);
}

TEST_F(LiveVeth, FeaturesEqualTheFeaturesCommandSkbMode) {
    for (const auto& c : kCaptures) check_capture(c, "-m skb", "s-" + c);
}

// Four RX queues, four AF_XDP sockets: flows whose packets arrive on
// several queues are put back in selection order.
TEST_F(LiveVeth, FourQueuesFourSockets) {
    auto r = net_->recreate_veth(4);
    ASSERT_TRUE(r.ok()) << r.error().message();
    for (const char* c : {"android.pcap", "signal.pcap"}) check_capture(c, "-m native -q 4", std::string("q4-") + c);
    const std::string err = slurp(tmp_ + "/q4-signal.pcap.err");
    EXPECT_NE(err.find("AF_XDP sockets 4"), std::string::npos) << err;
    // The sender's flow hash spreads the traffic: more than one queue was used.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(err, m, std::regex("per queue: q0=([0-9]+) q1=([0-9]+) q2=([0-9]+) q3=([0-9]+)")))
        << err;
    int used = 0;
    for (int q = 1; q <= 4; ++q) used += std::stoull(m[q]) > 0;
    EXPECT_GT(used, 1) << err;
}

// The GPU extractor behind the live path, compared with the CPU `features`.
TEST_F(LiveVeth, FeaturesEqualWithTheGpuExtractor) {
    std::string why;
    if (!etcpipe::features::gpu_available(&why)) GTEST_SKIP() << "no GPU: " << why;
    for (const auto& c : kCaptures) check_capture(c, "-m native --device gpu", "g-" + c);
}

TEST_F(LiveVeth, InlineDeliveryThroughTheRingBuffer) {
    check_capture("tls_verylong_certificate.pcap", "-m native --delivery inline", "inline");
    check_capture("quic.pcap", "-m skb --delivery inline", "inline-skb");
}

// `ip link` loads the section-"xdp" twin and pins its maps by name; `run
// --attach-existing` uses them and leaves the program attached.
TEST_F(LiveVeth, IpLinkLoadedProgramWithAttachExisting) {
    const std::string globals = "/sys/fs/bpf/xdp/globals";
    if (fs::exists(globals + "/etc_xsks")) GTEST_SKIP() << globals << " already holds FlowManager pins";
    auto l = sh(in_b("ip link set dev veth-b xdp obj " + build_dir() + "/bpf/flowmgr.bpf.o sec xdp"));
    ASSERT_EQ(l.status, 0) << l.err;
    uint32_t id = 0;
    EXPECT_TRUE(attached(&id));
    check_capture("quic.pcap", "--attach-existing", "iplink");
    check_capture("signal.pcap", "--attach-existing -p " + globals, "iplink-pins");
    EXPECT_TRUE(attached()) << "--attach-existing must not detach a program it did not attach";
    auto st = sh(in_b(etcpipe_bin() + " status veth-b"));
    EXPECT_NE(st.out.find("etcpipe run: pid"), std::string::npos) << st.out;
    EXPECT_NE(st.out.find("exited; last values"), std::string::npos) << st.out;
    EXPECT_EQ(sh(in_b("ip link set dev veth-b xdp off")).status, 0);
    std::string pins;
    for (const char* m : {"etc_flows4", "etc_flows", "etc_counters", "etc_xsks", "etc_ringbuf", "etc_run_stats"})
        pins += " " + globals + "/" + m;
    sh("rm -f" + pins);
    EXPECT_FALSE(attached());
}

TEST_F(LiveVeth, KilledRunLeavesNothingAttached) {
    for (int sig : {SIGKILL, SIGTERM}) {
        SCOPED_TRACE(strsignal(sig));
        const pid_t pid = start_run("-o " + tmp_ + "/kill --device cpu", "kill");
        ASSERT_GT(pid, 0) << slurp(tmp_ + "/kill.err");
        uint32_t id = 0;
        ASSERT_TRUE(attached(&id));
        const int rc = stop_run(pid, sig);
        EXPECT_EQ(rc, sig == SIGKILL ? 128 + SIGKILL : 0) << slurp(tmp_ + "/kill.err");
        // The guardian detaches within moments of the death; the program and
        // its maps are then freed (no fd, link or pin holds them).
        bool gone = false;
        for (int i = 0; i < 50 && !gone; ++i) {  // bounded: 5 s
            gone = !attached() && sh("bpftool prog show id " + std::to_string(id)).status != 0;
            if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        EXPECT_TRUE(gone) << "program " << id << " still attached or alive";
    }
    // --pin: stays attached after SIGKILL, until unload.
    const std::string pins = tmp_ + "/bpffs";
    ASSERT_EQ(sh("mkdir -p " + pins + " && mount -t bpf bpf " + pins).status, 0);
    const pid_t pid = start_run("-o " + tmp_ + "/pin --pin -p " + pins + "/etcpipe", "pin");
    ASSERT_GT(pid, 0) << slurp(tmp_ + "/pin.err");
    stop_run(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_TRUE(attached());
    EXPECT_TRUE(fs::exists(pins + "/etcpipe/etc_counters"));
    auto u = sh(in_b(etcpipe_bin() + " unload veth-b -p " + pins + "/etcpipe"));
    EXPECT_EQ(u.status, 0) << u.err;
    EXPECT_FALSE(attached());
    sh("umount " + pins);
}

// kill -9 -PGID (systemd's control-group kill, a container stop) takes the
// run's whole process group; the guardian has a session of its own, so it
// survives and detaches. 20 rounds: a race would show.
TEST_F(LiveVeth, ProcessGroupKillLeavesNothingAttached) {
    for (int round = 0; round < 20; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        const pid_t pid = start_run("-o " + tmp_ + "/group --device cpu", "group", true);
        ASSERT_GT(pid, 0) << slurp(tmp_ + "/group.err");
        ASSERT_EQ(getpgid(pid), pid);
        uint32_t id = 0;
        ASSERT_TRUE(attached(&id));
        ASSERT_EQ(kill(-pid, SIGKILL), 0);
        waitpid(pid, nullptr, 0);
        bool gone = false;
        for (int i = 0; i < 50 && !gone; ++i) {  // bounded: 5 s
            gone = !attached() && sh("bpftool prog show id " + std::to_string(id)).status != 0;
            if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        ASSERT_TRUE(gone) << "program " << id << " still attached after kill -9 -" << pid;
    }
}

// The guardian killed first: the run says so, and still detaches itself on
// SIGTERM (a SIGKILL after that is the one case not covered: README).
TEST_F(LiveVeth, GuardianKilledFirstRunStillDetachesOnSigterm) {
    const pid_t pid = start_run("-o " + tmp_ + "/gfirst --device cpu", "gfirst");
    ASSERT_GT(pid, 0) << slurp(tmp_ + "/gfirst.err");
    ASSERT_TRUE(attached());
    // The guardian is the run's only child process.
    auto kids = sh("cat /proc/" + std::to_string(pid) + "/task/*/children");
    std::istringstream is(kids.out);
    pid_t guardian = 0;
    ASSERT_TRUE(is >> guardian) << "no guardian child of " << pid;
    ASSERT_EQ(kill(guardian, SIGKILL), 0);
    // The run looks at its guardian once a second (with its statistics tick).
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    EXPECT_TRUE(attached());
    EXPECT_EQ(stop_run(pid, SIGTERM), 0) << slurp(tmp_ + "/gfirst.err");
    EXPECT_FALSE(attached());
    EXPECT_NE(slurp(tmp_ + "/gfirst.err").find("guardian"), std::string::npos)
        << slurp(tmp_ + "/gfirst.err");
}

// --model: every emitted flow gets a class of the model and probabilities
// that sum to 1; JSON Lines on stdout and predictions.csv beside the .npy.
TEST_F(LiveVeth, ClassifiesEmittedFlowsWithTheModel) {
    const std::string model = "models/etc_app.onnx";
    if (!fs::exists(model)) GTEST_FAIL() << model << " missing";
    for (const std::string& out : {std::string("-"), tmp_ + "/classified"}) {
        SCOPED_TRACE(out);
        const pid_t pid = start_run("--model " + model + " --device cpu -o " + out, "model");
        ASSERT_GT(pid, 0) << slurp(tmp_ + "/model.err");
        const uint64_t sent = send("quic.pcap");
        EXPECT_EQ(sent, 518u);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        ASSERT_EQ(stop_run(pid, SIGINT), 0) << slurp(tmp_ + "/model.err");
        const std::string err = slurp(tmp_ + "/model.err");
        const uint64_t flows = counter(err, "flows_complete") + counter(err, "flows_partial");
        EXPECT_EQ(flows, 10u) << err;
        const std::string classes = "AmazonAWS|Apple|DNS|DNScrypt|DoH_DoT|Dropbox|Facebook|Google|HTTP|"
                                    "Mining|NetBIOS|QUIC|SSDP|Skype_Teams|SkypeCall|Telegram|TLS|"
                                    "WhatsAppCall|WhatsApp|[A-Za-z_]+";
        if (out == "-") {
            std::istringstream lines(slurp(tmp_ + "/model.out"));
            std::string line;
            size_t n = 0;
            while (std::getline(lines, line)) {
                ++n;
                std::smatch m;
                ASSERT_TRUE(std::regex_search(line, m, std::regex("\"class\":\"([A-Za-z_]+)\",\"probability\":([0-9.e-]+)")))
                    << line.substr(0, 300);
                std::smatch pm;
                ASSERT_TRUE(std::regex_search(line, pm, std::regex("\"probabilities\":\\{([^}]*)\\}")));
                double sum = 0, best = 0;
                const std::string probs = pm[1];
                const std::regex num(":([0-9.e-]+)");
                for (auto it = std::sregex_iterator(probs.begin(), probs.end(), num); it != std::sregex_iterator(); ++it) {
                    const double v = std::stod((*it)[1]);
                    sum += v;
                    best = std::max(best, v);
                }
                EXPECT_NEAR(sum, 1.0, 1e-4) << line.substr(0, 300);
                EXPECT_NEAR(std::stod(m[2]), best, 1e-6) << "the class is the most probable one";
                EXPECT_NE(probs.find("\"" + std::string(m[1]) + "\":"), std::string::npos);
            }
            EXPECT_EQ(n, flows);
        } else {
            const std::string part = out + "/part-000000";
            std::ifstream csv(part + "/flows.csv"), pred(part + "/predictions.csv");
            ASSERT_TRUE(pred.good()) << part;
            size_t rows = 0, preds = 0;
            std::string line;
            while (std::getline(csv, line)) ++rows;
            std::getline(pred, line);
            EXPECT_EQ(line, "row,class,probability");
            while (std::getline(pred, line)) {
                EXPECT_TRUE(std::regex_match(line, std::regex(std::to_string(preds) + ",(" + classes + "),[0-9.e-]+")))
                    << line;
                ++preds;
            }
            EXPECT_EQ(preds + 1, rows);
            EXPECT_EQ(preds, flows);
        }
    }
    auto r = sh(in_b(etcpipe_bin() + " run veth-b --model " + model + " --features sizes:10"));
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("needs 'payload:"), std::string::npos) << r.err;  // the model's own spec
    EXPECT_FALSE(attached());
}

TEST_F(LiveVeth, UsageErrors) {
    auto r = sh(in_b(etcpipe_bin() + " run veth-b --attach-existing -o " + tmp_ + "/x"));
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("no xdp_flowmgr program is attached"), std::string::npos) << r.err;
    r = sh(in_b(etcpipe_bin() + " run veth-b -N 5 --features sizes:10"));
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("H=10"), std::string::npos) << r.err;
    r = sh(in_b(etcpipe_bin() + " run veth-b --flow-timeout 90"));
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("--idle-timeout"), std::string::npos) << r.err;
    r = sh(in_b(etcpipe_bin() + " run nosuch-if0"));
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_FALSE(attached());
}

}  // namespace
