// Mirror-port TCP reassembly: see reassembler.hpp for the rules.
//
// Per connection: the delivery point `deliver` (a 64-bit stream offset), a ring
// of cap_ bytes indexed by stream offset mod cap_, and a sorted list of the
// disjoint runs [begin, end) held in it. Invariants: every run begins after
// `deliver` (a run reaching it is delivered at once) and ends at most cap_
// past it, so no two held bytes share a ring byte.
#include "mdfeed/reassembler.hpp"

#include <algorithm>
#include <cstring>

namespace etcpipe::md {

namespace {

uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

}  // namespace

ConnKey ConnKey::reversed() const {
    ConnKey r = *this;
    r.src = dst;
    r.dst = src;
    r.sport = dport;
    r.dport = sport;
    return r;
}

ConnKey ConnKey::from(const L4View& v) {
    ConnKey k;
    k.family = v.family;
    k.src = v.src;
    k.dst = v.dst;
    k.sport = v.sport;
    k.dport = v.dport;
    return k;
}

size_t ConnKeyHash::operator()(const ConnKey& k) const noexcept {
    uint64_t h = uint64_t{k.family} | uint64_t{k.sport} << 8 | uint64_t{k.dport} << 24;
    h = mix(h ^ load64(k.src.data()));
    h = mix(h ^ load64(k.src.data() + 8));
    h = mix(h ^ load64(k.dst.data()));
    h = mix(h ^ load64(k.dst.data() + 8));
    return static_cast<size_t>(h);
}

const char* close_reason_name(CloseReason r) {
    switch (r) {
        case CloseReason::Fin: return "fin";
        case CloseReason::Rst: return "rst";
        case CloseReason::Evicted: return "evicted";
        case CloseReason::Flush: return "flush";
        case CloseReason::Reused: return "reused";
    }
    return "?";
}

Reassembler::Reassembler(const ReassemblerOptions& opt, ReassemblySink& sink)
    : opt_(opt), sink_(sink), cap_(std::max<size_t>(opt.buffer_bytes, 1)) {
    opt_.max_connections = std::max<size_t>(opt_.max_connections, 1);
    opt_.max_holes = std::max<size_t>(opt_.max_holes, 1);
    const size_t n = opt_.max_connections;
    conns_.resize(n);
    runs_.resize(n * opt_.max_holes);
    rings_.resize(n * cap_);
    size_t tsize = 8;
    while (tsize < 2 * n) tsize *= 2;
    table_.assign(tsize, kNone);
    table_mask_ = tsize - 1;
    for (size_t i = 0; i < n; ++i) {
        conns_[i].runs = &runs_[i * opt_.max_holes];
        conns_[i].ring = &rings_[i * cap_];
        list_push_back(spare_, static_cast<uint32_t>(i));
    }
}

// ---- table and lists -------------------------------------------------------

uint32_t Reassembler::find(const ConnKey& key, size_t hash) const {
    for (size_t i = hash & table_mask_;; i = (i + 1) & table_mask_) {
        const uint32_t s = table_[i];
        if (s == kNone) return kNone;
        if (conns_[s].hash == hash && conns_[s].key == key) return s;
    }
}

void Reassembler::table_insert(uint32_t slot) {
    size_t i = conns_[slot].hash & table_mask_;
    while (table_[i] != kNone) i = (i + 1) & table_mask_;
    table_[i] = slot;
}

void Reassembler::table_erase(uint32_t slot) {
    size_t i = conns_[slot].hash & table_mask_;
    while (table_[i] != slot) i = (i + 1) & table_mask_;
    // Backward-shift deletion keeps every probe chain unbroken.
    table_[i] = kNone;
    for (size_t j = (i + 1) & table_mask_; table_[j] != kNone; j = (j + 1) & table_mask_) {
        const size_t home = conns_[table_[j]].hash & table_mask_;
        // Entry j stays when its home lies cyclically in (i, j].
        const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            table_[i] = table_[j];
            table_[j] = kNone;
            i = j;
        }
    }
}

