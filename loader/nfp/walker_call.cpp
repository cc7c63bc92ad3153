// NFP checker, the walker on BPF_CALL: BPF-to-BPF calls (walked as functions
// of their own), kfuncs (none on the NFP) and helpers (a few, with rules on
// their arguments).
#include <iterator>

#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp::checker {
namespace {

// Helper ids, in uapi order; the mapper macro gives the names.
#define ETCPIPE_HELPER_NAME(x, ...) #x
constexpr const char* kHelperNames[] = {__BPF_FUNC_MAPPER(ETCPIPE_HELPER_NAME)};
#undef ETCPIPE_HELPER_NAME

std::string helper_name(int32_t id) {
    if (id >= 0 && static_cast<size_t>(id) < std::size(kHelperNames))
        return std::string("bpf_") + kHelperNames[id];
    return "helper #" + std::to_string(id);
}

// Is the low 32-bit half of v provably a signed value ≤ 0 (int offset args)?
bool provably_nonpositive32(const Val& v) {
    if (v.kind != Kind::Scalar) return false;
    if (v.is_const()) return static_cast<int32_t>(static_cast<uint32_t>(v.lo)) <= 0;
    if ((v.lo >> 32) != (v.hi >> 32) || v.hi - v.lo > kU32Max) return false;
    return (v.lo & 0x80000000ULL) && (v.hi & 0x80000000ULL);
}

}  // namespace

void Walker::call(size_t i, const Insn& in, State& s) {
    if (in.src == BPF_PSEUDO_CALL) {
        auto rel = sec_.rels.find(start_ + i);
        if (rel != sec_.rels.end() && rel->second.kind == RelKind::Call)
            callees.emplace_back(rel->second.target_sec, rel->second.target);
        else
            callees.emplace_back(static_cast<size_t>(-1),
                                 static_cast<int64_t>(start_ + i) + in.imm + 1);
        clobber_args(s);
        s.r[0] = Val::scalar(0, kTop);
    } else if (in.src == BPF_PSEUDO_KFUNC_CALL) {
        report(i, "helper", "kfunc calls are not supported by the NFP", "");
        for (int r = 0; r <= 5; ++r) s.r[r] = Val::scalar(0, kTop);
    } else {
        helper(i, in, s);
    }
}

void Walker::helper(size_t i, const Insn& in, State& s) {
    const int32_t id = in.imm;
    const std::string name = helper_name(id);
    Val r0 = Val::scalar(0, kTop);
    if (id == BPF_FUNC_map_lookup_elem || id == BPF_FUNC_map_update_elem ||
        id == BPF_FUNC_map_delete_elem)
        check_stack_arg(i, name, s, 2);
    if (id == BPF_FUNC_map_update_elem) check_stack_arg(i, name, s, 3);
    switch (id) {
        case BPF_FUNC_map_lookup_elem:
            r0 = Val::ptr(Kind::MapOrNull);
            r0.id = static_cast<uint32_t>(start_ + i + 1);
            break;
        case BPF_FUNC_get_prandom_u32: r0 = Val::bits(32); break;
        case BPF_FUNC_xdp_adjust_head: break;
        case BPF_FUNC_xdp_adjust_tail:
            if (!provably_nonpositive32(s.r[2])) {
                const Val& d = s.r[2];
                const bool grows = d.kind == Kind::Scalar && d.lo > 0 && d.hi <= 0x7fffffffULL;
                report(i, "helper",
                       grows ? "bpf_xdp_adjust_tail grows the packet (delta " + range_str(d) + ")"
                             : "cannot prove bpf_xdp_adjust_tail only shrinks the packet (delta " +
                                   range_str(d) + ")",
                       "the NFP supports bpf_xdp_adjust_tail with a negative delta only: pass a "
                       "constant ≤ 0", !grows);
            }
            break;
        case BPF_FUNC_map_update_elem:
        case BPF_FUNC_map_delete_elem:
        case BPF_FUNC_perf_event_output:
            report(i, "helper-firmware",
                   name + " needs NFP firmware capabilities the public firmware lacks",
                   "do map updates from user space (lookup-only datapath), or load firmware "
                   "that advertises this helper");
            break;
        case BPF_FUNC_tail_call:
            report(i, "tail-call", "bpf_tail_call is not supported by the NFP",
                   "merge the tail-called programs into one (inline functions)");
            break;
        case BPF_FUNC_redirect:
        case BPF_FUNC_redirect_map:
            report(i, "helper", name + ": the NFP cannot redirect (return codes 0–3 only)",
                   "return XDP_TX to bounce the packet or XDP_PASS to hand it to the host");
            break;
        default:
            report(i, "helper", name + " is not available on the NFP",
                   "offloadable helpers: bpf_map_lookup_elem, bpf_get_prandom_u32, "
                   "bpf_xdp_adjust_head, bpf_xdp_adjust_tail (shrink only)");
            break;
    }
    if (id == BPF_FUNC_xdp_adjust_head || id == BPF_FUNC_xdp_adjust_tail) {
        // Packet pointers are stale after the packet moved; reload them.
        for (auto& v : s.r)
            if (v.kind == Kind::Packet || v.kind == Kind::PacketEnd) v = Val{};
        for (auto& [o, sl] : s.stack)
            if (sl.v.kind == Kind::Packet || sl.v.kind == Kind::PacketEnd) sl.v = Val{};
    }
    clobber_args(s);
    s.r[0] = r0;
}

// Map helpers take keys (and update values) on the stack, at a constant,
// 4-byte aligned offset (nfp verifier: nfp_bpf_stack_arg_ok).
void Walker::check_stack_arg(size_t i, const std::string& name, const State& s, int reg) {
    const Val& a = s.r[reg];
    std::string why;
    if (a.kind != Kind::Stack) why = "is not a stack pointer";
    else if (a.olo != a.ohi || a.olo == kNegInf || a.olo == kPosInf)
        why = "is a stack pointer at a variable offset";
    else if (a.olo < -kStackMax || a.olo >= 0)
        why = "points outside the 512-byte frame (fp" + signed_str(a.olo) + ")";
    else if (a.olo % 4 != 0) why = "is a stack pointer not aligned to 4 B (fp" + signed_str(a.olo) + ")";
    if (!why.empty())
        report(i, "helper-arg", name + ": argument r" + std::to_string(reg) + " " + why,
               "copy the key/value into a 4-byte aligned local variable and pass its address",
               a.kind == Kind::Top);
}

}  // namespace etcpipe::nfp::checker
