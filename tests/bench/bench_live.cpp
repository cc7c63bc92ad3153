// Live pipeline throughput on a veth pair between two namespaces this
// benchmark creates and removes. The same traffic — the real nDPI captures
// whose frames fit the MTU, sent back to back from an AF_PACKET socket, round
// after round with each round's IP addresses shifted so its flows are new
// (payloads untouched) — goes through
//   1. xdp_pass attached with `ip link` (the baseline: the kernel path alone), and
//   2. `etcpipe run` (FlowManager + AF_XDP + CPU feature extraction),
// in one run. Reported: packets/s reaching XDP over the send time, every
// drop with where it happened, and the ratio. Bounded: a fixed number of
// rounds and at most a few seconds per configuration.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <algorithm>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "common/pcap.hpp"
#include "tests/common/build_dir.hpp"

namespace fs = std::filesystem;
using namespace etcpipe;

namespace {

using etcpipe::testing::build_dir;

std::string sh(const std::string& cmd, int* status = nullptr) {
    std::string out;
    std::FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return out;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    const int st = pclose(p);
    if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

uint64_t field(const std::string& text, const std::string& re) {
    std::smatch m;
    return std::regex_search(text, m, std::regex(re)) ? std::stoull(m[1]) : 0;
}

// `ip -s link` counters of one device: RX packets/dropped, TX dropped.
struct LinkStats {
    uint64_t rx_packets = 0, rx_dropped = 0, tx_dropped = 0;
};
LinkStats link_stats(const std::string& ns, const std::string& dev) {
    const std::string s = sh("ip -n " + ns + " -s -s link show " + dev);
    LinkStats l;
    std::smatch m;
    // RX: bytes packets errors dropped ...
    if (std::regex_search(s, m, std::regex("RX:[^\\n]*\\n\\s*([0-9]+)\\s+([0-9]+)\\s+([0-9]+)\\s+([0-9]+)"))) {
        l.rx_packets = std::stoull(m[2]);
        l.rx_dropped = std::stoull(m[4]);
    }
    if (std::regex_search(s, m, std::regex("TX:[^\\n]*\\n\\s*([0-9]+)\\s+([0-9]+)\\s+([0-9]+)\\s+([0-9]+)")))
        l.tx_dropped = std::stoull(m[4]);
    return l;
}

// The frames of every capture that fits: Ethernet as replay gives it.
std::vector<std::vector<uint8_t>> load_frames(size_t* captures) {
    std::vector<std::vector<uint8_t>> frames;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator("testdata/ndpi/pcap")) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::vector<uint8_t> scratch;
    for (const auto& f : files) {
        if (fs::file_size(f) > 2'000'000) continue;
        auto r = pcap::Reader::open(f.string());
        if (!r) continue;
        std::vector<std::vector<uint8_t>> mine;
        pcap::Frame fr;
        bool ok = true;
        for (;;) {
            auto more = r->next(fr);
            if (!more) { ok = false; break; }
            if (!*more) break;
            auto eth = pcap::to_ethernet(fr, scratch);
            if (!eth || eth->size() < 14 || eth->size() > 1514) { ok = false; break; }
            mine.emplace_back(eth->begin(), eth->end());
        }
        if (!ok || mine.empty()) continue;
        ++*captures;
        for (auto& m : mine) frames.push_back(std::move(m));
    }
    return frames;
}

// Round r: the second byte of both IP addresses +r, so both directions of a
// flow stay one flow and every round's flows are new. Payloads untouched.
void shift_addresses(std::vector<uint8_t>& f, unsigned r) {
    size_t off = 12;
    uint16_t et = static_cast<uint16_t>(f[off] << 8 | f[off + 1]);
    for (int v = 0; v < 2 && (et == 0x8100 || et == 0x88a8) && off + 6 <= f.size(); ++v) {
        off += 4;
        et = static_cast<uint16_t>(f[off] << 8 | f[off + 1]);
    }
    const size_t ip = off + 2;
    if (et == 0x0800 && ip + 20 <= f.size()) {
        f[ip + 13] = static_cast<uint8_t>(f[ip + 13] + r);
        f[ip + 17] = static_cast<uint8_t>(f[ip + 17] + r);
    } else if (et == 0x86dd && ip + 40 <= f.size()) {
        f[ip + 9] = static_cast<uint8_t>(f[ip + 9] + r);
        f[ip + 25] = static_cast<uint8_t>(f[ip + 25] + r);
    }
}

struct SendResult {
    uint64_t sent = 0, errors = 0;
    double seconds = 0;
};

// Sends every round's frames from `ns`'s veth-a, back to back.
SendResult send_rounds(const std::string& ns, const std::vector<std::vector<std::vector<uint8_t>>>& rounds,
                       double max_seconds) {
    SendResult res;
    int self = open("/proc/self/ns/net", O_RDONLY);
    int target = open(("/run/netns/" + ns).c_str(), O_RDONLY);
    if (self < 0 || target < 0 || setns(target, CLONE_NEWNET)) return res;
    int s = socket(AF_PACKET, SOCK_RAW, 0);
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(if_nametoindex("veth-a"));
    to.sll_halen = ETH_ALEN;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& round : rounds) {
        for (const auto& f : round) {
            if (sendto(s, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
                ++res.errors;
            else
                ++res.sent;
        }
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > max_seconds) break;
    }
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    close(s);
    setns(self, CLONE_NEWNET);
    close(self);
    close(target);
    return res;
}

}  // namespace

