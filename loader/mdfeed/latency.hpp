// One-way latency of a market-data feed, from the send stamp a record
// carries (SendTimeNs, CLOCK_MONOTONIC ns, written by `md send`) to the
// moment it is decoded, split where the path gives a stamp: sender → XDP
// (the md_meta receive stamp) → user space (frame read from the ring or the
// socket) → decoded. Sender and receiver share the machine, so the clocks
// are one.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "mdfeed/feed.hpp"
#include "mdfeed/records_out.hpp"

namespace etcpipe::md {

struct LatencySamples {
    std::vector<uint64_t> total;        // send → decoded, ns
    std::vector<uint64_t> to_xdp;       // send → XDP stamp (AF_XDP path only)
    std::vector<uint64_t> to_user;      // XDP stamp (or send) → frame in user space
    std::vector<uint64_t> decode;       // frame in user space → decoded
    uint64_t unstamped = 0;             // records without SendTimeNs
};

struct LatencyRow {
    size_t samples = 0;
    double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};
// Sorts `ns` in place.
[[nodiscard]] LatencyRow summarize_ns(std::vector<uint64_t>& ns);

// Measures every record, then hands it on to `next` (may be null).
class LatencySink : public RecordSink {
  public:
    LatencySink(const fast::TemplateSet& set, RecordSink* next, size_t reserve = 1 << 16);
    void on_record(const fast::MessageView& m, const RecordContext& ctx) override;
    void on_problem(const RecordContext& ctx, const std::string& what) override;
    [[nodiscard]] LatencySamples& samples() { return s_; }
    [[nodiscard]] uint64_t problems() const { return problems_; }
    // Records seen so far; safe to read from another thread while running.
    [[nodiscard]] uint64_t seen() const { return seen_.load(std::memory_order_relaxed); }

  private:
    std::vector<std::pair<uint32_t, int>> send_field_;  // template id → SendTimeNs index
    RecordSink* next_;
    LatencySamples s_;
    uint64_t problems_ = 0;
    std::atomic<uint64_t> seen_{0};
};

// "p50 … p99 … p99.9 … max … (N records)" lines for samples, on `out`.
void print_latency(std::FILE* out, LatencySamples& s);

// Where the live commands (listen, recv) send their records: JSON Lines to
// an output, through a LatencySink when asked, or to the caller's own sink.
class RecordRoute {
  public:
    [[nodiscard]] static Result<std::unique_ptr<RecordRoute>> open(const fast::TemplateSet& set,
                                                                 const std::string& output,
                                                                 bool with_ts, bool latency,
                                                                 RecordSink* own);
    [[nodiscard]] RecordSink& sink() { return own_ ? *own_ : lat_ ? *lat_ : static_cast<RecordSink&>(json_); }
    [[nodiscard]] OutputFile& output() { return out_; }
    [[nodiscard]] uint64_t problems() const { return json_.problems(); }
    // Prints the latency lines when it measured; then flushes the output.
    [[nodiscard]] Result<void> finish();

  private:
    RecordRoute(OutputFile out, const JsonSinkOptions& so) : out_(std::move(out)), json_(out_, so) {}
    OutputFile out_;
    JsonRecordSink json_;
    std::optional<LatencySink> lat_;
    RecordSink* own_ = nullptr;
};

}  // namespace etcpipe::md
