// make bench: the ANOVA rule answered by XDP (xdp_anova, native, XDP_TX on a
// veth) next to the same rule in a user-space UDP server, one request at a
// time from another network namespace, timed with the TSC; and the
// BPF_PROG_TEST_RUN cost per decision next to xdp_pass. The topology (two
// namespaces and a veth pair) is built and removed by latency_bench itself.
//
//   bench_anova [WINDOWS] [SERIES]   (defaults: 100000, the OSH daily series)
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "anova/latency_bench.hpp"
#include "common/log.hpp"
#include "common/signals.hpp"

using namespace etcpipe;

int main(int argc, char** argv) {
    log::install_library_bridges();
    if (::geteuid() != 0) {
        std::fprintf(stderr, "bench_anova: skipped: needs root (network namespaces, XDP)\n");
        return 0;
    }
    anova::BenchOptions o;
    o.stop = &stop_flag();
    if (argc > 1) {
        char* end = nullptr;
        unsigned long long n = std::strtoull(argv[1], &end, 10);
        if (!end || *end || n == 0) {
            std::fprintf(stderr, "usage: bench_anova [WINDOWS] [SERIES]\n");
            return 2;
        }
        o.round_trips = static_cast<size_t>(n);
    }
    if (argc > 2) {
        o.series_path = argv[2];
    } else {
        for (const char* p : {"testdata/anova/osh_000001SZ_daily.txt",
                              "../shared/data/osh_000001SZ_daily.txt"})
            if (std::filesystem::exists(p)) {
                o.series_path = p;
                break;
            }
    }
    // SIGINT/SIGTERM end the timed phase early; the topology is still removed.
    install_stop_handlers();

    std::printf("bench_anova: %zu round trips per target, series %s\n", o.round_trips,
                o.series_path.empty() ? "(synthetic random walk)" : o.series_path.c_str());
    std::fflush(stdout);
    auto r = anova::latency_bench(o);
    if (!r) {
        std::fprintf(stderr, "bench_anova: %s\n", r.error().message().c_str());
        return 1;
    }
    std::printf("%s", anova::format_bench(*r).c_str());
    if (r->xdp.wrong || r->user.wrong) {
        std::fprintf(stderr, "bench_anova: wrong verdicts during the timed phase\n");
        return 1;
    }
    return r->aborted ? 1 : 0;
}
