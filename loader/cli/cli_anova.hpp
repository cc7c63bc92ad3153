// The CLI's ANOVA and checker commands:
//   etcpipe check --target nfp OBJ…
//   etcpipe anova split|serve|send|bench …
// and the ANOVA options of `etcpipe load IFACE --prog anova`.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "anova/anova.hpp"

namespace etcpipe::cli {

// Rule parameters as typed: a profile, optionally overridden field by field.
struct AnovaParamArgs {
    std::string profile = "osh";  // osh (14 bits) | report (10 bits)
    std::optional<uint64_t> eps, eps2;
    std::optional<uint32_t> frac_bits;
    anova_encoding encoding = ANOVA_ENC_U32;

    [[nodiscard]] Result<anova::Params> params() const;
};

void add_anova_params(CLI::App* cmd, AnovaParamArgs& a, bool with_encoding = true);

struct AnovaCommands {
    CLI::App* check = nullptr;
    std::vector<std::string> check_objects;
    std::string check_target = "nfp";
    size_t check_limit = 2560;

    CLI::App* anova = nullptr;
    CLI::App* split = nullptr;
    CLI::App* serve = nullptr;
    CLI::App* send = nullptr;
    CLI::App* bench = nullptr;
    AnovaParamArgs split_params, serve_params, send_params;
    std::string series, column, output, plot, title;
    std::string bind = "0.0.0.0", target = "127.0.0.1";
    uint16_t port = ANOVA_DEFAULT_PORT;
    uint64_t count = 0;
    int timeout_ms = 200, retries = 0;
    bool no_udp_checksum = false;
    size_t windows = 100000;
    std::string bench_series;
};

void add_anova_commands(CLI::App& app, AnovaCommands& c);
// The exit code when one of these commands was given, nullopt otherwise.
[[nodiscard]] std::optional<int> run_anova_commands(const AnovaCommands& c);

}  // namespace etcpipe::cli
