// The ANOVA rule over the network from user space: a UDP server that
// answers requests (`etcpipe anova serve`, the baseline of the latency
// benchmark) and a client that sends every window of a series to a server
// or to xdp_anova and collects the verdicts (`etcpipe anova send`).
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "anova/anova.hpp"
#include "common/result.hpp"
#include "etcpipe/anova.h"

namespace etcpipe::anova {

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

}  // namespace etcpipe::anova
