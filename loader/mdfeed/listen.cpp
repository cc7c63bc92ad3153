#include "mdfeed/listen.hpp"

#include <poll.h>

#include <algorithm>
#include <cinttypes>
#include <ctime>
#include <memory>
#include <optional>

#include "common/detach_guardian.hpp"
#include "common/ready_file.hpp"
#include "common/signals.hpp"
#include "common/xsk.hpp"
#include "mdfeed/latency.hpp"
#include "mdfeed/mdfeed_attach.hpp"
#include "mdfeed/records_out.hpp"
#include "mdfeed/sockets.hpp"

namespace etcpipe::md {
namespace {

// "PORT" is a port on any address; anything with an address is a group.
Result<FeedFilter> make_filter(const ListenOptions& o) {
    FeedFilter f;
    for (const std::string& u : o.udp) {
        const bool port_only = u.find_first_not_of("0123456789") == std::string::npos;
        if (port_only) {
            auto p = parse_udp_port(u);
            if (!p) return p.error();
            f.udp_ports.push_back(*p);
        } else {
            auto g = parse_group(u);
            if (!g) return g.error();
            f.groups.push_back(*g);
        }
    }
    for (const std::string& s : o.tcp_servers) {
        auto t = parse_tcp_server(s);
        if (!t) return t.error();
        f.tcp_servers.push_back(*t);
    }
    f.tcp_both_directions = o.tcp_both_directions;
    if (auto r = f.validate(); !r) return r.error();
    return f;
}

// The sockets of every RX queue, registered in the program's XSKMAP.
Result<std::vector<std::unique_ptr<XskSocket>>> open_sockets(const std::string& iface,
                                                             FeedProgram& prog) {
    XskOptions xo;
    xo.meta = xsk_meta_format();
    xo.frames = 4096;
    xo.ring_size = 2048;
    std::vector<std::unique_ptr<XskSocket>> socks;
    const uint32_t queues = std::min<uint32_t>(rx_queue_count(iface), MD_MAX_QUEUES);
    for (uint32_t q = 0; q < queues; ++q) {
        auto s = XskSocket::create(iface, q, xo);
        if (!s) return s.error();
        if (auto r = prog.set_xsk(q, (*s)->fd()); !r) return r.error();
        socks.push_back(std::move(*s));
    }
    return socks;
}

void print_stats_line(const FeedDecoder& feed, uint64_t frames) {
    const FeedCounters& c = feed.counters();
    std::fprintf(stderr,
                 "md listen: frames %" PRIu64 " records %" PRIu64 " decode_errors %" PRIu64
                 " step_lost %" PRIu64 " bytes_lost %" PRIu64 " udp_missing %" PRIu64 "\n",
                 frames, c.records, c.decode_errors, c.step_lost, feed.reassembly().bytes_lost,
                 feed.udp_sequence().missing());
}

}  // namespace

Result<ListenSummary> run_listen(const ListenOptions& o) {
    auto templates = fast::TemplateSet::load(o.templates);
    if (!templates) return templates.error();
    auto filter = make_filter(o);
    if (!filter) return filter.error();
    auto route = RecordRoute::open(*templates, o.output, o.with_ts, o.latency, o.sink);
    if (!route) return route.error();
    RecordSink& sink = (*route)->sink();

    auto prog = FeedProgram::open(*filter);
    if (!prog) return prog.error();
    // The guardian is forked before anything else starts threads.
    DetachGuardian guardian;
    DetachOnExit detach(guardian);
    auto att = prog->attach(o.iface, o.mode);
    if (!att) return att.error();
    detach.arm(o.iface, att->prog_id);
    if (o.guardian)
        if (auto r = guardian.start(o.iface, att->prog_id); !r) return r.error();
    auto socks = open_sockets(o.iface, *prog);
    if (!socks) return socks.error();
    install_stop_handlers();
    if (!o.sink)
        std::fprintf(stderr, "md listen: %s: program %u attached (%s%s), %zu AF_XDP socket(s)%s\n",
                 o.iface.c_str(), att->prog_id, xdp_mode_name(att->mode),
                 att->multiprog ? ", libxdp dispatcher" : "", socks->size(),
                 socks->empty() || (*socks)[0]->zero_copy() ? ", zero-copy" : ", copy mode");
    FeedDecoder feed(*templates, o.feed, sink);
    if (!o.ready_file.empty())
        if (auto r = write_ready_file(o.ready_file); !r) return r.error();
    if (o.on_ready) o.on_ready();
    const uint64_t start = monotonic_ns();
    const uint64_t deadline = o.seconds > 0 ? start + static_cast<uint64_t>(o.seconds * 1e9) : 0;
    uint64_t next_tick = start + 1'000'000, next_stats = start + 1'000'000'000, frames = 0;
    std::vector<pollfd> pfds;
    for (const auto& s : *socks) pfds.push_back({s->fd(), POLLIN, 0});
    while (!stop_flag().load(std::memory_order_relaxed)) {
        if (o.count && feed.counters().records >= o.count) break;
        if (o.stop && o.stop->load(std::memory_order_relaxed)) break;
        size_t got = 0;
        for (auto& s : *socks) {
            got += s->receive(64, [&](const XskSocket::Frame& f) {
                const uint64_t rx = monotonic_ns();
                const auto meta = frame_meta(f);
                feed.frame(f.data, realtime_ns(), meta ? meta->rx_ns : 0, rx);
            });
            s->wakeup_if_needed();
        }
        frames += got;
        if (got == 0 && !o.busy_poll) (void)::poll(pfds.data(), pfds.size(), 1);
        const uint64_t now = monotonic_ns();
        if (now >= next_tick) {
            feed.advance_time(realtime_ns());
            next_tick = now + 1'000'000;
            if (deadline && now >= deadline) break;
        }
        if (now >= next_stats) {
            if (o.stats) print_stats_line(feed, frames);
            (void)guardian.check_lost();  // once a second, as `run` does
            next_stats = now + 1'000'000'000;
        }
    }
    feed.finish();
    auto flushed = (*route)->finish();
    if (!o.sink) print_counters(stderr, feed.counters(), feed.reassembly(), feed.udp_sequence(), o.all_counters);
    if (auto c = prog->counters(); c && !o.sink) {
        std::fprintf(stderr, "xdp counters:\n");
        print_counters(stderr, *c, o.all_counters);
    }
    if (!flushed) return flushed.error();
    ListenSummary sum;
    sum.frames = frames;
    sum.records = feed.counters().records;
    sum.problems = (*route)->problems();
    return sum;
}

}  // namespace etcpipe::md