void Reassembler::list_unlink(List& l, uint32_t slot) {
    Conn& c = conns_[slot];
    if (c.prev != kNone) conns_[c.prev].next = c.next; else l.head = c.next;
    if (c.next != kNone) conns_[c.next].prev = c.prev; else l.tail = c.prev;
    c.prev = c.next = kNone;
}

void Reassembler::list_push_front(List& l, uint32_t slot) {
    Conn& c = conns_[slot];
    c.prev = kNone;
    c.next = l.head;
    if (l.head != kNone) conns_[l.head].prev = slot; else l.tail = slot;
    l.head = slot;
}

void Reassembler::list_push_back(List& l, uint32_t slot) {
    Conn& c = conns_[slot];
    c.next = kNone;
    c.prev = l.tail;
    if (l.tail != kNone) conns_[l.tail].next = slot; else l.head = slot;
    l.tail = slot;
}

// ---- connection life -------------------------------------------------------

uint32_t Reassembler::acquire_slot() {
    uint32_t s = spare_.head;
    if (s == kNone) {
        s = open_.tail;
        ++c_.evictions_lru;
        close(s, CloseReason::Evicted);  // moves it to spare_
    }
    list_unlink(spare_, s);
    if (conns_[s].state == State::Closed) table_erase(s);
    conns_[s].state = State::Free;
    return s;
}

void Reassembler::open_in(uint32_t slot, const ConnKey& key, size_t hash, uint32_t start_seq, bool midstream) {
    Conn& c = conns_[slot];
    c.key = key;
    c.hash = hash;
    c.id = next_id_++;
    c.state = State::Open;
    c.fin = false;
    c.base_seq = start_seq;
    c.deliver = 0;
    c.fin_off = 0;
    c.fin_ns = 0;
    c.nruns = 0;
    list_push_front(open_, slot);
    ++open_count_;
    ++(midstream ? c_.connections_opened_midstream : c_.connections_opened_syn);
    sink_.on_open(c.id, key, midstream);
}

void Reassembler::close(uint32_t slot, CloseReason why) {
    Conn& c = conns_[slot];
    while (c.nruns != 0) {
        gap_to(c, c.runs[0].begin, GapKind::AtClose);
        drain(c);
    }
    if (c.fin && c.deliver < c.fin_off) gap_to(c, c.fin_off, GapKind::AtClose);
    switch (why) {
        case CloseReason::Fin: ++c_.connections_closed_fin; break;
        case CloseReason::Rst: ++c_.connections_closed_rst; break;
        case CloseReason::Flush: ++c_.connections_closed_flush; break;
        case CloseReason::Evicted:  // counted by the caller (evictions_lru)
        case CloseReason::Reused: break;  // counted by the caller (connections_reused)
    }
    c.state = State::Closed;
    list_unlink(open_, slot);
    list_push_back(spare_, slot);
    --open_count_;
    sink_.on_close(c.id, why);
}

void Reassembler::close_reverse_on_rst(const ConnKey& key) {
    const ConnKey r = key.reversed();
    const uint32_t s = find(r, ConnKeyHash{}(r));
    if (s != kNone && conns_[s].state == State::Open) close(s, CloseReason::Rst);
}

// ---- data ------------------------------------------------------------------

void Reassembler::deliver_direct(Conn& c, std::span<const uint8_t> bytes) {
    sink_.on_data(c.id, bytes, ts_);
    c_.bytes_delivered += bytes.size();
    c.deliver += bytes.size();
}

void Reassembler::drain(Conn& c) {
    while (c.nruns != 0 && c.runs[0].begin == c.deliver) {
        const Run r = c.runs[0];
        const size_t n = static_cast<size_t>(r.end - r.begin);
        const size_t idx = static_cast<size_t>(r.begin % cap_);
        const size_t first = std::min(n, cap_ - idx);
        sink_.on_data(c.id, {c.ring + idx, first}, ts_);
        if (n > first) sink_.on_data(c.id, {c.ring, n - first}, ts_);
        c_.bytes_delivered += n;
        c.deliver = r.end;
        std::memmove(c.runs, c.runs + 1, (c.nruns - 1) * sizeof(Run));
        --c.nruns;
    }
}

