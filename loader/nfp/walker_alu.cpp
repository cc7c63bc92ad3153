// NFP checker, the walker on BPF_ALU and BPF_ALU64: the NFP lacks modulo,
// signed forms and to-little-endian swaps, divides only by constants and
// multiplies only 32-bit operands.
#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp::checker {
namespace {

bool alu64(const Insn& in) { return BPF_CLASS(in.code) == BPF_ALU64; }
bool uses_imm(const Insn& in) { return BPF_SRC(in.code) == BPF_K; }

// pointer ± scalar keeps the pointer and moves its offset interval.
Val pointer_arith(const Insn& in, const Val& d, const Val& src) {
    const uint8_t op = BPF_OP(in.code);
    Val p = d.is_ptr() ? d : src;
    const Val k = d.is_ptr() ? src : d;
    if (k.is_ptr())  // pointer - pointer is a scalar, pointer + pointer is junk
        return op == BPF_SUB ? Val::scalar(0, kTop) : Val::top();
    int64_t lo = kNegInf, hi = kPosInf;
    if (uses_imm(in)) {
        lo = hi = op == BPF_SUB ? -static_cast<int64_t>(in.imm) : in.imm;
    } else if (k.is_const()) {
        const auto c = static_cast<int64_t>(k.lo);
        lo = hi = op == BPF_SUB ? (c == kNegInf ? kPosInf : -c) : c;
    } else if (k.kind == Kind::Scalar && k.hi <= static_cast<uint64_t>(kPosInf)) {
        const auto l = static_cast<int64_t>(k.lo), h = static_cast<int64_t>(k.hi);
        lo = op == BPF_SUB ? -h : l;
        hi = op == BPF_SUB ? -l : h;
    }
    p.olo = sat_add(p.olo, lo);
    p.ohi = sat_add(p.ohi, hi);
    return p;
}

}  // namespace

void Walker::alu(size_t i, const Insn& in, State& s) {
    const bool is64 = alu64(in);
    const uint8_t op = BPF_OP(in.code);
    const bool use_imm = uses_imm(in);
    Val& d = s.r[in.dst];
    const Val src = use_imm ? Val::konst(is64 ? static_cast<uint64_t>(static_cast<int64_t>(in.imm))
                                               : static_cast<uint32_t>(in.imm))
                            : s.r[in.src];

    if (op == BPF_END) {
        byte_swap(i, in, d);
        return;
    }
    if (in.off != 0) {
        alu_with_offset(i, in, d);
        return;
    }
    if (op == BPF_MOD) {
        report(i, "opcode-mod", std::string(is64 ? "64" : "32") + "-bit modulo: the NFP has no BPF_MOD",
               "replace `x % n` with `x & (n - 1)` for powers of two, or x - (x / n) * n with "
               "n constant");
    }
    if (op == BPF_DIV) check_div(i, in, d, src);
    if (op == BPF_MUL) check_mul(i, in, d, src);

    if (is64 && (op == BPF_ADD || op == BPF_SUB) && (d.is_ptr() || (op == BPF_ADD && src.is_ptr()))) {
        d = pointer_arith(in, d, src);
        return;
    }
    if (op == BPF_MOV) {
        if (is64) d = src;
        else d = src.kind == Kind::Scalar ? alu_scalar(BPF_MOV, d, src, false) : Val::bits(32);
        return;
    }
    d = alu_scalar(op, d, src, is64);
}

void Walker::byte_swap(size_t i, const Insn& in, Val& d) {
    const bool use_imm = uses_imm(in);
    if (alu64(in)) {
        report(i, "bswap", "unconditional byte swap (BPF_ALU64|BPF_END, -mcpu=v4) is not supported",
               "build with -mcpu=v3 and use bpf_htons/bpf_htonl");
    } else if (!use_imm && in.imm != 16 && in.imm != 32 && in.imm != 64) {
        report(i, "bswap", "byte swap of width " + std::to_string(in.imm), "use 16, 32 or 64");
    } else if (use_imm) {  // BPF_TO_LE: the NFP JIT only implements to-big-endian
        report(i, "bswap", "to-little-endian conversion (le" + std::to_string(in.imm) +
                               ") is not implemented by the NFP JIT",
               "mask with 0xffff/0xffffffff instead of bpf_cpu_to_le*");
    }
    d = in.imm == 16 || in.imm == 32 ? Val::bits(in.imm) : Val::scalar(0, kTop);
}

// The -mcpu=v4 signed forms (movsx, sdiv, smod) set the offset field.
void Walker::alu_with_offset(size_t i, const Insn& in, Val& d) {
    const uint8_t op = BPF_OP(in.code);
    if (op == BPF_MOV) {
        report(i, "sign-extend", "sign-extending move (movsx, off=" + std::to_string(in.off) + ")",
               "build with -mcpu=v3; use unsigned types");
    } else if (op == BPF_DIV) {
        report(i, "div", "signed division (sdiv)", "use unsigned division by a constant");
    } else if (op == BPF_MOD) {
        report(i, "opcode-mod", "signed modulo (smod): the NFP has no modulo",
               "use a power-of-two mask or unsigned arithmetic without %");
    } else {
        report(i, "alu-offset", "ALU instruction with a non-zero offset field",
               "build with -mcpu=v3");
    }
    d = Val::scalar(0, alu64(in) ? kTop : kU32Max);
}

// The NFP divides by reciprocal multiplication: a constant u32 divisor, a
// dividend that fits 32 bits.
void Walker::check_div(size_t i, const Insn& in, const Val& d, const Val& src) {
    if (uses_imm(in)) {
        if (in.imm <= 0)
            report(i, "div", "division by " + std::to_string(in.imm) +
                                 " (zero or negative constant)",
                   "divide only by a positive constant");
    } else if (!src.is_const()) {
        report(i, "div", "divisor r" + std::to_string(in.src) +
                             " is not a verifier-known constant (" + range_str(src) + ")",
               "the NFP divides by reciprocal multiplication: divide only by a constant "
               "(or a power of two with >>)", src.kind == Kind::Scalar && src.hi != kTop);
    } else if (src.lo > kU32Max || src.lo == 0) {
        report(i, "div", "divisor is 0 or not within u32", "divide by a constant in 1..2^32-1");
    }
    if (d.umax() > kU32Max)
        report(i, "div", "cannot prove dividend r" + std::to_string(in.dst) +
                             " ≤ 2^32−1 (" + range_str(d) + ")",
               "mask or bound the dividend first (e.g. `x & 0xffffffff` or a 32-bit type)", true);
}

// The NFP multiplies 32x32 bits; the kernel checks the 64-bit bounds of both
// registers, for ALU32 as well as ALU64.
void Walker::check_mul(size_t i, const Insn& in, const Val& d, const Val& src) {
    static constexpr const char* kHint =
        "make both operands provably 32-bit: load them as __u32, mask with "
        "0xffffffff or compare against a constant before multiplying";
    const bool use_imm = uses_imm(in);
    if (d.umax() > kU32Max)
        report(i, "mul-operand-range", "cannot prove ≤ 2^32−1: multiplier r" +
                                           std::to_string(in.dst) + " is " + range_str(d),
               kHint, true);
    if (!use_imm && src.umax() > kU32Max)
        report(i, "mul-operand-range", "cannot prove ≤ 2^32−1: multiplicand r" +
                                           std::to_string(in.src) + " is " + range_str(src),
               kHint, true);
    if (use_imm && alu64(in) && in.imm < 0)
        report(i, "mul-operand-range", "multiplication by a negative (sign-extended) constant",
               "multiply by a positive constant");
}

}  // namespace etcpipe::nfp::checker
