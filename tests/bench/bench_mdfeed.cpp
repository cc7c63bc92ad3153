// make bench: the market-data rows (decode, reassembly, one-way latency of
// AF_XDP against the kernel socket paths), all measured in this one run.
// Same as `etcpipe md bench`; --quick for a smoke run.
#include <cstdio>
#include <cstring>

#include "common/log.hpp"
#include "mdfeed/bench.hpp"

int main(int argc, char** argv) {
    etcpipe::md::BenchOptions o;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) o.quick = true;
        else if (std::strcmp(argv[i], "--rows") == 0 && i + 1 < argc) o.rows.push_back(argv[++i]);
        else {
            std::fprintf(stderr, "usage: bench_mdfeed [--quick] [--rows decode|reassembly|latency]\n");
            return 2;
        }
    }
    etcpipe::log::install_library_bridges();
    auto r = etcpipe::md::run_bench(o, stdout);
    if (!r) {
        std::fprintf(stderr, "bench_mdfeed: %s\n", r.error().message().c_str());
        return 1;
    }
    return 0;
}
