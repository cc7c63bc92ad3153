#include "mdfeed/feed.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <map>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <unordered_map>

namespace etcpipe::md {
namespace {

std::string endpoint_text(uint8_t family, const uint8_t* addr, uint16_t port) {
    char a[INET6_ADDRSTRLEN] = "?";
    inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, a, sizeof(a));
    return family == 6 ? "[" + std::string(a) + "]:" + std::to_string(port)
                       : std::string(a) + ":" + std::to_string(port);
}

// One byte stream (a TCP direction or a raw file) or one UDP channel: its
// decoder, the bytes not decoded yet, and where it stands.
struct Stream {
    explicit Stream(const fast::TemplateSet& t) : dec(t) {}
    fast::Decoder dec;
    std::vector<uint8_t> pending;  // bytes not consumed yet, from stream offset `offset`
    uint64_t offset = 0;
    bool resync = false;           // STEP: skip to the next header first
    uint64_t next_seq = 0;         // STEP MsgSeqNum expected next (0: none seen)
    uint64_t channel = 0;          // UDP: the channel's number for the sequence tracker
    std::string src, dst;
    bool tcp = false;
};

}  // namespace

struct FeedDecoder::Impl : ReassemblySink {
    Impl(const fast::TemplateSet& t, const FeedOptions& o, RecordSink& s)
        : templates(t), opts(o), sink(s), reasm(o.reassembly, *this) {
        for (const auto& [addr, port] : o.tcp_servers) {
            Server sv;
            sv.port = port;
            if (inet_pton(AF_INET, addr.c_str(), sv.addr.data()) == 1) sv.family = 4;
            else if (inet_pton(AF_INET6, addr.c_str(), sv.addr.data()) == 1) sv.family = 6;
            else continue;  // the CLI parsed it already
            servers.push_back(sv);
        }
    }

    // --tcp-server entries as the frames carry them.
    struct Server {
        uint8_t family = 0;
        std::array<uint8_t, 16> addr{};
        uint16_t port = 0;
    };
    std::vector<Server> servers;

    const fast::TemplateSet& templates;
    FeedOptions opts;
    RecordSink& sink;
    Reassembler reasm;
    SequenceTracker udp_seq;
    FeedCounters c;
    std::unordered_map<uint32_t, std::unique_ptr<Stream>> tcp;    // by reassembler connection
    // UDP channels by destination (family, address, port); ids for the tracker.
    std::map<std::array<uint8_t, 19>, std::unique_ptr<Stream>> udp;
    std::unique_ptr<Stream> file;
    uint64_t now_ts = 0, now_xdp = 0, now_rx = 0;

    RecordContext context(const Stream& s) const {
        RecordContext x;
        x.ts_ns = now_ts;
        x.xdp_ts_ns = now_xdp;
        x.rx_ns = now_rx;
        x.src = s.src;
        x.dst = s.dst;
        x.tcp = s.tcp;
        return x;
    }

    void problem(const Stream& s, const std::string& what) { sink.on_problem(context(s), what); }

    // Decodes every record of a payload that must hold whole records only
    // (a STEP tag 96, a block, a datagram).
    void decode_records(Stream& s, std::span<const uint8_t> p, uint64_t at, RecordContext& x) {
        s.dec.set_stream_offset(at);
        const uint8_t* const base = p.data();
        while (!p.empty()) {
            size_t used = 0;
            const auto st = s.dec.decode(p, used);
            if (st == fast::Decoder::Status::Ok) {
                ++c.records;
                sink.on_record(s.dec.message(), x);
                p = p.subspan(used);
                continue;
            }
            ++c.decode_errors;
            if (st == fast::Decoder::Status::NeedMore)
                problem(s, "record cut short: " + std::to_string(p.size()) +
                               " bytes left at the end of a STEP message/block/datagram at byte " +
                               std::to_string(at + static_cast<uint64_t>(p.data() - base)));
            else
                problem(s, s.dec.error().message());
            s.dec.reset();
            return;
        }
    }

