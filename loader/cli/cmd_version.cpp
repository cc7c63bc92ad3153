#include "cli/cmd_version.hpp"

#include <bpf/libbpf.h>

#include <cstdio>

#include "cli/cli_common.hpp"
#include "gpu/cuda_plugin.hpp"

#define ETCPIPE_VERSION "0.1.0"
// The Makefile stamps this file with both (libxdp has no run-time version call).
#ifndef ETCPIPE_LIBXDP_VERSION
#define ETCPIPE_LIBXDP_VERSION "unknown"
#endif
#ifndef ETCPIPE_GIT_REV
#define ETCPIPE_GIT_REV "unknown"
#endif

namespace etcpipe::cli {

namespace {

struct NoArgs {};

void add_no_options(CLI::App*, NoArgs&) {}

int run_version(const NoArgs&, const CLI::App&) { return print_version(); }

}  // namespace

int print_version() {
    std::printf("etcpipe %s (%s)\nlibbpf %s (run time)\nlibxdp %s (built against)\n",
                ETCPIPE_VERSION, ETCPIPE_GIT_REV, libbpf_version_string(), ETCPIPE_LIBXDP_VERSION);
    // Only looked for, not loaded: loading pulls in the CUDA libraries.
    const cuda_plugin::Location loc = cuda_plugin::locate();
    if (!loc.built)
        std::printf("cuda plugin: not built (nvcc not found at build time)\n");
    else
        std::printf("cuda plugin: %s (%s)\n", loc.path.c_str(),
                    loc.present ? "found; loaded on first GPU use" : "not found");
    return kOk;
}

Entry version_command() {
    return entry(Command<NoArgs>{"version", "print etcpipe, libbpf and libxdp versions and where the CUDA plugin is",
                                 add_no_options, run_version});
}

}  // namespace etcpipe::cli
