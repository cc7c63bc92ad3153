// TCP reassembly as seen from a switch mirror (SPAN) port.
//
// We never send and never acknowledge: we see copies of the segments of one
// or both directions, with the mirror's own losses, duplicates and reordering.
// Each direction in which data flows is its own connection; the sink gets the
// bytes in stream order, told where holes were skipped, so a consumer (the
// STEP / block deframer) can resync after one.
//
// Rules, one decision each (every decision has a counter in ReassemblyCounters):
//  * Key: the 4-tuple of one direction (src → dst). The reverse direction is
//    another connection; an RST in either direction closes both.
//  * Start: a SYN starts the stream at seq+1 (opened_syn); the first segment
//    with payload of an unknown key starts it at its seq (opened_midstream).
//    Segments without payload and without SYN for an unknown key open nothing
//    (segments_ignored).
//  * Sequence numbers are taken relative to the delivery point as signed
//    32-bit differences and kept as 64-bit stream offsets, so streams cross
//    2^32 freely (a segment more than 2^31 away is mis-read, as in TCP).
//  * Data before the stream start (offset < 0) is dropped (segments_before_start).
//  * Data behind the delivery point (already delivered: a retransmission) is a
//    duplicate (duplicate_segments / duplicate_bytes); it is not compared.
//  * Data ahead of the delivery point is copied into the connection's reorder
//    ring (buffer_bytes, preallocated) and held until the hole before it fills.
//  * Overlaps with bytes still held (or just delivered from the ring): the first
//    bytes received win; the later copy is compared byte by byte
//    (overlap_equal_bytes / overlap_mismatch_bytes).
//  * Buffer-full gap: a segment ending more than buffer_bytes past the delivery
//    point forces the oldest hole(s) to be declared lost (gaps_buffer_full);
//    a segment far ahead with nothing held before it skips straight to it.
//  * Holes-full gap: more than max_holes disjoint runs held declares the oldest
//    hole lost (gaps_holes_full).
//  * Timeout gap: a hole open longer than gap_timeout_ns (since the first byte
//    after it arrived) is declared lost (gaps_timeout); checked for the segment's
//    connection on segment() and for all of them on advance_time().
//  * A gap: on_gap(bytes lost) then delivery resumes at the earliest held byte.
//  * FIN: the stream ends at the FIN's seq; the connection closes (Fin) once
//    everything up to it is delivered; a FIN behind a hole waits for the hole or
//    its timeout. Data past the FIN is dropped (segments_after_fin).
//  * RST: closes at once (Rst); held data is delivered first, holes declared.
//  * A SYN on an open connection with the same ISN is a retransmission
//    (syn_retransmits); with another ISN the old one closes (Reused) and a new
//    one opens. A closed connection's slot keeps its key until reused, so late
//    retransmissions up to kClosedWindow behind its end are dropped
//    (segments_after_close) instead of opening a new stream; other data reopens.
//  * Table full: the least recently used open connection is closed (Evicted,
//    evictions_lru), held data delivered first; closed slots are reused before.
//  * flush(): every open connection delivers what it holds (holes, and a hole
//    before a pending FIN, declared: gaps_at_close) and closes (Flush).
// No allocation after construction: slots, rings and run lists are preallocated.
// The sink must not call back into the Reassembler.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "mdfeed/packet.hpp"

namespace etcpipe::md {

struct ConnKey {
    uint8_t family = 4;  // 4 or 6
    std::array<uint8_t, 16> src{};
    std::array<uint8_t, 16> dst{};
    uint16_t sport = 0;
    uint16_t dport = 0;

    bool operator==(const ConnKey&) const = default;
    [[nodiscard]] ConnKey reversed() const;
    [[nodiscard]] static ConnKey from(const L4View& v);  // src → dst of the view
};

struct ConnKeyHash {
    [[nodiscard]] size_t operator()(const ConnKey& k) const noexcept;
};

// Memory: max_connections x (buffer_bytes + max_holes x 24 bytes), allocated
// by the constructor. A 0 in a size is taken as 1.
struct ReassemblerOptions {
    size_t buffer_bytes = 32 * 1024;      // reorder ring per connection
    size_t max_connections = 64;          // preallocated slots; LRU eviction beyond
    uint64_t gap_timeout_ns = 5'000'000;  // a hole older than this is declared lost
    size_t max_holes = 64;                // disjoint held runs per connection
};

enum class CloseReason { Fin, Rst, Evicted, Flush, Reused };
[[nodiscard]] const char* close_reason_name(CloseReason r);

// Segment accounting: every segment lands in exactly one of in_order_segments,
// out_of_order_segments, duplicate_segments, segments_before_start,
// segments_after_fin, segments_after_close, segments_ignored, segments_no_payload
// (those sum to `segments`). Payload bytes: payload_bytes_in = bytes_accepted +
// duplicate_bytes + overlap_equal_bytes + overlap_mismatch_bytes +
// bytes_before_start + bytes_after_fin + bytes_after_close + bytes_ignored, and
// bytes_accepted = bytes_delivered + bytes held now (0 once all are closed).
// A closed stream: bytes_delivered + bytes_lost = its length.
struct ReassemblyCounters {
    uint64_t segments = 0;
    uint64_t payload_bytes_in = 0;
    uint64_t bytes_accepted = 0;   // new stream bytes (delivered now or held)
    uint64_t bytes_delivered = 0;
    uint64_t in_order_segments = 0;      // started at the delivery point
    uint64_t out_of_order_segments = 0;  // brought new bytes ahead of it
    uint64_t duplicate_segments = 0;     // brought no new byte
    uint64_t duplicate_bytes = 0;        // behind the delivery point, not compared
    uint64_t overlap_equal_bytes = 0;
    uint64_t overlap_mismatch_bytes = 0;  // first bytes received won
    uint64_t gaps_buffer_full = 0;
    uint64_t gaps_holes_full = 0;
    uint64_t gaps_timeout = 0;
    uint64_t gaps_at_close = 0;  // holes declared by RST, eviction, flush
    uint64_t bytes_lost = 0;
    uint64_t connections_opened_syn = 0;
    uint64_t connections_opened_midstream = 0;
    uint64_t connections_closed_fin = 0;
    uint64_t connections_closed_rst = 0;
    uint64_t connections_closed_flush = 0;
    uint64_t connections_reused = 0;  // SYN with a new ISN on an open connection
    uint64_t evictions_lru = 0;
    uint64_t syn_retransmits = 0;
    uint64_t segments_before_start = 0;
    uint64_t bytes_before_start = 0;
    uint64_t segments_after_fin = 0;
    uint64_t bytes_after_fin = 0;
    uint64_t segments_after_close = 0;
    uint64_t bytes_after_close = 0;
    uint64_t segments_ignored = 0;  // unknown key without payload or SYN; RST payload; not TCP
    uint64_t bytes_ignored = 0;
    uint64_t segments_no_payload = 0;  // SYN / FIN / RST / ACK only, on a known connection
};

class ReassemblySink {
  public:
    virtual ~ReassemblySink() = default;
    virtual void on_open(uint32_t conn, const ConnKey& key, bool midstream) = 0;
    virtual void on_data(uint32_t conn, std::span<const uint8_t> in_order_bytes, uint64_t ts_ns) = 0;
    // The next on_data resumes after a hole of bytes_lost: the consumer resyncs
    // (e.g. at the next STEP header).
    virtual void on_gap(uint32_t conn, uint64_t bytes_lost) = 0;
    virtual void on_close(uint32_t conn, CloseReason why) = 0;
};

class Reassembler {
  public:
    // Late retransmissions this far behind a closed stream's end are dropped.
    static constexpr uint32_t kClosedWindow = 16u << 20;

