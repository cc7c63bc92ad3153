#include "cli/commands.hpp"

#include <cstdio>
#include <string>

#include "cli/cli_anova.hpp"
#include "cli/cli_classify.hpp"
#include "cli/cli_common.hpp"
#include "cli/cli_features.hpp"
#include "cli/cli_nicnn.hpp"
#include "cli/cmd_flowmgr.hpp"
#include "cli/cmd_md.hpp"
#include "cli/cmd_status.hpp"
#include "cli/cmd_version.hpp"

namespace etcpipe::cli {

namespace {

// The table, in --help order.
std::vector<Entry> command_table() {
    return {
        load_command(),
        unload_command(),
        status_command(),
        replay_command(),
        run_command(),
        send_command(),
        version_command(),
        group_entry(add_anova_commands, run_anova_commands),  // check, anova
        group_entry(add_features_command, run_features_command),
        group_entry(add_classify_command, run_classify_command),
        group_entry(add_nicnn_commands, run_nicnn_commands),
        md_commands(),
    };
}

std::vector<CLI::App*> all_subcommands(CLI::App& app) {
    return app.get_subcommands([](CLI::App*) { return true; });
}

}  // namespace

std::vector<Runner> add_commands(CLI::App& app) {
    std::vector<Runner> runners;
    for (const Entry& e : command_table()) runners.push_back(e(app));
    return runners;
}

std::optional<int> reject_unknown_command(CLI::App& app, int argc, char** argv) {
    if (argc < 2 || argv[1][0] == '-') return std::nullopt;
    std::string names;
    for (const CLI::App* sub : all_subcommands(app)) {
        if (sub->check_name(argv[1])) return std::nullopt;
        names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    std::fprintf(stderr, "error: unknown command '%s' (commands: %s; see --help)\n", argv[1],
                 names.c_str());
    return kUsage;
}

std::optional<int> parse(CLI::App& app, int argc, char** argv, const bool& show_version) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        if (show_version) return std::nullopt;  // `etcpipe --version` without a command
        app.exit(e);
        return kUsage;
    }
    return std::nullopt;
}

int run_given(const std::vector<Runner>& runners) {
    for (const Runner& run : runners)
        if (auto code = run()) return *code;
    return kGeneral;
}

}  // namespace etcpipe::cli
