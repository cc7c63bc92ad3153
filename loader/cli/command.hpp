// The command table's building blocks. Each command is a name, a line of
// help, a function that adds its options and one that runs it; the table
// (commands.cpp) adds every command to the CLI11 app, so dispatch, --help and
// the "unknown command" list all come from it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <optional>

namespace etcpipe::cli {

// After parsing: the exit code of the command given, nullopt for the others.
using Runner = std::function<std::optional<int>()>;

// One entry of the table: adds its subcommand(s) to `app`, returns its runner.
using Entry = std::function<Runner(CLI::App& app)>;

// A command whose options are parsed into an Args.
template <class Args>
struct Command {
    const char* name;
    const char* help;  // one line in `etcpipe --help`
    void (*add_options)(CLI::App* cmd, Args& args);
    int (*run)(const Args& args, const CLI::App& cmd);
};

template <class Args>
Entry entry(const Command<Args>& c) {
    return [c](CLI::App& app) -> Runner {
        CLI::App* cmd = app.add_subcommand(c.name, c.help);
        // Shared, so the addresses CLI11 writes into outlive add_options.
        auto args = std::make_shared<Args>();
        c.add_options(cmd, *args);
        return [c, cmd, args]() -> std::optional<int> {
            if (!cmd->parsed()) return std::nullopt;
            return c.run(*args, *cmd);
        };
    };
}

// A group that adds its own subcommands (features, classify, check/anova):
// `add(app, state)` and `run(state)`, run returning nullopt when none of its
// commands was given.
template <class State>
Entry group_entry(void (*add)(CLI::App&, State&), std::optional<int> (*run)(const State&)) {
    return [add, run](CLI::App& app) -> Runner {
        auto state = std::make_shared<State>();
        add(app, *state);
        return [run, state] { return run(*state); };
    };
}

}  // namespace etcpipe::cli