void Reassembler::gap_to(Conn& c, uint64_t to, GapKind kind) {
    if (to <= c.deliver) return;
    const uint64_t lost = to - c.deliver;
    switch (kind) {
        case GapKind::BufferFull: ++c_.gaps_buffer_full; break;
        case GapKind::HolesFull: ++c_.gaps_holes_full; break;
        case GapKind::Timeout: ++c_.gaps_timeout; break;
        case GapKind::AtClose: ++c_.gaps_at_close; break;
    }
    c_.bytes_lost += lost;
    c.deliver = to;
    sink_.on_gap(c.id, lost);
}

void Reassembler::compare(Conn& c, uint64_t at, std::span<const uint8_t> bytes) {
    size_t idx = static_cast<size_t>(at % cap_);
    size_t done = 0;
    while (done < bytes.size()) {
        const size_t n = std::min(bytes.size() - done, cap_ - idx);
        const uint8_t* held = c.ring + idx;
        const uint8_t* later = bytes.data() + done;
        if (std::memcmp(held, later, n) == 0) {
            c_.overlap_equal_bytes += n;
        } else {
            size_t diff = 0;
            for (size_t i = 0; i < n; ++i) diff += held[i] != later[i];
            c_.overlap_mismatch_bytes += diff;
            c_.overlap_equal_bytes += n - diff;
        }
        done += n;
        idx = 0;
    }
}

void Reassembler::store(Conn& c, uint64_t at, std::span<const uint8_t> bytes) {
    const size_t n = bytes.size();
    const size_t idx = static_cast<size_t>(at % cap_);
    const size_t first = std::min(n, cap_ - idx);
    std::memcpy(c.ring + idx, bytes.data(), first);
    if (n > first) std::memcpy(c.ring, bytes.data() + first, n - first);
    c_.bytes_accepted += n;

    const uint64_t end = at + n;
    uint32_t i = 0;
    while (i < c.nruns && c.runs[i].begin <= at) ++i;
    const bool join_prev = i > 0 && c.runs[i - 1].end == at;
    const bool join_next = i < c.nruns && c.runs[i].begin == end;
    if (join_prev && join_next) {
        c.runs[i - 1].end = c.runs[i].end;
        c.runs[i - 1].since_ns = std::min(c.runs[i - 1].since_ns, c.runs[i].since_ns);
        std::memmove(c.runs + i, c.runs + i + 1, (c.nruns - i - 1) * sizeof(Run));
        --c.nruns;
    } else if (join_prev) {
        c.runs[i - 1].end = end;
    } else if (join_next) {
        c.runs[i].begin = at;
    } else {
        std::memmove(c.runs + i + 1, c.runs + i, (c.nruns - i) * sizeof(Run));
        c.runs[i] = Run{at, end, now_};
        ++c.nruns;
    }
}

