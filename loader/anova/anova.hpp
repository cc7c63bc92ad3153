// ANOVA state split from user space: the C++ reference rule, fixed-point
// conversion, reading series, and the XDP program (bpf/anova.bpf.c for u32,
// bpf/anova_f64.bpf.c for f64: the object of the configured encoding) driven
// through BPF_PROG_TEST_RUN. Wire format: include/etcpipe/anova.h.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "etcpipe/anova.h"
#include "common/result.hpp"

namespace etcpipe::anova {

// Parameters of the rule. The OSH profile is the seed code's: 14 fractional
// bits, ε = 1638 and ε² = 2684191 (the seed's constant, which is not exactly
// 1638²; kept so the golden figure of 748 splits holds). ε² is a parameter
// of its own because the program never squares ε itself.
struct Params {
    uint32_t frac_bits = 14;
    uint64_t eps = 1638;
    uint64_t eps2 = 2684191;
};
[[nodiscard]] Params osh_profile();        // the above
[[nodiscard]] Params report_profile();     // the seed report's 10-bit variant

// The one range of fractional bits every entry point accepts (CLI, program,
// serve, send): at least one, and at most 31 so that a sample of 1.0 still
// fits in the 32-bit fixed point.
inline constexpr uint32_t kMinFracBits = 1, kMaxFracBits = 31;
[[nodiscard]] Result<void> check_frac_bits(uint32_t frac_bits);
// check_frac_bits, and ε, ε² below 2^32 (the program masks them to 32 bits
// for the NFP, which multiplies 32-bit operands).
[[nodiscard]] Result<void> check_params(const Params& p);

// The rule on one 16-sample window of fixed-point values (SPEC §6), as plain
// C++: ANOVA_TAG_SPLIT or ANOVA_TAG_NO_SPLIT.
[[nodiscard]] uint32_t decide_u32(const std::array<uint32_t, ANOVA_SAMPLES>& x, const Params& p);

// A double as unsigned fixed point with `frac_bits` fractional bits,
// truncated toward zero; nullopt for NaN, ±Inf, negative values and values
// ≥ 2^(32 − frac_bits) (ANOVA_TAG_INVALID on the wire).
[[nodiscard]] std::optional<uint32_t> to_fixed(double v, uint32_t frac_bits);

// Reference for the double encoding: conversion then decide_u32, or
// ANOVA_TAG_INVALID when any sample does not convert.
[[nodiscard]] uint32_t decide_f64(const std::array<double, ANOVA_SAMPLES>& x, const Params& p);

// A series: one value per line (blank lines and '#' comments skipped), or a
// CSV column chosen by header name or 1-based number when `column` is set.
// Errors name the file and line.
[[nodiscard]] Result<std::vector<double>> read_series(const std::string& path,
                                                      const std::string& column = {});

// The XDP program, loaded for BPF_PROG_TEST_RUN (or for attaching).
struct ProgramOptions {
    Params params;
    uint16_t port = ANOVA_DEFAULT_PORT;
    anova_reply reply = ANOVA_REPLY_PASS;
    anova_encoding encoding = ANOVA_ENC_U32;
};

// The config map value for `opts` (the one place it is filled: Program::load
// and attach both write this).
[[nodiscard]] anova_config make_config(const ProgramOptions& opts);

class Program {
  public:
    Program();
    ~Program();
    Program(Program&&) noexcept;
    Program& operator=(Program&&) noexcept;

    [[nodiscard]] static Result<Program> load(const ProgramOptions& opts);
    [[nodiscard]] int prog_fd() const;
    [[nodiscard]] const ProgramOptions& options() const;

    // Sends one window (in the program's encoding) inside an Ethernet/IPv4/
    // UDP frame to the configured port and returns the tag it wrote.
    [[nodiscard]] Result<uint32_t> decide(const std::array<uint32_t, ANOVA_SAMPLES>& x);
    [[nodiscard]] Result<uint32_t> decide(const std::array<double, ANOVA_SAMPLES>& x);

    // Runs an arbitrary frame; returns the XDP action and the output frame.
    struct Run {
        int action = 0;
        std::vector<uint8_t> frame;
    };
    [[nodiscard]] Result<Run> run(std::span<const uint8_t> frame);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Every 16-sample window of a series (sliding by one) through `prog`.
struct SplitResult {
    size_t windows = 0;
    std::vector<size_t> splits;   // window start i: a split between i+7 and i+8
    size_t invalid = 0;           // windows answered ANOVA_TAG_INVALID
};
[[nodiscard]] Result<SplitResult> split_series(Program& prog, std::span<const double> series);

}  // namespace etcpipe::anova