    // STEP: returns the bytes of `in` consumed.
    size_t step_stream(Stream& s, std::span<const uint8_t> in) {
        size_t pos = 0;
        while (pos < in.size()) {
            auto rest = in.subspan(pos);
            const size_t skip = find_step_begin(rest);
            if (skip > 0) {
                c.bytes_skipped += skip;
                if (!s.resync) ++c.resyncs;
                s.resync = true;
                pos += skip;
                rest = in.subspan(pos);
            }
            if (rest.size() < kStepBeginString.size()) break;  // a header may still start here
            s.resync = false;
            const StepResult r = parse_step(rest);
            if (r.status == ParseStatus::NeedMore) break;
            if (r.status == ParseStatus::Error) {
                ++c.step_errors;
                problem(s, "STEP message at byte " + std::to_string(s.offset + pos) + ": " + r.error);
                c.bytes_skipped += 1;
                pos += 1;
                s.resync = true;
                continue;
            }
            ++c.step_messages;
            if (r.seq != 0) {
                if (s.next_seq != 0 && r.seq > s.next_seq) c.step_lost += r.seq - s.next_seq;
                s.next_seq = r.seq + 1;
            }
            RecordContext x = context(s);
            x.seq = r.seq;
            x.has_seq = r.seq != 0;
            s.dec.reset();  // every STEP message starts with fresh dictionaries
            decode_records(s, r.fast, s.offset + pos + (r.fast.data() - rest.data()), x);
            pos += r.consumed;
        }
        return pos;
    }

    // Raw FAST messages back to back: decoded until one is incomplete.
    size_t raw_stream(Stream& s, std::span<const uint8_t> in) {
        size_t pos = 0;
        RecordContext x = context(s);
        s.dec.set_stream_offset(s.offset);  // decode() advances it past each message
        while (pos < in.size()) {
            size_t used = 0;
            const auto st = s.dec.decode(in.subspan(pos), used);
            if (st == fast::Decoder::Status::NeedMore) break;
            if (st == fast::Decoder::Status::Error) {
                ++c.decode_errors;
                problem(s, s.dec.error().message());
                drop_rest(s, in.size() - pos);
                return in.size();
            }
            ++c.records;
            sink.on_record(s.dec.message(), x);
            pos += used;
        }
        return pos;
    }

    size_t block_stream(Stream& s, std::span<const uint8_t> in, Framing kind) {
        size_t pos = 0;
        while (pos < in.size()) {
            const BlockResult r = parse_block(in.subspan(pos), kind);
            if (r.status == ParseStatus::NeedMore) break;
            if (r.status == ParseStatus::Error) {
                ++c.block_errors;
                problem(s, "block at byte " + std::to_string(s.offset + pos) + ": " + r.error);
                drop_rest(s, in.size() - pos);
                return in.size();
            }
            ++c.blocks;
            if (opts.reset_per_block) s.dec.reset();
            RecordContext x = context(s);
            decode_records(s, r.payload, s.offset + pos + (r.consumed - r.payload.size()), x);
            pos += r.consumed;
        }
        return pos;
    }

    // A stream that cannot be resynced inside (raw, blocks): what is left of
    // the data is dropped; decoding starts again at the next segment.
    void drop_rest(Stream& s, size_t n) {
        c.bytes_skipped += n;
        ++c.resyncs;
        s.dec.reset();
    }

    size_t consume(Stream& s, std::span<const uint8_t> in) {
        switch (opts.tcp_framing) {
            case Framing::Step: return step_stream(s, in);
            case Framing::Len32Le:
            case Framing::Len32Be:
            case Framing::Block: return block_stream(s, in, opts.tcp_framing);
            case Framing::Raw:
            case Framing::Udp: return raw_stream(s, in);
        }
        return in.size();
    }

    // New stream bytes: decoded straight from `in` when nothing is pending,
    // so in-order traffic is never copied.
    void stream_data(Stream& s, std::span<const uint8_t> in) {
        if (s.pending.empty()) {
            const size_t used = consume(s, in);
            s.offset += used;
            s.pending.assign(in.begin() + static_cast<ptrdiff_t>(used), in.end());
            return;
        }
        s.pending.insert(s.pending.end(), in.begin(), in.end());
        const size_t used = consume(s, s.pending);
        s.offset += used;
        s.pending.erase(s.pending.begin(), s.pending.begin() + static_cast<ptrdiff_t>(used));
    }

    // ---- ReassemblySink ----------------------------------------------------
    void on_open(uint32_t conn, const ConnKey& key, bool midstream) override {
        auto s = std::make_unique<Stream>(templates);
        s->src = endpoint_text(key.family, key.src.data(), key.sport);
        s->dst = endpoint_text(key.family, key.dst.data(), key.dport);
        s->tcp = true;
        s->resync = midstream;
        tcp[conn] = std::move(s);
    }
    void on_data(uint32_t conn, std::span<const uint8_t> bytes, uint64_t) override {
        auto it = tcp.find(conn);
        if (it != tcp.end()) stream_data(*it->second, bytes);
    }
    void on_gap(uint32_t conn, uint64_t lost) override {
        auto it = tcp.find(conn);
        if (it == tcp.end()) return;
        Stream& s = *it->second;
        problem(s, "gap of " + std::to_string(lost) + " bytes in the stream; resuming at the next " +
                       (opts.tcp_framing == Framing::Step ? "STEP header" : "segment"));
        c.bytes_skipped += s.pending.size();
        s.offset += s.pending.size() + lost;
        s.pending.clear();
        s.resync = true;
        s.dec.reset();
    }
    void on_close(uint32_t conn, CloseReason) override {
        auto it = tcp.find(conn);
        if (it == tcp.end()) return;
        end_stream(*it->second);
        tcp.erase(it);
    }