void Reassembler::data(Conn& c, int64_t at, std::span<const uint8_t> payload) {
    const uint8_t* p = payload.data();
    size_t len = payload.size();
    if (at < 0) {
        if (at + static_cast<int64_t>(len) <= 0) {
            ++c_.segments_before_start;
            c_.bytes_before_start += len;
            return;
        }
        const auto cut = static_cast<size_t>(-at);
        c_.bytes_before_start += cut;
        p += cut;
        len -= cut;
        at = 0;
    }
    uint64_t a = static_cast<uint64_t>(at);
    uint64_t end = a + len;
    if (c.fin && end > c.fin_off) {
        if (a >= c.fin_off) {
            ++c_.segments_after_fin;
            c_.bytes_after_fin += len;
            return;
        }
        c_.bytes_after_fin += end - c.fin_off;
        len = static_cast<size_t>(c.fin_off - a);
        end = c.fin_off;
    }
    if (end <= c.deliver) {
        ++c_.duplicate_segments;
        c_.duplicate_bytes += len;
        return;
    }
    if (a < c.deliver) {
        const auto cut = static_cast<size_t>(c.deliver - a);
        c_.duplicate_bytes += cut;
        p += cut;
        len -= cut;
        a = c.deliver;
    }
    const bool in_order = a == c.deliver;

    if (in_order && c.nruns == 0) {  // the common case: straight through, no copy
        deliver_direct(c, {p, len});
        c_.bytes_accepted += len;
        ++c_.in_order_segments;
        return;
    }

    const uint64_t accepted_before = c_.bytes_accepted;
    // Buffer full: what lies ahead must end within cap_ of the delivery point;
    // give up the oldest hole(s) until it does (or the segment is next).
    while (a > c.deliver && end - c.deliver > cap_) {
        uint64_t to = a;
        if (c.nruns != 0 && c.runs[0].begin < to) to = c.runs[0].begin;
        gap_to(c, to, GapKind::BufferFull);
        drain(c);
    }

    uint64_t pos = a;
    while (pos < end) {
        const uint8_t* q = p + (pos - a);
        if (pos < c.deliver) {  // just delivered from the ring: compare
            const auto n = static_cast<size_t>(std::min(end, c.deliver) - pos);
            compare(c, pos, {q, n});
            pos += n;
            continue;
        }
        uint32_t i = 0;
        while (i < c.nruns && c.runs[i].end <= pos) ++i;
        if (i < c.nruns && c.runs[i].begin <= pos) {  // held already: first wins
            const auto n = static_cast<size_t>(std::min(end, c.runs[i].end) - pos);
            compare(c, pos, {q, n});
            pos += n;
            continue;
        }
        const uint64_t lim = i < c.nruns ? std::min(end, c.runs[i].begin) : end;
        const auto n = static_cast<size_t>(lim - pos);
        if (pos == c.deliver) {
            deliver_direct(c, {q, n});
            c_.bytes_accepted += n;
            drain(c);
        } else {
            const bool joins = (i > 0 && c.runs[i - 1].end == pos) || (i < c.nruns && c.runs[i].begin == lim);
            if (!joins && c.nruns >= opt_.max_holes) {
                // Too many runs held: the oldest hole goes.
                gap_to(c, std::min(c.runs[0].begin, pos), GapKind::HolesFull);
                drain(c);
                continue;
            }
            store(c, pos, {q, n});
        }
        pos += n;
    }

    if (c_.bytes_accepted == accepted_before) ++c_.duplicate_segments;
    else if (in_order) ++c_.in_order_segments;
    else ++c_.out_of_order_segments;
}

void Reassembler::check_timeout(uint32_t slot) {
    Conn& c = conns_[slot];
    for (;;) {
        uint64_t since = 0;
        uint64_t to = 0;
        if (c.nruns != 0) {
            since = c.runs[0].since_ns;
            for (uint32_t i = 1; i < c.nruns; ++i) since = std::min(since, c.runs[i].since_ns);
            to = c.runs[0].begin;
        } else if (c.fin && c.deliver < c.fin_off) {
            since = c.fin_ns;
            to = c.fin_off;
        } else {
            break;
        }
        if (now_ < since || now_ - since <= opt_.gap_timeout_ns) break;
        gap_to(c, to, GapKind::Timeout);
        drain(c);
    }
    if (c.fin && c.deliver >= c.fin_off) close(slot, CloseReason::Fin);
}

// ---- entry points ----------------------------------------------------------

