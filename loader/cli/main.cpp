// etcpipe: the command line, after xdp-loader's grammar. The commands and
// their options are in the table (commands.cpp) and the cmd_*/cli_* files.
#include <CLI/CLI.hpp>
#include <exception>
#include <new>

#include "cli/commands.hpp"
#include "cli/cmd_version.hpp"
#include "common/log.hpp"
#include "common/output_check.hpp"

int main(int argc, char** argv) {
    using namespace etcpipe;
    CLI::App app{
        "etcpipe: XDP FlowManager for encrypted-traffic classification.\n"
        "Keeps the first N payload packets of every flow (in the kernel, at XDP) and hands\n"
        "them to user space; replays captures through the same program.\n"
        "Exit codes: 0 ok, 1 error, 2 usage, 3 BPF/XDP, 4 I/O, 5 malformed data."};
    app.require_subcommand(1);
    app.fallthrough();  // before the commands: they inherit it
    int verbosity = 0;
    app.add_flag("-v,--verbose", verbosity, "more output; -vv also shows libbpf/libxdp debug logs");
    bool show_version = false;
    app.add_flag("-V,--version", show_version, "print versions and exit");
    const auto runners = cli::add_commands(app);

    if (auto code = cli::reject_unknown_command(app, argc, argv)) return *code;
    if (auto code = cli::parse(app, argc, argv, show_version)) return *code;
    log::set_verbosity(verbosity);
    log::install_library_bridges();
    if (show_version) return cli::print_version();
    // An exception that escapes main would end in std::terminate without
    // unwinding: the destructors that detach programs and delete network
    // namespaces would not run. Catch it here, so they do.
    try {
        const int rc = cli::run_given(runners);
        // Whatever a command printed to stdout: a failed write is exit 4.
        if (auto r = finish_stdout(); !r) {
            ETC_ERR("%s", r.error().message().c_str());
            return rc ? rc : 4;
        }
        return rc;
    } catch (const std::bad_alloc&) {
        ETC_ERR("out of memory (a size given on the command line or read from the input is too "
                "large)");
    } catch (const std::exception& e) {
        ETC_ERR("internal error: %s", e.what());
    }
    return 1;
}
