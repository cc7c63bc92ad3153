#include "cli/cmd_status.hpp"

#include <cstdio>
#include <string>

#include "cli/cli_common.hpp"
#include "anova/anova_status.hpp"
#include "nicnn/nicnn.hpp"
#include "pkttag/pkttag.hpp"
#include "flowmgr/flowmgr_attach.hpp"
#include "mdfeed/mdfeed_attach.hpp"

namespace etcpipe::cli {

namespace {

struct StatusArgs {
    std::string iface;
    bool all_counters = false;
};

void add_status_options(CLI::App* cmd, StatusArgs& a) {
    add_option(cmd, "IFACE", a.iface, "only this interface");
    cmd->add_flag("-a,--all-counters", a.all_counters, "list zero counters too");
}

int run_status(const StatusArgs& a, const CLI::App&) {
    auto r = xdp_status(a.iface, etcpipe_program_kinds(), a.all_counters);
    if (!r) return fail(r.error());
    print_status(*r);
    return kOk;
}

}  // namespace

void print_status(const std::vector<InterfaceStatus>& all) {
    if (all.empty()) {
        std::printf("no XDP programs attached\n");
        return;
    }
    for (const auto& st : all) {
        std::printf("%s (ifindex %d):", st.name.c_str(), st.ifindex);
        if (st.programs.empty()) {
            std::printf(" no XDP program\n");
            continue;
        }
        std::printf(" %s mode, %s\n", st.mode.empty() ? "?" : st.mode.c_str(),
                    st.multiprog ? "libxdp dispatcher" : "single program (no dispatcher)");
        for (const auto& p : st.programs) {
            std::printf("  %-16s id %-6u priority %-4u tag %s\n", p.name.c_str(), p.id, p.priority,
                        p.tag.c_str());
            std::fputs(p.details.c_str(), stdout);
        }
    }
}

std::vector<ProgramKind> etcpipe_program_kinds() {
    return {flowmgr_program_kind(), anova::program_kind(), md::program_kind(), nicnn::program_kind(),
            pkttag::program_kind()};
}

Entry status_command() {
    return entry(Command<StatusArgs>{"status", "XDP programs per interface, FlowManager counters",
                                     add_status_options, run_status});
}

}  // namespace etcpipe::cli
