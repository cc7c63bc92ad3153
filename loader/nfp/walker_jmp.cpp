// NFP checker, the walker on BPF_JMP and BPF_JMP32 branches (both edges,
// each with its operand refined) and on exit (the return codes the NFP has).
#include <linux/pkt_cls.h>

#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp::checker {
namespace {

uint8_t mirror(uint8_t op) {
    switch (op) {
        case BPF_JGT: return BPF_JLT;
        case BPF_JLT: return BPF_JGT;
        case BPF_JGE: return BPF_JLE;
        case BPF_JLE: return BPF_JGE;
        default: return op;
    }
}

}  // namespace

void Walker::jump(size_t i, const Insn& in, const State& s, std::vector<Succ>& out) {
    const uint8_t op = BPF_OP(in.code);
    const bool j32 = BPF_CLASS(in.code) == BPF_JMP32;
    const size_t taken = i + 1 + static_cast<size_t>(static_cast<int64_t>(in.off));
    if (op == BPF_JA) {
        out.push_back({j32 ? i + 1 + static_cast<size_t>(static_cast<int64_t>(in.imm)) : taken, s});
        return;
    }
    State t = s, f = s;
    const Val& d = s.r[in.dst];
    std::optional<uint64_t> c;
    if (BPF_SRC(in.code) == BPF_K)
        c = j32 ? static_cast<uint64_t>(static_cast<uint32_t>(in.imm))
                : static_cast<uint64_t>(static_cast<int64_t>(in.imm));
    else if (s.r[in.src].is_const())
        c = j32 ? (s.r[in.src].lo & kU32Max) : s.r[in.src].lo;

    // Null check of a lookup result: refine every copy of it.
    if (d.kind == Kind::MapOrNull && c && *c == 0 && (op == BPF_JEQ || op == BPF_JNE)) {
        auto set = [&](State& st, bool is_null) {
            auto fix = [&](Val& v) {
                if (v.kind == Kind::MapOrNull && (v.id == d.id || &v == &st.r[in.dst])) {
                    if (is_null) v = Val::konst(0);
                    else v.kind = Kind::MapValue;
                }
            };
            for (auto& v : st.r) fix(v);
            for (auto& [o, sl] : st.stack) fix(sl.v);
        };
        set(t, op == BPF_JEQ);
        set(f, op != BPF_JEQ);
        out.push_back({taken, std::move(t)});
        out.push_back({i + 1, std::move(f)});
        return;
    }
    bool t_ok = true, f_ok = true;
    auto apply = [&](uint8_t reg, uint8_t cmp, uint64_t k) {
        const Val& v = s.r[reg];
        if (v.kind != Kind::Scalar || (j32 && v.hi > kU32Max)) return;
        auto rt = refine(v, cmp, k, true);
        auto rf = refine(v, cmp, k, false);
        if (rt) t.r[reg] = *rt; else t_ok = false;
        if (rf) f.r[reg] = *rf; else f_ok = false;
    };
    if (c) {
        apply(in.dst, op, *c);
    } else if (BPF_SRC(in.code) == BPF_X && d.is_const()) {
        apply(in.src, mirror(op), j32 ? (d.lo & kU32Max) : d.lo);
    }
    if (t_ok) out.push_back({taken, std::move(t)});
    if (f_ok) out.push_back({i + 1, std::move(f)});
}

void Walker::check_exit(size_t i, const State& s) {
    if (!main_) return;
    const Val& r0 = s.r[0];
    if (xdp()) {
        if (r0.kind == Kind::Scalar && r0.hi <= XDP_TX) return;
        std::string what = r0.kind != Kind::Scalar ? "not a known scalar"
                           : r0.is_const()          ? std::to_string(r0.lo)
                                                    : range_str(r0);
        if (r0.is_const() && r0.lo == XDP_REDIRECT) what += " (XDP_REDIRECT)";
        report(i, "return-code", "returns " + what + "; the NFP supports XDP_ABORTED, XDP_DROP, "
                                                     "XDP_PASS and XDP_TX (0–3) only",
               "return a constant XDP_DROP/XDP_PASS/XDP_TX on every path",
               r0.kind != Kind::Scalar || !r0.is_const());
    } else if (cls()) {
        // Kernel nfp verifier: a constant; TC_ACT_SHOT, STOLEN, QUEUED or > REDIRECT.
        if (r0.is_const() && (r0.lo == TC_ACT_SHOT || r0.lo == TC_ACT_STOLEN ||
                              r0.lo == TC_ACT_QUEUED || r0.lo > TC_ACT_REDIRECT))
            return;
        report(i, "return-code", "returns " + range_str(r0) +
                                     "; the NFP supports constant TC_ACT_SHOT, TC_ACT_STOLEN "
                                     "or TC_ACT_QUEUED",
               "return one of those constants on every path", !r0.is_const());
    }
}

}  // namespace etcpipe::nfp::checker
