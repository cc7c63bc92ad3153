// The command table and the steps main() takes with it.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <vector>

#include "cli/command.hpp"

namespace etcpipe::cli {

// Adds every command of the table to `app`, in --help order.
[[nodiscard]] std::vector<Runner> add_commands(CLI::App& app);

// Usage error for a first word that is no command: CLI11 alone would only
// say "a subcommand is required".
[[nodiscard]] std::optional<int> reject_unknown_command(CLI::App& app, int argc, char** argv);

// Parses argv; the exit code when etcpipe stops here (help, usage error).
// `show_version` (set by -V) excuses a missing or incomplete command.
[[nodiscard]] std::optional<int> parse(CLI::App& app, int argc, char** argv,
                                       const bool& show_version);

// Runs the command that was given; kGeneral if none ran.
[[nodiscard]] int run_given(const std::vector<Runner>& runners);

}  // namespace etcpipe::cli