void Reassembler::segment(const ConnKey& key, uint32_t seq, uint8_t flags, std::span<const uint8_t> payload,
                          uint64_t ts_ns) {
    if (ts_ns > now_) now_ = ts_ns;
    ts_ = ts_ns;
    ++c_.segments;
    c_.payload_bytes_in += payload.size();
    const bool syn = (flags & kTcpSyn) != 0;
    const bool rst = (flags & kTcpRst) != 0;
    const bool fin = (flags & kTcpFin) != 0;

    uint32_t s = kNone;
    bool fresh = false;
    if (last_ != kNone && conns_[last_].state != State::Free && conns_[last_].key == key) {
        s = last_;
    } else {
        const size_t h = ConnKeyHash{}(key);
        s = find(key, h);
        if (s == kNone) {
            if (rst || (!syn && payload.empty())) {
                ++c_.segments_ignored;
                c_.bytes_ignored += payload.size();
                if (rst) close_reverse_on_rst(key);
                return;
            }
            s = acquire_slot();
            open_in(s, key, h, syn ? seq + 1 : seq, !syn);
            table_insert(s);
            fresh = true;
        }
    }
    last_ = s;
    Conn& c = conns_[s];

    if (!fresh) {
        if (c.state == State::Closed) {
            const auto behind = static_cast<int32_t>(seq - (c.base_seq + static_cast<uint32_t>(c.deliver)));
            if (rst || (!syn && (payload.empty() || (behind <= 0 && behind >= -static_cast<int64_t>(kClosedWindow))))) {
                ++c_.segments_after_close;
                c_.bytes_after_close += payload.size();
                if (rst) close_reverse_on_rst(key);
                return;
            }
            list_unlink(spare_, s);
            open_in(s, key, c.hash, syn ? seq + 1 : seq, !syn);
        } else {
            if (open_.head != s) {  // most recently used first
                list_unlink(open_, s);
                list_push_front(open_, s);
            }
            if (syn) {
                if (seq + 1 == c.base_seq) {
                    ++c_.syn_retransmits;
                } else {
                    ++c_.connections_reused;
                    close(s, CloseReason::Reused);
                    list_unlink(spare_, s);
                    open_in(s, key, c.hash, seq + 1, false);
                }
            }
        }
    }

    if (rst) {
        if (payload.empty()) {
            ++c_.segments_no_payload;
        } else {
            ++c_.segments_ignored;
            c_.bytes_ignored += payload.size();
        }
        close(s, CloseReason::Rst);
        close_reverse_on_rst(key);
        return;
    }

    const uint32_t dseq = syn ? seq + 1 : seq;
    const int64_t at = static_cast<int64_t>(c.deliver) +
                       static_cast<int32_t>(dseq - (c.base_seq + static_cast<uint32_t>(c.deliver)));
    if (!payload.empty()) data(c, at, payload);
    else ++c_.segments_no_payload;

    if (fin && !c.fin) {
        const int64_t fin_at = at + static_cast<int64_t>(payload.size());
        if (fin_at >= static_cast<int64_t>(c.deliver)) {  // a FIN behind delivered data is stale
            c.fin = true;
            c.fin_off = static_cast<uint64_t>(fin_at);
            c.fin_ns = now_;
        }
    }
    check_timeout(s);  // also closes on a FIN that has been reached
}

void Reassembler::segment(const L4View& tcp, uint64_t ts_ns) {
    if (tcp.proto != kProtoTcp) {
        if (ts_ns > now_) now_ = ts_ns;
        ++c_.segments;
        c_.payload_bytes_in += tcp.payload.size();
        ++c_.segments_ignored;
        c_.bytes_ignored += tcp.payload.size();
        return;
    }
    segment(ConnKey::from(tcp), tcp.seq, tcp.flags, tcp.payload, ts_ns);
}

void Reassembler::advance_time(uint64_t now_ns) {
    if (now_ns > now_) now_ = now_ns;
    ts_ = now_;
    for (uint32_t s = open_.head; s != kNone;) {
        const uint32_t next = conns_[s].next;
        check_timeout(s);
        s = next;
    }
}

void Reassembler::flush() {
    ts_ = now_;
    while (open_.head != kNone) close(open_.head, CloseReason::Flush);
}

size_t Reassembler::buffered_bytes() const {
    size_t n = 0;
    for (uint32_t s = open_.head; s != kNone; s = conns_[s].next)
        for (uint32_t i = 0; i < conns_[s].nruns; ++i)
            n += static_cast<size_t>(conns_[s].runs[i].end - conns_[s].runs[i].begin);
    return n;
}

}  // namespace etcpipe::md
