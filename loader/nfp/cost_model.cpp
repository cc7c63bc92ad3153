// NFP checker, 4. the cost model.
// An ESTIMATE of the NFP instructions the kernel's NFP JIT (nfp/bpf/jit.c)
// emits, to compare against the firmware's code-store limit (2560 on public
// firmware). The NFP is a 32-bit machine with 8-bit/16-bit immediates:
//   ALU32 op ................................. 1  (the JIT adds an upper-half
//                                                  zeroing immed only where the
//                                                  verifier asks for it: not counted)
//   ALU64 mov/add/sub/and/or/xor/neg/shift-imm 2  (one per 32-bit half)
//   shift by a register ...................... 7  (shift-amount setup + both halves)
//   32-bit immediate load .................... 1, or 2 when it does not pack into
//                                                  16 bits at a byte shift (ld_imm64:
//                                                  two of those)
//   multiply ................................. 6 (32-bit) / 10 (64-bit): mul_step sequence
//   divide by a constant ..................... 16 (reciprocal multiply)
//   byte swap to big-endian .................. 2 (16-bit), 3 (32-bit), 6 (64-bit)
//   stack load/store (local memory) .......... 2 (≤ 4 B), 3 (8 B)
//   packet/map load or store ................. 4  (memory command, wait, move, upper half)
//   atomic add ............................... 6
//   conditional jump ......................... 3 (64-bit: compare both halves), 2 (jmp32)
//   ja 1, exit 1 (branch to the shared outro)
//   helper calls: lookup 12, prandom 3, adjust_head 20, adjust_tail 12, other 20
//   per program: prologue and XDP/TC outro ... 30
// Register allocation, zero-extension and local-memory pointer reloads move
// the real count; treat the result as ±20 %.
#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp::checker {
namespace {

size_t immed_cost(uint32_t imm) {
    auto packs = [](uint32_t v) {
        return !(v & 0xffff0000U) || !(v & 0xff0000ffU) || !(v & 0x0000ffffU);
    };
    return packs(imm) || packs(~imm) ? 1 : 2;
}

size_t insn_cost(const Insn& in, const Insn* next) {
    const uint8_t c = BPF_CLASS(in.code);
    const uint8_t op = BPF_OP(in.code);
    const int size = access_size(in.code);
    switch (c) {
        case BPF_ALU:
        case BPF_ALU64: {
            const bool is64 = c == BPF_ALU64;
            const bool imm = BPF_SRC(in.code) == BPF_K;
            switch (op) {
                case BPF_MUL: return is64 ? 10 : 6;
                case BPF_DIV:
                case BPF_MOD: return 16;
                case BPF_LSH:
                case BPF_RSH:
                case BPF_ARSH: return imm ? (is64 ? 2 : 1) : 7;
                case BPF_END: return in.imm == 16 ? 2 : in.imm == 32 ? 3 : 6;
                case BPF_MOV:
                    if (imm) return immed_cost(static_cast<uint32_t>(in.imm)) + (is64 ? 1 : 0);
                    return is64 ? 2 : 1;
                default:
                    return (is64 ? 2 : 1) + (imm ? immed_cost(static_cast<uint32_t>(in.imm)) - 1 : 0);
            }
        }
        case BPF_LD:
            if (in.code == kLdImm64)
                return immed_cost(static_cast<uint32_t>(in.imm)) +
                       immed_cost(next ? static_cast<uint32_t>(next->imm) : 0);
            return 6;
        case BPF_LDX:
        case BPF_ST:
        case BPF_STX:
            if (BPF_MODE(in.code) == BPF_ATOMIC) return 6;
            if ((c == BPF_LDX ? in.src : in.dst) == BPF_REG_10) return size == 8 ? 3 : 2;
            return 4;
        case BPF_JMP:
        case BPF_JMP32:
            if (c == BPF_JMP && op == BPF_CALL) {
                if (in.src != 0) return 4;
                switch (in.imm) {
                    case BPF_FUNC_map_lookup_elem: return 12;
                    case BPF_FUNC_get_prandom_u32: return 3;
                    case BPF_FUNC_xdp_adjust_head: return 20;
                    case BPF_FUNC_xdp_adjust_tail: return 12;
                    default: return 20;
                }
            }
            if (c == BPF_JMP && op == BPF_EXIT) return 1;
            if (op == BPF_JA) return 1;
            return c == BPF_JMP32 ? 2 : 3;
        default: return 2;
    }
}

}  // namespace

size_t nfp_cost(const Section& sec, size_t start, size_t count) {
    size_t cost = 0;
    for (size_t i = 0; i < count; ++i) {
        const Insn* next = i + 1 < count ? &sec.insns[start + i + 1] : nullptr;
        if (i > 0 && sec.insns[start + i - 1].code == kLdImm64) continue;
        cost += insn_cost(sec.insns[start + i], next);
    }
    return cost;
}

}  // namespace etcpipe::nfp::checker
