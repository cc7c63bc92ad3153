// The ANOVA request/reply on the wire (include/etcpipe/anova.h): building
// and checking datagrams, the answer computed in place, an Ethernet/IPv4/UDP
// frame around a request for BPF_PROG_TEST_RUN (the UDP sockets that carry
// requests: common/udp_socket.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "anova/anova.hpp"
#include "common/fd.hpp"
#include "common/udp_socket.hpp"
#include "common/udp_frame.hpp"
#include "common/result.hpp"
#include "etcpipe/anova.h"

namespace etcpipe::anova {

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

// The tag of a datagram at least sizeof(anova_hdr) long.
[[nodiscard]] uint64_t message_tag(std::span<const uint8_t> datagram);

// Whether `reply` answers `req` (same length, magic and samples, a verdict
// tag); sets `tag` to the verdict when it does.
[[nodiscard]] bool is_reply_to(std::span<const uint8_t> reply, std::span<const uint8_t> req,
                               uint32_t& tag);

// The UDP sockets (common/udp_socket.hpp), under their old names here too.
using etcpipe::bind_udp;
using etcpipe::Clock;
using etcpipe::connect_udp;
using etcpipe::endpoint;
using etcpipe::ms_until;

}  // namespace etcpipe::anova
