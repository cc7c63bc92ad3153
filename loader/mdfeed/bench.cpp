#include "mdfeed/bench.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <random>
#include <thread>

#include "common/netns.hpp"
#include "mdfeed/feed.hpp"
#include "mdfeed/latency.hpp"
#include "mdfeed/listen.hpp"
#include "mdfeed/recv.hpp"
#include "mdfeed/send.hpp"
#include "mdfeed/sockets.hpp"
#include "mdfeed/topology.hpp"

namespace etcpipe::md {
namespace {

constexpr const char* kSeries = "testdata/anova/osh_000001SZ_daily.txt";

bool wanted(const BenchOptions& o, const char* row) {
    return o.rows.empty() || std::find(o.rows.begin(), o.rows.end(), row) != o.rows.end();
}

// Best of `reps` runs of fn(), in ns.
template <class Fn>
double best_ns(int reps, Fn&& fn) {
    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
        const uint64_t t0 = monotonic_ns();
        fn();
        best = std::min(best, static_cast<double>(monotonic_ns() - t0));
    }
    return best;
}

struct CountingSink : RecordSink {
    uint64_t records = 0, problems = 0, checksum = 0;
    void on_record(const fast::MessageView& m, const RecordContext&) override {
        ++records;
        checksum += m.template_id();
    }
    void on_problem(const RecordContext&, const std::string&) override { ++problems; }
};

// memcpy of `bytes` in chunks of `chunk` into a small destination (so it
// stays in cache like the decoder's reads do not).
double memcpy_ns(std::span<const uint8_t> bytes, size_t chunk, int reps) {
    std::vector<uint8_t> dst(64 << 10);
    return best_ns(reps, [&] {
        size_t d = 0;
        for (size_t off = 0; off < bytes.size(); off += chunk) {
            const size_t n = std::min(chunk, bytes.size() - off);
            if (d + n > dst.size()) d = 0;
            std::memcpy(dst.data() + d, bytes.data() + off, n);
            d += n;
        }
        asm volatile("" : : "r"(dst.data()) : "memory");
    });
}

// ---- decode ----------------------------------------------------------------

Result<void> bench_decode(const BenchOptions& o, const fast::TemplateSet& set, std::FILE* out) {
    const size_t n = o.quick ? 20'000 : 200'000;
    const int reps = o.quick ? 2 : 5;
    std::fprintf(out, "\n== decode: one core, %zu records per run, best of %d ==\n", n, reps);
    std::fprintf(out, "%-6s %-5s %10s %12s %9s %12s %8s\n", "tmpl", "frame", "bytes/rec",
                 "ns/record", "Mrec/s", "memcpy ns/r", "ratio");
    for (uint32_t id : {3201u, 5801u}) {
        auto gen = FeedGenerator::create(set, {id}, kSeries, 1);
        if (!gen) return gen.error();
        fast::Encoder enc(set);
        std::vector<uint8_t> raw, step, msg;
        uint64_t seq = 0;
        for (size_t i = 0; i < n; ++i) {
            fast::Record& r = gen->next();
            gen->stamp(r, 1'000'000'000ull + i);
            if (auto e = enc.encode(r, raw); !e) return e.error();
        }
        // STEP: 20 records per message, dictionaries reset per message.
        {
            auto gen2 = FeedGenerator::create(set, {id}, kSeries, 1);
            if (!gen2) return gen2.error();
            for (size_t i = 0; i < n; i += 20) {
                enc.reset();
                msg.clear();
                for (size_t k = 0; k < 20 && i + k < n; ++k) {
                    fast::Record& r = gen2->next();
                    gen2->stamp(r, 1'000'000'000ull + i + k);
                    if (auto e = enc.encode(r, msg); !e) return e.error();
                }
                append_step(step, msg, ++seq, "UA3201", "20261202-09:30:00.000");
            }
        }
        for (int framing = 0; framing < 2; ++framing) {
            const std::vector<uint8_t>& bytes = framing == 0 ? raw : step;
            uint64_t decoded = 0;
            const double ns = best_ns(reps, [&] {
                CountingSink sink;
                FeedOptions fo;
                fo.tcp_framing = framing == 0 ? Framing::Raw : Framing::Step;
                if (framing == 0) {
                    fast::Decoder dec(set);
                    std::span<const uint8_t> rest(bytes);
                    while (!rest.empty()) {
                        size_t used = 0;
                        if (dec.decode(rest, used) != fast::Decoder::Status::Ok) break;
                        ++sink.records;
                        rest = rest.subspan(used);
                    }
                } else {
                    FeedDecoder feed(set, fo, sink);
                    feed.stream_bytes(bytes);
                    feed.finish();
                }
                decoded = sink.records;
            });
            if (decoded != n)
                return Error{ErrorKind::Data, 0, std::to_string(id), "bench decode",
                             "decoded " + std::to_string(decoded) + " of " + std::to_string(n), ""};
            const double mc = memcpy_ns(bytes, 1408, reps);
            std::fprintf(out, "%-6u %-5s %10.1f %12.1f %9.2f %12.2f %7.1fx\n", id,
                         framing == 0 ? "raw" : "step", static_cast<double>(bytes.size()) / n,
                         ns / n, n / ns * 1e3, mc / n, ns / mc);
        }
    }
    return {};
}

// ---- reassembly --------------------------------------------------------------

struct BytesSink : ReassemblySink {
    uint64_t bytes = 0, gaps = 0;
    void on_open(uint32_t, const ConnKey&, bool) override {}
    void on_data(uint32_t, std::span<const uint8_t> b, uint64_t) override {
        bytes += b.size();
        asm volatile("" : : "r"(b.data()) : "memory");
    }
    void on_gap(uint32_t, uint64_t) override { ++gaps; }
    void on_close(uint32_t, CloseReason) override {}
};

Result<void> bench_reassembly(const BenchOptions& o, std::FILE* out) {
    const size_t total = o.quick ? (16u << 20) : (128u << 20), seg = 1400;
    const int reps = o.quick ? 2 : 5;
    std::vector<uint8_t> stream(total);
    std::mt19937_64 rng(3);
    for (auto& b : stream) b = static_cast<uint8_t>(rng());
    std::fprintf(out, "\n== reassembly: one core, %zu MiB in %zu-byte segments, 1 connection, best of %d ==\n",
                 total >> 20, seg, reps);
    std::fprintf(out, "%-14s %10s %12s %8s %6s\n", "order", "Gb/s", "memcpy Gb/s", "ratio", "gaps");
    std::vector<size_t> order(total / seg);
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    const double mc = memcpy_ns(stream, seg, reps);
    for (double reorder : {0.0, 0.03}) {
        std::vector<size_t> ord = order;
        std::bernoulli_distribution swap(reorder);
        for (size_t i = 0; i + 1 < ord.size(); ++i)
            if (swap(rng)) std::swap(ord[i], ord[i + 1]), ++i;
        uint64_t delivered = 0, gaps = 0;
        const double ns = best_ns(reps, [&] {
            BytesSink sink;
            ReassemblerOptions ro;
            Reassembler re(ro, sink);
            ConnKey k;
            k.src[0] = 10;
            k.dst[0] = 10;
            k.sport = 9000;
            k.dport = 40000;
            const uint32_t isn = 0xfff00000u;  // crosses 2^32
            for (size_t i : ord)
                re.segment(k, isn + static_cast<uint32_t>(i * seg), kTcpAck,
                           std::span<const uint8_t>(stream).subspan(i * seg, seg), 0);
            re.flush();
            delivered = sink.bytes;
            gaps = sink.gaps;
        });
        const double bits = static_cast<double>(order.size() * seg) * 8;
        std::fprintf(out, "%-14s %10.2f %12.2f %7.2fx %6llu%s\n",
                     reorder == 0 ? "in order" : "3% reordered", bits / ns, bits / mc, ns / mc,
                     static_cast<unsigned long long>(gaps),
                     delivered == order.size() * seg ? "" : "  (bytes lost!)");
    }
    return {};
}

// ---- latency -------------------------------------------------------------------

struct LatencyResult {
    std::string row;
    size_t size = 0;
    LatencyRow total, to_xdp, to_user, decode;
    uint64_t sent = 0, received = 0;
    std::string error;
};

// Pins the calling thread to one CPU (ignored where that fails).
void pin_to(unsigned cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// The measured receiver gets the last CPU to itself; the sender, the
// member's client and the kernel's softirq work on veth share the others.
unsigned receiver_cpu() { return std::max(1u, std::thread::hardware_concurrency()) - 1; }

// Runs fn on a thread inside namespace ns, pinned to `cpu`.
std::thread in_ns(const std::string& ns, std::function<void()> fn, std::string* err, unsigned cpu = 0) {
    return std::thread([ns, fn = std::move(fn), err, cpu] {
        pin_to(cpu);
        if (auto e = enter_netns(ns); !e) {
            *err = e.error().message();
            return;
        }
        fn();
    });
}

enum class Path { Xdp, UdpBlocking, UdpBusy, TcpClient, Mirror };

const char* path_name(Path p) {
    switch (p) {
        case Path::Xdp: return "(a) AF_XDP busy-poll";
        case Path::UdpBlocking: return "(b) UDP blocking";
        case Path::UdpBusy: return "(c) UDP busy-poll";
        case Path::TcpClient: return "(d) TCP client";
        case Path::Mirror: return "(e) mirror+reasm";
    }
    return "?";
}

LatencyResult latency_row(const BenchOptions& o, const fast::TemplateSet& set, const Topology& topo,
                          Path path, size_t size) {
    LatencyResult res;
    res.row = path_name(path);
    res.size = size;
    const bool tcp = path == Path::TcpClient || path == Path::Mirror;
    const std::string udp_target = topo.member_addr() + ":5000";
    const std::string tcp_ep = topo.exchange_addr() + ":9000";
    LatencySink lat(set, nullptr, o.latency_messages * 32);
    std::atomic<bool> stop{false}, ready{false}, member_ready{false};
    std::string rx_err, member_err, send_err, ns_err1, ns_err2, ns_err3;

    // The measured receiver.
    std::thread rx;
    if (path == Path::Xdp || path == Path::Mirror) {
        ListenOptions lo;
        lo.iface = path == Path::Xdp ? topo.member_veth() : topo.mirror_rx();
        lo.templates = o.templates;
        if (path == Path::Xdp) lo.udp = {"5000"};
        else lo.tcp_servers = {tcp_ep};
        lo.sink = &lat;
        lo.guardian = false;
        lo.stop = &stop;
        lo.seconds = 60;
        lo.on_ready = [&] { ready = true; };
        rx = in_ns(path == Path::Xdp ? topo.member_ns() : topo.monitor_ns(), [&, lo] {
            if (auto r = run_listen(lo); !r) rx_err = r.error().message();
            ready = true;
        }, &ns_err1, receiver_cpu());
    } else {
        RecvOptions ro;
        ro.mode = path == Path::UdpBlocking ? RecvMode::UdpBlocking
                  : path == Path::UdpBusy   ? RecvMode::UdpBusyPoll
                                            : RecvMode::TcpClient;
        ro.endpoint = path == Path::TcpClient ? tcp_ep : "5000";
        ro.templates = o.templates;
        ro.sink = &lat;
        ro.stop = &stop;
        ro.seconds = 60;
        ro.on_ready = [&] { ready = true; };
        if (path != Path::TcpClient)
            rx = in_ns(topo.member_ns(), [&, ro] {
                if (auto r = run_recv(ro); !r) rx_err = r.error().message();
                ready = true;
            }, &ns_err1, receiver_cpu());
    }
    // The sender (the exchange); TCP: a member client connects to it.
    SendOptions so;
    so.templates = o.templates;
    so.transport = tcp ? Transport::Tcp : Transport::Udp;
    so.target = tcp ? tcp_ep : udp_target;
    so.count = o.quick ? std::min<uint64_t>(o.latency_messages, 2000) : o.latency_messages;
    // The same bytes per second at every size.
    so.rate = o.latency_rate * 100.0 / static_cast<double>(size);
    so.size = size;
    so.seconds = 60;
    std::atomic<bool> listening{false};
    so.on_listening = [&] { listening = true; };
    uint64_t records_sent = 0;
    so.on_record = [&](const fast::Record&) { ++records_sent; };
    for (int i = 0; i < 1000 && !ready && !tcp; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (int i = 0; i < 1000 && !ready && path == Path::Mirror; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::thread tx = in_ns(topo.exchange_ns(), [&] {
        if (auto r = run_send(so); !r) send_err = r.error().message();
    }, &ns_err2);
    std::thread member;
    if (tcp) {
        for (int i = 0; i < 1000 && !listening; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        RecvOptions mo;
        mo.mode = RecvMode::TcpClient;
        mo.endpoint = tcp_ep;
        mo.templates = o.templates;
        if (path == Path::TcpClient) {
            mo.sink = &lat;
        } else {
            mo.output = "/dev/null";
            mo.quiet = true;
        }
        mo.seconds = 60;
        mo.stop = &stop;
        member = in_ns(topo.member_ns(), [&, mo] {
            if (auto r = run_recv(mo); !r) member_err = r.error().message();
        }, &ns_err3, path == Path::TcpClient ? receiver_cpu() : 0);
    }
    tx.join();
    // Let the last messages arrive, then stop the receivers.
    const uint64_t until = monotonic_ns() + 300'000'000;
    while (monotonic_ns() < until && lat.seen() < records_sent)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    stop = true;
    if (rx.joinable()) rx.join();
    if (member.joinable()) member.join();
    for (const std::string* e : {&ns_err1, &ns_err2, &ns_err3, &send_err, &rx_err, &member_err})
        if (res.error.empty() && !e->empty()) res.error = *e;
    LatencySamples& s = lat.samples();
    res.sent = records_sent;
    res.received = s.total.size() + s.unstamped;
    res.total = summarize_ns(s.total);
    res.to_xdp = summarize_ns(s.to_xdp);
    res.to_user = summarize_ns(s.to_user);
    res.decode = summarize_ns(s.decode);
    return res;
}

Result<void> bench_latency(const BenchOptions& o, const fast::TemplateSet& set, std::FILE* out) {
    if (geteuid() != 0) {
        std::fprintf(out, "\n== latency: skipped (needs root for network namespaces and XDP) ==\n");
        return {};
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    TopologyOptions to;
    to.tag = "b" + std::to_string(getpid() % 100000);
    to.subnet = 88;
    auto topo = Topology::create(to);
    if (!topo) return topo.error();
    const uint64_t msgs = o.quick ? std::min<uint64_t>(o.latency_messages, 2000) : o.latency_messages;
    std::fprintf(out,
                 "\n== latency, one way: md send stamp -> decoded record; exchange and member "
                 "namespaces over veth, %llu messages per row at %.0f/s (100 B) and %.0f/s "
                 "(1408 B) ==\n",
                 static_cast<unsigned long long>(msgs), o.latency_rate, o.latency_rate * 100 / 1408);
    std::fprintf(out, "%-22s %5s %9s %9s %9s %9s %8s %8s %8s\n", "path", "size", "p50 us", "p99 us",
                 "p99.9 us", "max us", "records", "lost", "p99/(a)");
    for (size_t size : {size_t{100}, size_t{1408}}) {
        std::vector<LatencyResult> rows;
        for (Path p : {Path::Xdp, Path::UdpBlocking, Path::UdpBusy, Path::TcpClient, Path::Mirror})
            rows.push_back(latency_row(o, set, *topo, p, size));
        const double base = rows[0].total.p99_us;
        for (const LatencyResult& r : rows) {
            if (!r.error.empty()) {
                std::fprintf(out, "%-22s %5zu  error: %s\n", r.row.c_str(), r.size, r.error.c_str());
                continue;
            }
            std::fprintf(out, "%-22s %5zu %9.1f %9.1f %9.1f %9.1f %8llu %8lld %7.2fx\n", r.row.c_str(),
                         r.size, r.total.p50_us, r.total.p99_us, r.total.p999_us, r.total.max_us,
                         static_cast<unsigned long long>(r.received),
                         static_cast<long long>(r.sent) - static_cast<long long>(r.received),
                         base > 0 ? r.total.p99_us / base : 0.0);
        }
        for (const LatencyResult& r : {rows[0], rows[4]}) {
            if (!r.error.empty() || r.to_xdp.samples == 0) continue;
            std::fprintf(out, "  %s breakdown (p50/p99 us): send->XDP %.1f/%.1f, XDP->user %.1f/%.1f, "
                              "user->decoded %.2f/%.2f\n",
                         r.row.c_str(), r.to_xdp.p50_us, r.to_xdp.p99_us, r.to_user.p50_us,
                         r.to_user.p99_us, r.decode.p50_us, r.decode.p99_us);
        }
    }
    return {};
}

}  // namespace

Result<void> run_bench(const BenchOptions& o, std::FILE* out) {
    auto set = fast::TemplateSet::load(o.templates);
    if (!set) return set.error();
    std::fprintf(out, "md bench: %u cores, templates %s%s\n", std::thread::hardware_concurrency(),
                 o.templates.c_str(), o.quick ? ", --quick" : "");
    if (wanted(o, "decode"))
        if (auto r = bench_decode(o, *set, out); !r) return r;
    if (wanted(o, "reassembly"))
        if (auto r = bench_reassembly(o, out); !r) return r;
    if (wanted(o, "latency"))
        if (auto r = bench_latency(o, *set, out); !r) return r;
    std::fflush(out);
    return {};
}

}  // namespace etcpipe::md
