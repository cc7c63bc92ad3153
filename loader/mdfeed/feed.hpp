// From frames to decoded FAST records: the one pipeline behind `md decode`
// (captures and raw files), `md listen` (AF_XDP) and `md bench`.
//
//   Ethernet frame ─ parse_frame ─┬─ UDP datagram ─ [seq preamble] ─ messages
//                                 └─ TCP segment ─ Reassembler ─ stream
//   stream ─ framing (raw | STEP | length-prefixed) ─ fast::Decoder ─ RecordSink
//
// Each TCP direction and each UDP channel (destination address:port) has its
// own decoder, so dictionaries never leak between streams. After a gap the
// stream resumes at the next STEP header (STEP framing) or at the next segment
// (the others, whose boundaries cannot be found inside a stream); every byte
// skipped and every message lost is counted.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "mdfeed/fast.hpp"
#include "mdfeed/framing.hpp"
#include "mdfeed/packet.hpp"
#include "mdfeed/reassembler.hpp"

namespace etcpipe::md {

struct FeedOptions {
    Framing tcp_framing = Framing::Step;  // framing of TCP streams and raw files
    bool framing_given = false;           // --framing given: also used for files/UDP
    bool reset_per_block = false;         // reset dictionaries at each length-prefixed block
    bool udp_reset_per_datagram = true;   // reset dictionaries at each datagram
    bool udp_seq_preamble = false;        // 4-byte big-endian sequence number before the messages
    ReassemblerOptions reassembly;
    // Feed selection for captures (empty: every UDP datagram / TCP stream).
    std::vector<uint16_t> udp_ports;
    std::vector<std::pair<std::string, uint16_t>> tcp_servers;  // numeric address, port
};

// Where a record came from.
struct RecordContext {
    uint64_t ts_ns = 0;       // capture or receive time of the frame that completed it
    uint64_t xdp_ts_ns = 0;   // XDP metadata receive stamp (md listen), 0 otherwise
    uint64_t rx_ns = 0;       // CLOCK_MONOTONIC when user space got the frame (live paths), 0 otherwise
    std::string_view src, dst;  // "ADDR:PORT"
    uint64_t seq = 0;         // STEP MsgSeqNum or UDP preamble sequence number
    bool has_seq = false;
    bool tcp = false;
};

class RecordSink {
  public:
    virtual ~RecordSink() = default;
    virtual void on_record(const fast::MessageView& m, const RecordContext& ctx) = 0;
    // A problem with the stream named by ctx; decoding goes on where it can.
    virtual void on_problem(const RecordContext& ctx, const std::string& what) = 0;
};

struct FeedCounters {
    uint64_t frames = 0, not_l4 = 0, not_feed = 0, fragments = 0;
    uint64_t udp_datagrams = 0, udp_short = 0;
    uint64_t tcp_segments = 0;
    uint64_t records = 0, decode_errors = 0;
    uint64_t step_messages = 0, step_errors = 0, step_lost = 0;  // lost: MsgSeqNum gaps
    uint64_t blocks = 0, block_errors = 0;
    uint64_t resyncs = 0, bytes_skipped = 0, truncated_at_end = 0;
};

class FeedDecoder {
  public:
    FeedDecoder(const fast::TemplateSet& templates, const FeedOptions& opts, RecordSink& sink);
    ~FeedDecoder();
    FeedDecoder(const FeedDecoder&) = delete;
    FeedDecoder& operator=(const FeedDecoder&) = delete;

    // One Ethernet frame (from a capture, AF_XDP or AF_PACKET).
    // xdp_ts_ns, rx_ns: the live paths' stamps (RecordContext), 0 for captures.
    void frame(std::span<const uint8_t> bytes, uint64_t ts_ns, uint64_t xdp_ts_ns = 0,
               uint64_t rx_ns = 0);
    // One UDP payload received from a kernel socket (src/dst "ADDR:PORT").
    void datagram(std::span<const uint8_t> payload, std::string_view src, std::string_view dst,
                  uint64_t ts_ns, uint64_t rx_ns);
    // Bytes of one stream in the TCP framing: a raw file, or what a kernel
    // TCP socket received (rx_ns: when).
    void stream_bytes(std::span<const uint8_t> bytes, uint64_t ts_ns = 0, uint64_t rx_ns = 0);
    // The "src"/"dst" of that stream's records (default "file" and none).
    void name_stream(std::string_view src, std::string_view dst);
    // Time passes without frames (declares timed-out reassembly gaps).
    void advance_time(uint64_t now_ns);
    // End of input: buffered data delivered, partial messages counted.
    void finish();

    [[nodiscard]] const FeedCounters& counters() const;
    [[nodiscard]] const ReassemblyCounters& reassembly() const;
    [[nodiscard]] const SequenceCounters& udp_sequence() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Counters as "name value" lines (zero ones left out unless all).
void print_counters(std::FILE* out, const FeedCounters& c, const ReassemblyCounters& r,
                    const SequenceCounters& s, bool all = false);

}  // namespace etcpipe::md
