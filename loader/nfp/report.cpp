// NFP checker, the report: one line per violation (and its hint), one
// estimate line per program, the verdict.
#include <cstdio>

#include "nfp/nfp_check.hpp"

namespace etcpipe::nfp {

void print_report(std::FILE* out, const Report& r) {
    std::fprintf(out, "%s: NFP offload check (code store limit %zu NFP instructions)\n",
                 r.object.c_str(), r.nfp_limit);
    size_t unprovable = 0;
    for (const Violation& v : r.violations) {
        const std::string where = v.program.empty() ? "(object)" : v.program;
        if (v.insn >= 0)
            std::fprintf(out, "  %s insn %d: [%s] %s%s\n", where.c_str(), v.insn, v.rule.c_str(),
                         v.unprovable ? "unprovable: " : "", v.message.c_str());
        else
            std::fprintf(out, "  %s: [%s] %s%s\n", where.c_str(), v.rule.c_str(),
                         v.unprovable ? "unprovable: " : "", v.message.c_str());
        if (!v.hint.empty()) std::fprintf(out, "      hint: %s\n", v.hint.c_str());
        unprovable += v.unprovable ? 1 : 0;
    }
    for (const ProgramEstimate& p : r.programs)
        std::fprintf(out, "  %s (section %s): %zu BPF instructions, %zu NFP instructions (estimate) of %zu\n",
                     p.program.c_str(), p.section.c_str(), p.bpf_insns, p.nfp_insns, r.nfp_limit);
    if (r.offloadable())
        std::fprintf(out, "  verdict: offloadable\n");
    else
        std::fprintf(out, "  verdict: NOT offloadable (%zu violation%s, %zu unprovable)\n",
                     r.violations.size(), r.violations.size() == 1 ? "" : "s", unprovable);
}

}  // namespace etcpipe::nfp
