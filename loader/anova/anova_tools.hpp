// Tools around the ANOVA state split (SPEC §6): text and SVG output of the
// splits of a series, the rule as a user-space UDP server (`serve`, the
// baseline of the latency benchmark), a client that sends every window of a
// series and collects the verdicts (`send`), and the latency benchmark that
// builds its own two-namespace veth topology (XDP_TX vs user space).
// The CLI (`etcpipe anova split|serve|send|bench`) is a thin layer over this.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "anova/anova.hpp"
#include "etcpipe/anova.h"
#include "common/result.hpp"

namespace etcpipe::anova {

// ---- output of `split` -----------------------------------------------------

// One line per split: "window <i>  boundary <i+8>  value <series[i+8]>",
// then the summary "splits: S of W windows" (and ", I invalid" when any).
[[nodiscard]] std::string format_splits(std::span<const double> series, const SplitResult& r);

// The SVG document (≈1200×500): series polyline, axes with ticks and labels,
// title, one vertical line per split at x = i+8, legend. Text is escaped.
[[nodiscard]] std::string render_split_svg(std::span<const double> series, const SplitResult& r,
                                           const std::string& title);
// render_split_svg written to `path`.
[[nodiscard]] Result<void> write_split_svg(const std::string& path, std::span<const double> series,
                                           const SplitResult& r, const std::string& title);

// Text escaped for XML character data and attribute values.
[[nodiscard]] std::string xml_escape(const std::string& text);

// ---- wire helpers ----------------------------------------------------------

// Size of a request in `enc` (header + 16 samples).
[[nodiscard]] size_t message_size(anova_encoding enc);

// A request (tag 0) for the 16 samples starting at window[0]. For ANOVA_ENC_U32
// the samples are converted with to_fixed(frac_bits); nullopt when one does
// not convert (the client then counts the window invalid without sending).
[[nodiscard]] std::optional<std::vector<uint8_t>> encode_request(
    std::span<const double, ANOVA_SAMPLES> window, anova_encoding enc, uint32_t frac_bits);

// Why the server ignored a datagram (nothing is sent back for these).
enum class Ignored { None, Short, Magic, Tag };
[[nodiscard]] const char* ignored_name(Ignored why);

// What the user-space server does with one datagram: validates it and, when
// it is a request, writes the verdict into its tag in place (the reply is the
// datagram itself). Returns Ignored::None when a reply is due.
[[nodiscard]] Ignored answer_in_place(std::span<uint8_t> datagram, anova_encoding enc,
                                      const Params& params);

// An Ethernet/IPv4/UDP frame around `payload` (for BPF_PROG_TEST_RUN).
[[nodiscard]] std::vector<uint8_t> build_udp_frame(std::span<const uint8_t> payload,
                                                   uint16_t dst_port, uint16_t src_port = 40000);

// ---- serve -----------------------------------------------------------------

struct ServeOptions {
    std::string bind = "0.0.0.0";        // IPv4 or IPv6 literal
    uint16_t port = ANOVA_DEFAULT_PORT;
    Params params;
    anova_encoding encoding = ANOVA_ENC_U32;
    uint64_t max_requests = 0;            // 0 = until *stop
    std::atomic<bool>* stop = nullptr;    // polled at least every poll_ms
    int poll_ms = 100;
    std::atomic<bool>* ready = nullptr;   // set once the socket is bound
};

struct ServeStats {
    uint64_t datagrams = 0;       // everything received
    uint64_t requests = 0;        // valid requests
    uint64_t replies = 0;         // replies sent
    uint64_t splits = 0;          // replies with ANOVA_TAG_SPLIT
    uint64_t invalid = 0;         // replies with ANOVA_TAG_INVALID
    uint64_t ignored_short = 0;   // shorter than a request in the encoding
    uint64_t ignored_magic = 0;   // wrong magic
    uint64_t ignored_tag = 0;     // tag ≠ 0 (a verdict, or reserved)
    uint64_t send_errors = 0;
};

[[nodiscard]] Result<ServeStats> serve(const ServeOptions& opts);
[[nodiscard]] std::string format_serve_stats(const ServeStats& s);

// ---- send ------------------------------------------------------------------

struct SendOptions {
    std::string target = "127.0.0.1";     // IPv4 or IPv6 literal
    uint16_t port = ANOVA_DEFAULT_PORT;
    anova_encoding encoding = ANOVA_ENC_U32;
    uint32_t frac_bits = 14;
    int timeout_ms = 200;                 // per attempt
    int retries = 0;                      // extra attempts per window
    int max_seconds = 600;                // whole run bounded in time too
    // false: IPv4 requests without a UDP checksum (SO_NO_CHECK). Needed when
    // xdp_anova answers in tx mode on a veth fed from this host: a locally
    // sent datagram carries only a partial checksum (CHECKSUM_PARTIAL), which
    // XDP_TX sends back unfinished, so the reply is dropped as corrupt.
    bool udp_checksum = true;
};

struct SendResult {
    SplitResult split;             // windows, splits (window starts), invalid
    std::vector<uint8_t> tags;     // per window: the verdict, 0 when lost/not sent
    size_t sent = 0;               // datagrams sent (with retries)
    size_t answered = 0;           // windows with a verdict
    size_t lost = 0;               // windows without a reply after all attempts
    size_t unrepresentable = 0;    // u32: a sample did not convert, not sent (counted invalid)
    size_t stray = 0;              // replies that matched no outstanding request
};

[[nodiscard]] Result<SendResult> send_series(const SendOptions& opts,
                                             std::span<const double> series);
[[nodiscard]] std::string format_send_result(std::span<const double> series, const SendResult& r);

// ---- network namespaces ------------------------------------------------------

// Moves the calling thread into the named namespace (/run/netns/NAME).
[[nodiscard]] Result<void> enter_netns(const std::string& name);

// A named network namespace (`ip netns add`), deleted by the destructor.
class ScopedNetns {
  public:
    ScopedNetns() = default;
    explicit ScopedNetns(std::string name) : name_(std::move(name)) {}
    ~ScopedNetns();
    ScopedNetns(ScopedNetns&& o) noexcept : name_(std::exchange(o.name_, {})) {}
    ScopedNetns& operator=(ScopedNetns&&) noexcept;
    ScopedNetns(const ScopedNetns&) = delete;
    ScopedNetns& operator=(const ScopedNetns&) = delete;