    void end_stream(Stream& s) {
        if (s.pending.empty()) return;
        ++c.truncated_at_end;
        problem(s, std::to_string(s.pending.size()) + " bytes at the end of the stream are not a whole message");
        s.pending.clear();
    }

    // ---- frames ------------------------------------------------------------
    bool wanted_udp(const L4View& v) const {
        if (opts.udp_ports.empty()) return true;
        return std::find(opts.udp_ports.begin(), opts.udp_ports.end(), v.dport) != opts.udp_ports.end();
    }
    bool wanted_tcp(const L4View& v) const {
        if (opts.tcp_servers.empty()) return true;
        for (const Server& sv : servers)
            if (sv.family == v.family && sv.port == v.sport && sv.addr == v.src) return true;
        return false;
    }

    void datagram(const L4View& v) {
        std::array<uint8_t, 19> key{};
        key[0] = v.family;
        std::copy(v.dst.begin(), v.dst.begin() + 16, key.begin() + 1);
        key[17] = static_cast<uint8_t>(v.dport >> 8);
        key[18] = static_cast<uint8_t>(v.dport);
        auto& slot = udp[key];
        if (!slot) {
            slot = std::make_unique<Stream>(templates);
            slot->channel = udp.size();
            slot->src = endpoint_text(v.family, v.src.data(), v.sport);
            slot->dst = endpoint_text(v.family, v.dst.data(), v.dport);
        }
        udp_payload(*slot, v.payload);
    }

    // A kernel socket's datagram: its channel is its source and destination.
    void socket_datagram(std::span<const uint8_t> payload, std::string_view src,
                         std::string_view dst) {
        std::array<uint8_t, 19> key{};
        key[0] = 1;  // never a family: socket channels apart from frame channels
        const size_t h = std::hash<std::string_view>{}(dst);
        std::memcpy(key.data() + 1, &h, sizeof(h));
        auto& slot = udp[key];
        if (!slot) {
            slot = std::make_unique<Stream>(templates);
            slot->channel = udp.size();
            slot->src = std::string(src);
            slot->dst = std::string(dst);
        }
        udp_payload(*slot, payload);
    }

    void udp_payload(Stream& s, std::span<const uint8_t> payload) {
        ++c.udp_datagrams;
        UdpOptions uo;
        uo.seq_preamble = opts.udp_seq_preamble;
        const UdpDatagram d = split_udp(payload, uo);
        if (d.status != ParseStatus::Ok) {
            ++c.udp_short;
            problem(s, "datagram of " + std::to_string(payload.size()) +
                           " bytes is shorter than the 4-byte sequence preamble");
            return;
        }
        RecordContext x = context(s);
        if (d.has_seq) {
            udp_seq.observe(s.channel, d.seq);
            x.seq = d.seq;
            x.has_seq = true;
        }
        if (opts.udp_reset_per_datagram) s.dec.reset();
        decode_records(s, d.messages, s.offset + (payload.size() - d.messages.size()), x);
        s.offset += payload.size();
    }

    void frame(std::span<const uint8_t> bytes, uint64_t ts, uint64_t xdp_ts, uint64_t rx) {
        ++c.frames;
        now_ts = ts;
        now_xdp = xdp_ts;
        now_rx = rx;
        L4View v;
        const ParseResult r = parse_frame(bytes, v);
        if (r == ParseResult::Fragment) {
            ++c.fragments;
            return;
        }
        if (r != ParseResult::Ok) {
            ++c.not_l4;
            return;
        }
        if (v.proto == 17) {
            if (!wanted_udp(v)) {
                ++c.not_feed;
                return;
            }
            datagram(v);
        } else if (v.proto == 6) {
            if (!wanted_tcp(v)) {
                ++c.not_feed;
                return;
            }
            ++c.tcp_segments;
            reasm.segment(v, ts);
        }
    }
};

FeedDecoder::FeedDecoder(const fast::TemplateSet& templates, const FeedOptions& opts, RecordSink& sink)
    : impl_(std::make_unique<Impl>(templates, opts, sink)) {}
FeedDecoder::~FeedDecoder() = default;

void FeedDecoder::frame(std::span<const uint8_t> bytes, uint64_t ts_ns, uint64_t xdp_ts_ns,
                        uint64_t rx_ns) {
    impl_->frame(bytes, ts_ns, xdp_ts_ns, rx_ns);
}

