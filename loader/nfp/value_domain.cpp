// NFP checker, 2. the abstract domain: join and widening of values and
// states, unsigned interval arithmetic, branch refinement, and how values
// read in messages.
#include <algorithm>
#include <cstdio>

#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp::checker {
namespace {

uint64_t smear(uint64_t x) {
    for (int s = 1; s < 64; s <<= 1) x |= x >> s;
    return x;
}

}  // namespace

int64_t sat_add(int64_t a, int64_t b) {
    if (a == kNegInf || b == kNegInf) return kNegInf;
    if (a == kPosInf || b == kPosInf) return kPosInf;
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kPosInf : kNegInf;
    return r;
}

Val join(const Val& a, const Val& b) {
    if (a == b) return a;
    Kind k = a.kind;
    if (a.kind != b.kind) {
        auto mapish = [](Kind x) { return x == Kind::MapValue || x == Kind::MapOrNull; };
        if (mapish(a.kind) && mapish(b.kind)) k = Kind::MapOrNull;
        else return Val::top();
    }
    if (k == Kind::Scalar) return Val::scalar(std::min(a.lo, b.lo), std::max(a.hi, b.hi));
    if (k == Kind::Uninit || k == Kind::Top) return Val{k, 0, kTop, kNegInf, kPosInf, 0};
    Val r = Val::ptr(k);
    r.olo = std::min(a.olo, b.olo);
    r.ohi = std::max(a.ohi, b.ohi);
    r.id = a.id == b.id ? a.id : 0;
    return r;
}

Val widen(const Val& old, const Val& now) {
    if (old == now) return old;
    if (old.kind != now.kind) return now;
    Val r = now;
    if (now.kind == Kind::Scalar) {
        r.lo = now.lo < old.lo ? 0 : old.lo;
        r.hi = now.hi > old.hi ? kTop : old.hi;
    } else {
        r.olo = now.olo < old.olo ? kNegInf : old.olo;
        r.ohi = now.ohi > old.ohi ? kPosInf : old.ohi;
    }
    return r;
}

State join(const State& a, const State& b, bool widening) {
    State s;
    for (size_t i = 0; i < s.r.size(); ++i) {
        Val j = join(a.r[i], b.r[i]);
        s.r[i] = widening ? widen(a.r[i], j) : j;
    }
    for (const auto& [off, sa] : a.stack) {
        auto it = b.stack.find(off);
        if (it == b.stack.end() || it->second.size != sa.size) continue;
        Val j = join(sa.v, it->second.v);
        s.stack[off] = Slot{sa.size, widening ? widen(sa.v, j) : j};
    }
    return s;
}

Val alu_scalar(uint8_t op, const Val& dv, const Val& sv, bool is64) {
    const uint64_t full = is64 ? kTop : kU32Max;
    auto norm = [&](const Val& v) {
        if (v.kind != Kind::Scalar || v.hi > full) return Val::scalar(0, full);
        return v;
    };
    const Val a = norm(dv);
    const Val b = norm(sv);
    const Val top = Val::scalar(0, full);
    Val r = top;
    uint64_t h = 0;
    switch (op) {
        case BPF_ADD:
            if (!__builtin_add_overflow(a.hi, b.hi, &h)) r = Val::scalar(a.lo + b.lo, h);
            break;
        case BPF_SUB:
            if (a.lo >= b.hi) r = Val::scalar(a.lo - b.hi, a.hi - b.lo);
            break;
        case BPF_MUL:
            if (!__builtin_mul_overflow(a.hi, b.hi, &h)) r = Val::scalar(a.lo * b.lo, h);
            break;
        case BPF_DIV:  // x / 0 == 0 in BPF
            r = b.lo > 0 ? Val::scalar(a.lo / b.hi, a.hi / b.lo) : Val::scalar(0, a.hi);
            break;
        case BPF_MOD:  // x % 0 == x in BPF
            r = b.lo > 0 ? Val::scalar(0, std::min(a.hi, b.hi - 1)) : Val::scalar(0, a.hi);
            break;
        case BPF_OR: r = Val::scalar(std::max(a.lo, b.lo), smear(a.hi | b.hi)); break;
        case BPF_AND: r = Val::scalar(0, std::min(a.hi, b.hi)); break;
        case BPF_XOR: r = Val::scalar(0, smear(a.hi | b.hi)); break;
        case BPF_LSH:
            if (b.is_const()) {
                const unsigned k = static_cast<unsigned>(b.lo & (is64 ? 63 : 31));
                if (k == 0) r = a;
                else if (a.hi <= (full >> k)) r = Val::scalar(a.lo << k, a.hi << k);
            }
            break;
        case BPF_RSH:
            if (b.is_const()) {
                const unsigned k = static_cast<unsigned>(b.lo & (is64 ? 63 : 31));
                r = Val::scalar(a.lo >> k, a.hi >> k);
            } else {
                r = Val::scalar(0, a.hi);
            }
            break;
        case BPF_ARSH:  // same as RSH while the sign bit is provably clear
            if (a.hi <= (full >> 1)) r = alu_scalar(BPF_RSH, a, b, is64);
            break;
        case BPF_NEG:
            if (a.is_const()) r = Val::konst((0 - a.lo) & full);
            break;
        case BPF_MOV: r = b; break;
        default: break;
    }
    if (r.hi > full) r = top;
    return r;
}

std::optional<Val> refine(const Val& v, uint8_t op, uint64_t c, bool truth) {
    if (v.kind != Kind::Scalar) return v;
    auto clamp = [&](uint64_t l, uint64_t h) -> std::optional<Val> {
        l = std::max(l, v.lo);
        h = std::min(h, v.hi);
        if (l > h) return std::nullopt;
        return Val::scalar(l, h);
    };
    switch (op) {
        case BPF_JEQ:
            if (truth) return clamp(c, c);
            if (v.lo == c && v.hi == c) return std::nullopt;
            if (v.lo == c) return Val::scalar(v.lo + 1, v.hi);
            if (v.hi == c) return Val::scalar(v.lo, v.hi - 1);
            return v;
        case BPF_JNE: return refine(v, BPF_JEQ, c, !truth);
        case BPF_JGT:
            if (truth) return c == kTop ? std::nullopt : clamp(c + 1, kTop);
            return clamp(0, c);
        case BPF_JGE:
            if (truth) return clamp(c, kTop);
            return c == 0 ? std::nullopt : clamp(0, c - 1);
        case BPF_JLT: return refine(v, BPF_JGE, c, !truth);
        case BPF_JLE: return refine(v, BPF_JGT, c, !truth);
        default: return v;
    }
}

std::string signed_str(int64_t v) {
    char b[32];
    std::snprintf(b, sizeof b, "%s%lld", v >= 0 ? "+" : "", static_cast<long long>(v));
    return b;
}

std::string range_str(const Val& v) {
    if (v.kind != Kind::Scalar) return "unknown";
    if (v.hi == kTop) return "unbounded";
    return "[" + std::to_string(v.lo) + ", " + std::to_string(v.hi) + "]";
}

}  // namespace etcpipe::nfp::checker