int main() {
    if (geteuid() != 0) {
        std::fprintf(stderr, "bench_live: needs root (namespaces, XDP, AF_XDP); skipped\n");
        return 0;
    }
    const std::string etcpipe = build_dir() + "/etcpipe";
    size_t ncap = 0;
    const auto base = load_frames(&ncap);
    if (base.empty()) {
        std::fprintf(stderr, "bench_live: no captures in testdata/ndpi/pcap (make testdata); skipped\n");
        return 0;
    }
    const unsigned kRounds = 8;
    std::vector<std::vector<std::vector<uint8_t>>> rounds(kRounds, base);
    for (unsigned r = 1; r < kRounds; ++r)
        for (auto& f : rounds[r]) shift_addresses(f, r);

    const std::string id = std::to_string(getpid());
    const std::string na = "etcpipe-bench-a-" + id, nb = "etcpipe-bench-b-" + id, tmp = "/tmp/etcpipe-bench-" + id;
    int st = 0;
    sh("ip netns add " + na + " && ip netns add " + nb + " && ip netns exec " + na +
           " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && ip netns exec " +
           nb + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && ip -n " + na +
           " link add veth-a type veth peer name veth-b netns " + nb + " && ip -n " + na +
           " link set veth-a up && ip -n " + nb + " link set veth-b up && mkdir -p " + tmp,
       &st);
    if (st) {
        std::fprintf(stderr, "bench_live: cannot create namespaces/veth; skipped\n");
        sh("ip netns del " + na + "; ip netns del " + nb);
        return 0;
    }
    std::printf("bench_live: %zu frames from %zu real captures × %u rounds (addresses shifted per round), "
                "veth, native XDP, sent back to back from one AF_PACKET socket\n",
                base.size(), ncap, kRounds);

    struct Measure {
        uint64_t sent = 0, at_xdp = 0, rx_dropped = 0;
        double seconds = 0;
        double pps() const { return seconds > 0 ? static_cast<double>(at_xdp) / seconds : 0; }
    };
    // 1. baseline: xdp_pass attached with ip link.
    auto run_pass = [&]() {
        Measure m;
        sh("ip -n " + nb + " link set dev veth-b xdp obj " + build_dir() + "/bpf/xdp_pass.bpf.o sec xdp.frags");
        const LinkStats b0 = link_stats(nb, "veth-b"), a0 = link_stats(na, "veth-a");
        const SendResult r = send_rounds(na, rounds, 10);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        const LinkStats b1 = link_stats(nb, "veth-b"), a1 = link_stats(na, "veth-a");
        sh("ip -n " + nb + " link set dev veth-b xdp off");
        m.sent = r.sent;
        m.seconds = r.seconds;
        m.at_xdp = b1.rx_packets - b0.rx_packets;
        m.rx_dropped = (b1.rx_dropped - b0.rx_dropped) + (a1.tx_dropped - a0.tx_dropped);
        return m;
    };
    // 2. etcpipe run: FlowManager + AF_XDP + CPU features (1 thread), .npy output.
    std::string e;
    auto run_live = [&]() -> std::optional<Measure> {
        Measure m;
        const std::string ready = tmp + "/ready", err = tmp + "/run.err";
        sh("rm -rf " + ready + " " + tmp + "/out");
        const pid_t pid = fork();
        if (pid == 0) {
            const std::string cmd = "exec nsenter --net=/run/netns/" + nb + " " + etcpipe +
                                    " run veth-b -m native --device cpu --threads 1 -o " + tmp +
                                    "/out --ready-file " + ready + " 2>" + err;
            execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        for (int i = 0; i < 100 && !(fs::exists(ready) && fs::file_size(ready) > 0); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const LinkStats c0 = link_stats(nb, "veth-b"), d0 = link_stats(na, "veth-a");
        const SendResult r = send_rounds(na, rounds, 10);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        const LinkStats c1 = link_stats(nb, "veth-b"), d1 = link_stats(na, "veth-a");
        kill(pid, SIGINT);
        int wst = 0;
        waitpid(pid, &wst, 0);
        std::ifstream ef(err);
        e.assign(std::istreambuf_iterator<char>(ef), {});
        m.sent = r.sent;
        m.seconds = r.seconds;
        m.at_xdp = field(e, "\\n\\s+rx\\s+([0-9]+)");
        m.rx_dropped = (c1.rx_dropped - c0.rx_dropped) + (d1.tx_dropped - d0.tx_dropped);
        if (wst != 0 || m.at_xdp == 0) return std::nullopt;
        return m;
    };

    // Interleaved repetitions: the order and the machine's drift hit both alike.
    constexpr int kReps = 3;
    std::vector<Measure> pass, live;
    for (int rep = 0; rep < kReps; ++rep) {
        pass.push_back(run_pass());
        auto l = run_live();
        if (!l) {
            std::fprintf(stderr, "bench_live: etcpipe run failed:\n%s\n", e.c_str());
            sh("ip netns del " + na + "; ip netns del " + nb + "; rm -rf " + tmp);
            return 1;
        }
        live.push_back(*l);
    }
    const uint64_t live_sel = field(e, "\\n\\s+selected\\s+([0-9]+)");
    const uint64_t live_xsk = field(e, "\\n\\s+xsk_rx\\s+([0-9]+)");
    const uint64_t xsk_lost = field(e, "\\n\\s+xsk_rx_dropped\\s+([0-9]+)") +
                              field(e, "\\n\\s+xsk_rx_ring_full\\s+([0-9]+)") +
                              field(e, "\\n\\s+xsk_fill_empty\\s+([0-9]+)");
    const uint64_t flows = field(e, "\\n\\s+flows_complete\\s+([0-9]+)") + field(e, "\\n\\s+flows_partial\\s+([0-9]+)");
    sh("ip netns del " + na + "; ip netns del " + nb + "; rm -rf " + tmp);

    auto median = [](std::vector<Measure> v) {
        std::sort(v.begin(), v.end(), [](const Measure& a, const Measure& b) { return a.pps() < b.pps(); });
        return v[v.size() / 2];
    };
    auto row = [](const char* name, const std::vector<Measure>& v, const Measure& med) {
        std::printf("  %-44s %9" PRIu64 " %9" PRIu64 " %10" PRIu64 " %9.3f   (", name, med.sent, med.at_xdp,
                    med.rx_dropped, med.pps() / 1e6);
        for (size_t i = 0; i < v.size(); ++i) std::printf("%s%.3f", i ? " " : "", v[i].pps() / 1e6);
        std::printf(")\n");
    };
    const Measure mp = median(pass), ml = median(live);
    std::printf("  %-44s %9s %9s %10s %9s   %s\n", "configuration (median of 3)", "sent", "at XDP", "rx_dropped",
                "Mpkt/s", "(each run)");
    row("xdp_pass (ip link; baseline)", pass, mp);
    row("etcpipe run (FlowManager+AF_XDP+CPU features)", live, ml);
    std::printf("  etcpipe run (last): %" PRIu64 " selected, %" PRIu64 " read from AF_XDP, %" PRIu64
                " lost in AF_XDP rings, %" PRIu64 " flows with features written\n",
                live_sel, live_xsk, xsk_lost, flows);
    std::printf("  ratio etcpipe run / xdp_pass: %.2f of the baseline's packet rate (medians)\n", ml.pps() / mp.pps());
    return 0;
}