void FeedDecoder::datagram(std::span<const uint8_t> payload, std::string_view src,
                           std::string_view dst, uint64_t ts_ns, uint64_t rx_ns) {
    impl_->now_ts = ts_ns;
    impl_->now_xdp = 0;
    impl_->now_rx = rx_ns;
    impl_->socket_datagram(payload, src, dst);
}

void FeedDecoder::stream_bytes(std::span<const uint8_t> bytes, uint64_t ts_ns, uint64_t rx_ns) {
    if (!impl_->file) {
        impl_->file = std::make_unique<Stream>(impl_->templates);
        impl_->file->src = "file";
    }
    impl_->now_ts = ts_ns;
    impl_->now_xdp = 0;
    impl_->now_rx = rx_ns;
    impl_->stream_data(*impl_->file, bytes);
}

void FeedDecoder::name_stream(std::string_view src, std::string_view dst) {
    if (!impl_->file) impl_->file = std::make_unique<Stream>(impl_->templates);
    impl_->file->src = std::string(src);
    impl_->file->dst = std::string(dst);
}

void FeedDecoder::advance_time(uint64_t now_ns) { impl_->reasm.advance_time(now_ns); }

void FeedDecoder::finish() {
    impl_->reasm.flush();
    if (impl_->file) impl_->end_stream(*impl_->file);
}

const FeedCounters& FeedDecoder::counters() const { return impl_->c; }
const ReassemblyCounters& FeedDecoder::reassembly() const { return impl_->reasm.counters(); }
const SequenceCounters& FeedDecoder::udp_sequence() const { return impl_->udp_seq.counters(); }

}  // namespace etcpipe::md

namespace etcpipe::md {

void print_counters(std::FILE* out, const FeedCounters& c, const ReassemblyCounters& r,
                    const SequenceCounters& s, bool all) {
    struct Row {
        const char* name;
        uint64_t value;
    };
    const Row rows[] = {
        {"frames", c.frames},
        {"frames_not_l4", c.not_l4},
        {"frames_not_feed", c.not_feed},
        {"ip_fragments", c.fragments},
        {"udp_datagrams", c.udp_datagrams},
        {"udp_short", c.udp_short},
        {"udp_seq_gaps", s.gaps},
        {"udp_seq_missing", s.missing()},
        {"udp_seq_duplicates", s.duplicates},
        {"udp_seq_reordered", s.reordered},
        {"tcp_segments", c.tcp_segments},
        {"records", c.records},
        {"decode_errors", c.decode_errors},
        {"step_messages", c.step_messages},
        {"step_errors", c.step_errors},
        {"step_messages_lost", c.step_lost},
        {"blocks", c.blocks},
        {"block_errors", c.block_errors},
        {"resyncs", c.resyncs},
        {"bytes_skipped", c.bytes_skipped},
        {"truncated_at_end", c.truncated_at_end},
        {"tcp_in_order_segments", r.in_order_segments},
        {"tcp_out_of_order_segments", r.out_of_order_segments},
        {"tcp_duplicate_segments", r.duplicate_segments},
        {"tcp_duplicate_bytes", r.duplicate_bytes},
        {"tcp_overlap_equal_bytes", r.overlap_equal_bytes},
        {"tcp_overlap_mismatch_bytes", r.overlap_mismatch_bytes},
        {"tcp_gaps_buffer_full", r.gaps_buffer_full},
        {"tcp_gaps_holes_full", r.gaps_holes_full},
        {"tcp_gaps_timeout", r.gaps_timeout},
        {"tcp_gaps_at_close", r.gaps_at_close},
        {"tcp_bytes_delivered", r.bytes_delivered},
        {"tcp_bytes_lost", r.bytes_lost},
        {"tcp_opened_syn", r.connections_opened_syn},
        {"tcp_opened_midstream", r.connections_opened_midstream},
        {"tcp_closed_fin", r.connections_closed_fin},
        {"tcp_closed_rst", r.connections_closed_rst},
        {"tcp_closed_flush", r.connections_closed_flush},
        {"tcp_evictions_lru", r.evictions_lru},
        {"tcp_segments_before_start", r.segments_before_start},
        {"tcp_segments_after_fin", r.segments_after_fin},
        {"tcp_segments_after_close", r.segments_after_close},
        {"tcp_segments_ignored", r.segments_ignored},
    };
    for (const Row& row : rows)
        if (all || row.value)
            std::fprintf(out, "  %-28s %llu\n", row.name, static_cast<unsigned long long>(row.value));
}

}  // namespace etcpipe::md
