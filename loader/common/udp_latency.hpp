// The request/reply latency benchmark shared by the in-NIC programs
// (`etcpipe anova bench`, `etcpipe nicnn bench`, `make bench`): one request
// at a time from namespace A over a veth to namespace B, answered either by
// an XDP program there (native XDP, XDP_TX) or by a user-space UDP server
// running the same code, timed with the TSC, in interleaved blocks, every
// round trip bounded by a timeout and the whole run by a time limit; plus the
// kernel-measured BPF_PROG_TEST_RUN cost of the program next to xdp_pass on
// the same frames. It builds and removes its own two-namespace topology.
//
// Nothing here knows an application: the caller gives the request datagrams,
// how to check a reply, how to attach its program in namespace B, and how
// its user-space server answers.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/latency.hpp"
#include "common/netns.hpp"
#include "common/result.hpp"

namespace etcpipe {

// Two namespaces "<ns_a><pid>"/"<ns_b><pid>", veth "<veth_a><pid>"/
// "<veth_b><pid>" 10.78.0.1/24 ↔ 10.78.0.2/24 (MACs 02:78:00:00:00:01/02,
// as build_udp_frame's), static neighbours, IPv6 off, links up. Everything
// is removed by the NetnsPair's destructor (and by a failed create).
struct LatencyTopology {
    static constexpr const char* kAddrA = "10.78.0.1";
    static constexpr const char* kAddrB = "10.78.0.2";

    std::string ns_a, ns_b, veth_a, veth_b;  // name prefixes; the pid is appended

    [[nodiscard]] Result<NetnsPair> create() const;
};

// Round trips to one target: the summary of those answered, and the rest.
struct LatencyStats : LatencySummary {
    size_t lost = 0;   // timeouts
    size_t wrong = 0;  // replies the check called wrong
};

// What a reply is to the request it was sent for.
enum class ReplyCheck {
    Other,  // not a reply to it (a late reply, a stray datagram): keep waiting
    Right,  // the right answer
    Wrong,  // a reply to it, with a wrong answer
};

// How the XDP side is put on and taken off namespace B's veth end; both are
// called inside namespace B with that interface's name.
struct XdpSide {
    std::function<Result<void>(const std::string& iface)> attach;
    std::function<Result<void>(const std::string& iface)> detach;
};

// XdpSide for a loaded program attached alone in native mode
// (bpf_xdp_attach, XDP_FLAGS_DRV_MODE); the program must outlive the run.
[[nodiscard]] XdpSide native_xdp_side(int prog_fd);

// Names in the text and errors.
struct UdpLatencyLabels {
    std::string title;        // first line of the table, without "\n"
    std::string prog;         // the XDP program, e.g. "xdp_anova"
    std::string xdp_row;      // its row, e.g. "xdp_anova (native XDP, XDP_TX)"
    std::string user_who;     // the server in errors, e.g. "user-space serve"
    std::string user_row;     // its row, e.g. "user-space serve (UDP socket)"
    std::string item;         // what a request is, e.g. "window"
    std::string answer;       // what a reply carries, e.g. "verdict"
    std::string reference;    // what a right answer equals, e.g. "decide_u32"
    std::string repeat_note;  // lines under the BPF_PROG_TEST_RUN table
};

struct UdpLatencyBench {
    UdpLatencyLabels labels;
    LatencyTopology topology;
    std::vector<std::vector<uint8_t>> requests;  // UDP payloads, sent round robin
    // reply: a datagram that came back on the socket request k went out on.
    std::function<ReplyCheck(std::span<const uint8_t> reply, size_t k)> check;
    XdpSide xdp;
    // The user-space server (in namespace B): the reply to a datagram, or
    // false to send nothing back.
    std::function<bool(std::span<const uint8_t> request, std::vector<uint8_t>& reply)> answer;
    int prog_fd = -1;  // the XDP program, for BPF_PROG_TEST_RUN
    int pass_fd = -1;  // xdp_pass: the floor, and on veth A (NAPI for XDP_TX)
};

struct UdpLatencyOptions {
    size_t round_trips = 100000;        // per target
    size_t block = 1000;                // interleaving block
    uint16_t xdp_port = 0;              // the program's port
    uint16_t user_port = 0;             // the server's, another one
    int timeout_ms = 200;               // per round trip
    int max_seconds = 60;               // the timed phase, both targets together
    uint32_t test_run_repeat = 10000;
    size_t verify = 32;                 // requests checked on both targets first
    std::atomic<bool>* stop = nullptr;  // e.g. set by SIGINT
};

struct UdpLatencyResult {
    LatencyStats xdp, user;
    double ratio_p50 = 0, ratio_p99 = 0;  // user / xdp
    double tsc_hz = 0;
    bool tsc_invariant = false;           // constant_tsc and nonstop_tsc
    double loadavg = -1;                  // 1-minute load average at the start
    unsigned cpus = 0;                    // online CPUs
    bool aborted = false;                 // time limit or stop flag hit
    size_t verified = 0;                  // requests checked per target
    double seconds = 0;                   // timed phase
    // BPF_PROG_TEST_RUN, kernel-measured, same run:
    double test_run_prog_ns = 0;          // the program, fresh request each call (repeat 1)
    double test_run_pass_ns = 0;          // xdp_pass, same frames, repeat 1
    double test_run_prog_rep_ns = 0;      // the program, one call with repeat N
    double test_run_pass_rep_ns = 0;      // xdp_pass, one call with repeat N
    uint32_t repeat = 0;
};

// Checks the options (usage errors before anything is built, root).
[[nodiscard]] Result<void> check_latency_options(const UdpLatencyOptions& o);

// The whole benchmark; the topology is gone when it returns.
[[nodiscard]] Result<UdpLatencyResult> udp_latency_bench(const UdpLatencyBench& b,
                                                         const UdpLatencyOptions& o);

// The table (the rows of both targets, their ratio, BPF_PROG_TEST_RUN).
[[nodiscard]] std::string format_latency(const UdpLatencyResult& r, const UdpLatencyLabels& l);

}  // namespace etcpipe
