// libFuzzer target: the NFP offload checker (`etcpipe check --target nfp`)
// on arbitrary bytes, in memory (check_object_mem), libbpf's own log
// silenced. Seed it with real objects (build/bpf/*.bpf.o,
// build/tests/bpf_progs/*.bpf.o): their mutations get past the ELF reader
// and libbpf into the walker.
// Properties checked (a violation aborts, so the fuzzer keeps the input):
//   - check_object_mem() never crashes, never reads out of bounds (ASan) and
//     hits no undefined behaviour (UBSan);
//   - every violation has a rule and a message, and an object without a
//     program is never offloadable.
#include <bpf/libbpf.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "nfp/nfp_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool silenced = [] {
        libbpf_set_print(nullptr);
        return true;
    }();
    (void)silenced;
    auto r = etcpipe::nfp::check_object_mem(std::span<const uint8_t>(data, size), "fuzz.bpf.o");
    if (!r) return 0;
    for (const auto& v : r->violations) {
        if (v.rule.empty() || v.message.empty()) {
            std::fprintf(stderr, "violation without rule or message\n");
            std::abort();
        }
    }
    if (r->programs.empty() && r->offloadable()) {
        std::fprintf(stderr, "object without programs reported offloadable\n");
        std::abort();
    }
    return 0;
}