    // Creates it with loopback up; fails when it exists already.
    [[nodiscard]] static Result<ScopedNetns> create(const std::string& name);
    [[nodiscard]] const std::string& name() const { return name_; }
    void reset();

  private:
    std::string name_;
};

[[nodiscard]] bool netns_exists(const std::string& name);

// Runs argv (no shell); stderr is captured into the error.
[[nodiscard]] Result<void> run_command(const std::vector<std::string>& argv);

// ---- latency benchmark ---------------------------------------------------------

// Two namespaces "etcanA<pid>"/"etcanB<pid>", veth "etcvaP"/"etcvbP"
// 10.78.0.1/24 ↔ 10.78.0.2/24, static neighbours, IPv6 off, links up.
// Everything is removed by the destructor (and by a failed create()).
class BenchTopology {
  public:
    static constexpr const char* kAddrA = "10.78.0.1";
    static constexpr const char* kAddrB = "10.78.0.2";

    BenchTopology() = default;
    ~BenchTopology() = default;  // b_, a_ reset in reverse order
    BenchTopology(BenchTopology&&) noexcept = default;
    BenchTopology& operator=(BenchTopology&&) noexcept = default;

    [[nodiscard]] static Result<BenchTopology> create();
    [[nodiscard]] const std::string& ns_a() const { return a_.name(); }
    [[nodiscard]] const std::string& ns_b() const { return b_.name(); }
    [[nodiscard]] const std::string& veth_a() const { return veth_a_; }
    [[nodiscard]] const std::string& veth_b() const { return veth_b_; }

  private:
    ScopedNetns a_, b_;
    std::string veth_a_, veth_b_;
};

struct LatencyStats {
    size_t samples = 0;
    size_t lost = 0;          // timeouts
    size_t wrong = 0;         // verdict ≠ decide_u32
    double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
};

struct BenchOptions {
    size_t windows = 100000;            // round trips per target
    size_t block = 1000;                // interleaving block
    std::string series_path;            // empty: a synthetic random walk
    Params params;                      // u32 encoding, params.frac_bits
    uint16_t xdp_port = ANOVA_DEFAULT_PORT;
    uint16_t user_port = ANOVA_DEFAULT_PORT + 1;
    int timeout_ms = 200;               // per round trip
    int max_seconds = 60;               // the timed phase, both targets together
    uint32_t test_run_repeat = 10000;
    size_t verify = 32;                 // windows checked against decide_u32 first
    std::atomic<bool>* stop = nullptr;  // e.g. set by SIGINT
};

struct BenchResult {
    LatencyStats xdp, user;
    double ratio_p50 = 0, ratio_p99 = 0;   // user / xdp
    double tsc_hz = 0;
    bool tsc_invariant = false;            // constant_tsc and nonstop_tsc
    double loadavg = -1;                   // 1-minute load average at the start
    unsigned cpus = 0;                     // online CPUs
    bool aborted = false;                  // time limit or stop flag hit
    size_t verified = 0;                   // windows checked per target
    double seconds = 0;                    // timed phase
    // BPF_PROG_TEST_RUN, kernel-measured, same run:
    double test_run_anova_ns = 0;          // xdp_anova, fresh request each call (repeat 1)
    double test_run_pass_ns = 0;           // xdp_pass, same frames, repeat 1
    double test_run_anova_rep_ns = 0;      // xdp_anova, one call with repeat N
    double test_run_pass_rep_ns = 0;       // xdp_pass, one call with repeat N
    uint32_t repeat = 0;
};

[[nodiscard]] Result<BenchResult> latency_bench(const BenchOptions& opts);
[[nodiscard]] std::string format_bench(const BenchResult& r);

}  // namespace etcpipe::anova