    Reassembler(const ReassemblerOptions& opt, ReassemblySink& sink);
    Reassembler(const Reassembler&) = delete;
    Reassembler& operator=(const Reassembler&) = delete;

    void segment(const ConnKey& key, uint32_t seq, uint8_t tcp_flags, std::span<const uint8_t> payload,
                 uint64_t ts_ns);
    void segment(const L4View& tcp, uint64_t ts_ns);  // not TCP: segments_ignored
    void advance_time(uint64_t now_ns);                // declares timed-out gaps
    void flush();                                      // end of input: deliver, close all

    [[nodiscard]] const ReassemblyCounters& counters() const { return c_; }
    [[nodiscard]] size_t connections() const { return open_count_; }  // open ones
    [[nodiscard]] size_t buffered_bytes() const;                       // held in rings now

  private:
    static constexpr uint32_t kNone = 0xffffffffu;
    enum class State : uint8_t { Free, Open, Closed };
    enum class GapKind : uint8_t { BufferFull, HolesFull, Timeout, AtClose };

    struct Run {  // held bytes [begin, end) of the stream
        uint64_t begin;
        uint64_t end;
        uint64_t since_ns;  // when its first byte arrived
    };
    struct Conn {
        ConnKey key;
        size_t hash = 0;
        uint32_t id = 0;
        State state = State::Free;
        bool fin = false;
        uint32_t prev = kNone;  // links in open_ (LRU) or spare_
        uint32_t next = kNone;
        uint32_t base_seq = 0;  // seq of stream offset 0
        uint64_t deliver = 0;   // stream offset of the next byte to deliver
        uint64_t fin_off = 0;
        uint64_t fin_ns = 0;
        uint32_t nruns = 0;
        Run* runs = nullptr;
        uint8_t* ring = nullptr;
    };
    struct List {
        uint32_t head = kNone;
        uint32_t tail = kNone;
    };

    uint32_t find(const ConnKey& key, size_t hash) const;
    void table_insert(uint32_t slot);
    void table_erase(uint32_t slot);
    void list_unlink(List& l, uint32_t slot);
    void list_push_front(List& l, uint32_t slot);
    void list_push_back(List& l, uint32_t slot);

    uint32_t acquire_slot();
    void open_in(uint32_t slot, const ConnKey& key, size_t hash, uint32_t start_seq, bool midstream);
    void close(uint32_t slot, CloseReason why);
    void data(Conn& c, int64_t at, std::span<const uint8_t> payload);
    void deliver_direct(Conn& c, std::span<const uint8_t> bytes);
    void drain(Conn& c);
    void gap_to(Conn& c, uint64_t to, GapKind kind);
    void store(Conn& c, uint64_t at, std::span<const uint8_t> bytes);
    void compare(Conn& c, uint64_t at, std::span<const uint8_t> bytes);
    void check_timeout(uint32_t slot);
    void close_reverse_on_rst(const ConnKey& key);

    ReassemblerOptions opt_;
    ReassemblySink& sink_;
    size_t cap_;  // ring bytes per connection
    std::vector<Conn> conns_;
    std::vector<Run> runs_;
    std::vector<uint8_t> rings_;
    std::vector<uint32_t> table_;  // open addressing, linear probing: slot or kNone
    size_t table_mask_ = 0;
    List open_;   // most recently used first
    List spare_;  // free slots, then closed ones oldest first
    size_t open_count_ = 0;
    uint32_t last_ = kNone;  // slot of the previous segment (lookup shortcut)
    uint32_t next_id_ = 1;
    uint64_t now_ = 0;
    uint64_t ts_ = 0;  // timestamp given to on_data
    ReassemblyCounters c_;
};

}  // namespace etcpipe::md
