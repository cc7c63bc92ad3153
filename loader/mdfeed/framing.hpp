// Market-data framing: how FAST messages are cut out of a byte stream (TCP) or
// a datagram (UDP). Three stream framings are understood:
//   * STEP, the SSE/SZSE FIX-like transport whose tag 96 carries raw FAST bytes;
//   * 4-byte length prefixes (little or big endian) in front of each payload;
//   * the FAST specification's block length (a stop-bit encoded uInt32).
// For UDP, an optional 4-byte sequence preamble and a per-channel tracker of
// gaps, duplicates and late arrivals.
//
// Parsers are cursor style: they look at a span, never allocate on success, and
// answer Ok (with the bytes consumed), NeedMore (the span is a valid prefix:
// call again with more bytes) or Error (with a message that names the field,
// what was expected, what was found and the byte offset). Sizes are capped so
// that garbage cannot make a caller wait forever for a huge message. Only the
// standard library and common/result.hpp are used, so these sources also build
// into a libFuzzer target.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.hpp"

namespace etcpipe::md {

// How messages are delimited. Raw: the stream or datagram is FAST messages back
// to back. Udp: one datagram holds FAST messages, maybe after a sequence
// preamble (UdpOptions).
enum class Framing { Raw, Step, Len32Le, Len32Be, Block, Udp };

// "raw", "step", "len32le", "len32be", "block", "udp" (the error lists them).
[[nodiscard]] Result<Framing> parse_framing(std::string_view name);
[[nodiscard]] const char* framing_name(Framing f);

enum class ParseStatus { Ok, NeedMore, Error };

// ---- STEP ----------------------------------------------------------------
// 8=STEP.1.0.0␁9=<BodyLength>␁35=<MsgType>␁49=..␁56=..␁34=<MsgSeqNum>␁
// 52=<SendingTime>␁ … 95=<N>␁96=<N raw bytes>␁10=<CheckSum>␁   (␁ = 0x01)
// BodyLength counts the bytes after the ␁ ending the 9= field up to and
// including the ␁ before "10="; CheckSum is the sum of every byte before "10="
// mod 256 as three digits. Tag 96 is binary (it may hold 0x01 and '=') and its
// length is tag 95, which must come before it.
inline constexpr std::string_view kStepBeginString = "8=STEP.1.0.0\x01";
inline constexpr char kSoh = '\x01';
// A BodyLength above this is an error, not a message to wait for.
inline constexpr size_t kStepMaxBodyLength = size_t{1} << 20;

struct StepResult {
    ParseStatus status = ParseStatus::NeedMore;
    size_t consumed = 0;               // Ok: bytes of the whole message, trailer included
    std::span<const uint8_t> fast;     // Ok: tag 96 (empty when the message has no 95/96)
    uint64_t seq = 0;                  // Ok: tag 34, 0 when absent
    std::string_view msg_type;         // Ok: tag 35 (points into buf)
    std::string_view sending_time;     // Ok: tag 52 (points into buf)
    std::string error;                 // Error: "tag 10 (CheckSum): expected 123, got 045 at offset 88"
    size_t error_offset = 0;           // Error: byte offset in buf the message refers to
};

// Parses one STEP message at the start of buf (which must begin at "8=").
// Messages without tags 95/96 (logon, heartbeat) are Ok with an empty payload;
// tag 96 without a preceding 95 is an error. After an Error the caller resyncs
// with find_step_begin(buf.subspan(1)).
[[nodiscard]] StepResult parse_step(std::span<const uint8_t> buf);

// Offset of the first "8=STEP.1.0.0␁" in buf. When there is none: the offset of
// the longest tail of buf that is a prefix of it (so a header split across two
// segments is kept: the caller drops only the bytes before it), or buf.size()
// when no tail could start one.
[[nodiscard]] size_t find_step_begin(std::span<const uint8_t> buf);

// Appends one valid STEP message carrying `fast` in tag 96.
void append_step(std::vector<uint8_t>& out, std::span<const uint8_t> fast, uint64_t seq,
                 std::string_view msg_type, std::string_view sending_time,
                 std::string_view sender = "ETCPIPE", std::string_view target = "MD");

// ---- length-prefixed blocks ---------------------------------------------
// A length above this is an error (garbage), not a block to wait for.
inline constexpr size_t kMaxBlockLength = size_t{16} << 20;

struct BlockResult {
    ParseStatus status = ParseStatus::NeedMore;
    size_t consumed = 0;               // Ok: prefix + payload
    std::span<const uint8_t> payload;  // Ok
    std::string error;                 // Error
};

// kind: Len32Le / Len32Be (4-byte length, then payload) or Block (stop-bit
// encoded uInt32 length, at most 5 bytes, then payload). Another kind is an Error.
[[nodiscard]] BlockResult parse_block(std::span<const uint8_t> buf, Framing kind);
// Appends prefix + payload. kind must be Len32Le, Len32Be or Block (else nothing).
void append_block(std::vector<uint8_t>& out, std::span<const uint8_t> payload, Framing kind);

// ---- UDP -----------------------------------------------------------------
struct UdpOptions {
    bool seq_preamble = false;  // 4-byte big-endian sequence number in front of the messages
};

struct UdpDatagram {
    ParseStatus status = ParseStatus::Ok;  // Error: preamble asked for, datagram shorter than 4
    bool has_seq = false;
    uint32_t seq = 0;
    std::span<const uint8_t> messages;     // what follows the preamble
};
[[nodiscard]] UdpDatagram split_udp(std::span<const uint8_t> datagram, const UdpOptions& opt);

// Per-channel sequence accounting, wrap-safe at 2^32 (differences are taken as
// signed 32-bit, so "ahead" means less than 2^31 ahead).
//   * the first datagram of a channel starts it (its seq is expected next + 1);
//   * seq == expected: in order;
//   * seq ahead of expected: the skipped numbers are added to `gaps`;
//   * seq behind expected, within the last kWindow numbers and never seen: a
//     late (reordered) arrival, which also fills one of the numbers counted in
//     gaps (so missing() = gaps - reordered);
//   * seq behind and already seen, or older than the window: a duplicate;
//   * seq before the channel's first datagram (reordered at the very start):
//     before_start (it was never counted in gaps).
struct SequenceCounters {
    uint64_t channels = 0;    // channels started
    uint64_t datagrams = 0;   // every datagram seen
    uint64_t in_order = 0;
    uint64_t gaps = 0;        // sequence numbers skipped when a datagram jumped ahead
    uint64_t gap_events = 0;  // jumps ahead
    uint64_t duplicates = 0;
    uint64_t reordered = 0;   // late arrivals of skipped numbers
    uint64_t before_start = 0;
    [[nodiscard]] uint64_t missing() const { return gaps - reordered; }
};

// Allocates once per new channel (a hash-map node), never per datagram.
class SequenceTracker {
  public:
    static constexpr uint32_t kWindow = 1024;  // late arrivals recognised this far back

    // Accounts one datagram of channel `channel` (any key the caller builds,
    // e.g. from the destination address and port).
    void observe(uint64_t channel, uint32_t seq);

    [[nodiscard]] const SequenceCounters& counters() const { return total_; }
    // Counters of one channel; all zero for a channel never seen.
    [[nodiscard]] SequenceCounters counters(uint64_t channel) const;
    [[nodiscard]] size_t channels() const { return chans_.size(); }

  private:
    struct Channel {
        uint32_t start = 0;                             // first sequence number seen
        uint32_t next = 0;                              // expected sequence number
        std::array<uint64_t, kWindow / 64> seen{};      // bit (s % kWindow): s received
        SequenceCounters c;
    };
    SequenceCounters total_;
    std::unordered_map<uint64_t, Channel> chans_;
};

}  // namespace etcpipe::md
