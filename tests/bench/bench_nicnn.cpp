// make bench: the digit CNN answered by XDP (xdp_nicnn, native, XDP_TX on a
// veth) next to the same integer network (nicnn::reference) in a user-space
// UDP server, one real digit image at a time from another network
// namespace, timed with the TSC; the BPF_PROG_TEST_RUN cost per image next
// to xdp_pass; and reference()'s own time per image. The topology (two
// namespaces and a veth pair) is built and removed by latency_bench itself.
//
//   bench_nicnn [ROUND_TRIPS] [test|all]   (defaults: 100000, test split)
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/log.hpp"
#include "common/signals.hpp"
#include "nicnn/latency_bench.hpp"

using namespace etcpipe;

int main(int argc, char** argv) {
    log::install_library_bridges();
    if (::geteuid() != 0) {
        std::fprintf(stderr, "bench_nicnn: skipped: needs root (network namespaces, XDP)\n");
        return 0;
    }
    if (nicnn::default_digits_path().empty()) {
        std::fprintf(stderr, "bench_nicnn: skipped: no digit images (install python3-sklearn)\n");
        return 0;
    }
    nicnn::BenchOptions o;
    o.stop = &stop_flag();
    o.max_seconds = 20;  // bounded: make bench stays short whatever the machine
    if (argc > 1) {
        char* end = nullptr;
        unsigned long long n = std::strtoull(argv[1], &end, 10);
        if (!end || *end || n == 0 || n > 10'000'000) {
            std::fprintf(stderr, "usage: bench_nicnn [ROUND_TRIPS] [test|all]\n");
            return 2;
        }
        o.round_trips = static_cast<size_t>(n);
    }
    if (argc > 2) {
        o.split = argv[2];
        if (o.split != "test" && o.split != "all") {
            std::fprintf(stderr, "usage: bench_nicnn [ROUND_TRIPS] [test|all]\n");
            return 2;
        }
    }
    // SIGINT/SIGTERM end the timed phase early; the topology is still removed.
    install_stop_handlers();

    std::printf("bench_nicnn: %zu round trips per target, digits %s split\n", o.round_trips,
                o.split.c_str());
    std::fflush(stdout);
    auto r = nicnn::latency_bench(o);
    if (!r) {
        std::fprintf(stderr, "bench_nicnn: %s\n", r.error().message().c_str());
        return 1;
    }
    std::printf("%s", nicnn::format_bench(*r).c_str());
    if (r->xdp.wrong || r->user.wrong) {
        std::fprintf(stderr, "bench_nicnn: wrong results during the timed phase\n");
        return 1;
    }
    return r->aborted ? 1 : 0;
}
