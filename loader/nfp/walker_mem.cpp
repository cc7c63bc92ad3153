// NFP checker, the walker on memory: BPF_LD (ld_imm64, legacy packet loads),
// BPF_LDX, BPF_ST and BPF_STX, through the stack (constant offsets inside the
// 512-byte frame), the context (data and data_end only), the packet (first
// 1888 B) and map values (constant offsets, no plain stores).
#include "nfp/checker_internal.hpp"

#ifndef BPF_MEMSX  // -mcpu=v4 sign-extending loads; older uapi headers lack it
#define BPF_MEMSX 0x80
#endif

namespace etcpipe::nfp::checker {

// ---- instruction classes ----------------------------------------------------

void Walker::ld_imm64(size_t i, const Insn& in, State& s) {
    auto rel = sec_.rels.find(start_ + i);
    const uint64_t hi32 = i + 1 < n_ ? static_cast<uint32_t>(at(i + 1).imm) : 0;
    Val v = Val::konst((hi32 << 32) | static_cast<uint32_t>(in.imm));
    const bool global = (rel != sec_.rels.end() && rel->second.kind == RelKind::Global) ||
                        in.src == BPF_PSEUDO_MAP_VALUE || in.src == BPF_PSEUDO_MAP_IDX_VALUE;
    if (global) {
        const std::string sym = rel != sec_.rels.end() ? rel->second.sym : "map value";
        report(i, "global-data", "uses global data '" + sym + "' (.data/.rodata/.bss/.kconfig)",
               "the NFP has no global data: use #define constants, or a one-entry "
               "ARRAY map read with bpf_map_lookup_elem");
        v = Val::ptr(Kind::Global);
    } else if ((rel != sec_.rels.end() && rel->second.kind == RelKind::Map) ||
               in.src == BPF_PSEUDO_MAP_FD || in.src == BPF_PSEUDO_MAP_IDX) {
        v = Val::ptr(Kind::MapPtr);
    } else if (in.src != 0) {
        v = Val::ptr(Kind::Pointer);
    }
    s.r[in.dst] = v;
}

void Walker::ld_packet(size_t i, const Insn& in, State& s) {
    const uint8_t mode = BPF_MODE(in.code);
    if (mode != BPF_ABS && mode != BPF_IND) {
        report(i, "opcode", "unsupported BPF_LD form (opcode " + std::to_string(in.code) + ")",
               "the only BPF_LD forms are ld_imm64 and the legacy packet loads");
        return;
    }
    if (!cls())  // the kernel allows them in socket filters and TC programs only
        report(i, "opcode", "legacy packet load (LD_ABS/LD_IND) outside a TC program",
               "read the packet through ctx->data and ctx->data_end");
    const int size = access_size(in.code);
    const Val& x = s.r[in.src];
    const uint64_t hi = mode == BPF_ABS ? 0 : x.umax();
    if (hi > static_cast<uint64_t>(kPacketMax) ||
        static_cast<int64_t>(hi) + in.imm + size > kPacketMax)
        report(i, "packet-offset", "legacy packet load beyond 1888 B or unbounded",
               "keep packet accesses within the first 1888 B", hi == kTop);
    clobber_args(s);
    s.r[0] = Val::bits(8 * size);
}

void Walker::ldx(size_t i, const Insn& in, State& s) {
    const uint8_t mode = BPF_MODE(in.code);
    if (mode == BPF_MEMSX) {
        report(i, "sign-extend", "sign-extending load (ldsx, -mcpu=v4)",
               "build with -mcpu=v3 and use unsigned types");
        s.r[in.dst] = Val::scalar(0, kTop);
        return;
    }
    if (mode != BPF_MEM) {
        report(i, "opcode", "unsupported load mode", "build with -mcpu=v3");
        s.r[in.dst] = Val::scalar(0, kTop);
        return;
    }
    const Val base = s.r[in.src];
    s.r[in.dst] = load(i, s, base, in.off, access_size(in.code));
}

void Walker::st(size_t i, const Insn& in, State& s) {
    report(i, "st-imm", "store of an immediate (BPF_ST) is not allowed here",
           "store from a register: keep the constant in a variable the compiler cannot "
           "fold, or build the value in a register first");
    store(i, s, s.r[in.dst], in.off, access_size(in.code),
          Val::konst(static_cast<uint64_t>(static_cast<int64_t>(in.imm))));
}

void Walker::stx(size_t i, const Insn& in, State& s) {
    const uint8_t mode = BPF_MODE(in.code);
    if (mode == BPF_ATOMIC) {
        atomic(i, in, s);
        return;
    }
    if (mode != BPF_MEM) {
        report(i, "opcode", "unsupported store mode", "build with -mcpu=v3");
        return;
    }
    store(i, s, s.r[in.dst], in.off, access_size(in.code), s.r[in.src]);
}

void Walker::atomic(size_t i, const Insn& in, State& s) {
    const Val& base = s.r[in.dst];
    if (in.imm != BPF_ADD) {
        const bool fetch = (in.imm & BPF_FETCH) != 0;
        report(i, "atomic",
               std::string("atomic operation ") + (fetch ? "with BPF_FETCH " : "") +
                   "(imm " + std::to_string(in.imm) + "): the NFP only has atomic add without fetch",
               "use __sync_fetch_and_add without using its result (or "
               "__atomic_add_fetch ignored); no xchg/cmpxchg/and/or/xor");
        if (fetch) s.r[in.imm == BPF_CMPXCHG ? 0 : in.src] = Val::bits(8 * access_size(in.code));
    } else if (base.kind != Kind::MapValue && base.kind != Kind::MapOrNull) {
        report(i, "atomic", "atomic add not to a map value",
               "atomic adds are offloaded only on values returned by bpf_map_lookup_elem",
               base.kind == Kind::Top);
    }
}

// ---- memory -------------------------------------------------------------

namespace {

// A pointer offset that is one known number (an unbounded end is none).
bool exact(const Val& p) { return p.olo == p.ohi && p.olo != kNegInf && p.olo != kPosInf; }

}  // namespace

// The slot `base + off` names, when the whole access [addr, addr + size) is
// one constant stretch inside the frame [-512, 0); anything else is reported.
bool Walker::stack_addr(size_t i, const Val& base, int16_t off, int size, int64_t& addr) {
    if (!exact(base)) {
        report(i, "stack-variable-offset",
               "stack access at a variable offset (fp" + signed_str(sat_add(base.olo, off)) + " .. fp" +
                   signed_str(sat_add(base.ohi, off)) + ")",
               "the NFP JIT needs constant stack offsets: index with constants (unroll the "
               "loop) or keep the array in the packet or a map value");
        return false;
    }
    addr = sat_add(base.olo, off);
    if (addr < -kStackMax || addr > -static_cast<int64_t>(size)) {
        report(i, "stack-size",
               "stack access at fp" + signed_str(addr) + " (" + std::to_string(size) +
                   " B) is outside the 512-byte frame",
               "shrink the locals of this program (the NFP frame is at most 512 B)");
        return false;
    }
    return true;
}

Val Walker::load(size_t i, State& s, const Val& base, int16_t off, int size) {
    const Val loaded = size == 8 ? Val::scalar(0, kTop) : Val::bits(8 * size);
    switch (base.kind) {
        case Kind::Stack: {
            int64_t a = 0;
            if (!stack_addr(i, base, off, size, a)) return loaded;
            auto it = s.stack.find(a);
            if (it == s.stack.end()) return loaded;
            const Slot& sl = it->second;
            if (sl.size == size) return sl.v;
            // Narrower fill of a wider spill (little-endian: the low bytes).
            if (sl.size > size && sl.v.kind == Kind::Scalar && sl.v.hi <= loaded.hi) return sl.v;
            return loaded;
        }
        case Kind::Ctx:
            return load_ctx(i, base, off, loaded);
        case Kind::MapValue:
        case Kind::MapOrNull:
            if (!exact(base))
                report(i, "map-variable-offset", "map value read at a variable offset",
                       "the NFP verifier needs constant offsets into map values: index "
                       "with constants or split the value", base.ohi == kPosInf);
            return loaded;
        case Kind::Packet:
            check_packet_access(i, base, off, size);
            return loaded;
        default: return loaded;
    }
}

// Only data and data_end (and skb->len) exist on the NFP.
Val Walker::load_ctx(size_t i, const Val& base, int16_t off, const Val& loaded) {
    if (!xdp() && !cls()) return loaded;
    if (!exact(base)) {
        report(i, "ctx-field", "context read at a variable offset",
               "read ctx->data and ctx->data_end only, at constant offsets");
        return loaded;
    }
    const int64_t f = sat_add(base.olo, off);
    if (xdp()) {
        if (f == 0) return Val::ptr(Kind::Packet);
        if (f == 4) return Val::ptr(Kind::PacketEnd);
        static const std::map<int64_t, const char*> names = {
            {8, "data_meta"}, {12, "ingress_ifindex"}, {16, "rx_queue_index"},
            {20, "egress_ifindex"}};
        auto it = names.find(f);
        report(i, "ctx-field",
               std::string("reads xdp_md.") + (it != names.end() ? it->second : "?") +
                   " (offset " + std::to_string(f) + "); the NFP only provides data and data_end",
               "drop the field or compute it in user space; only ctx->data (0) and "
               "ctx->data_end (4) are offloadable");
        return f == 8 ? Val::ptr(Kind::Pointer) : loaded;
    }
    // SCHED_CLS: __sk_buff len (0), data (76), data_end (80).
    if (f == 76) return Val::ptr(Kind::Packet);
    if (f == 80) return Val::ptr(Kind::PacketEnd);
    if (f == 0) return Val::bits(32);
    report(i, "ctx-field",
           "reads __sk_buff field at offset " + std::to_string(f) +
               "; the NFP only provides len, data and data_end",
           "use only skb->len, skb->data and skb->data_end");
    return loaded;
}

void Walker::check_packet_access(size_t i, const Val& base, int16_t off, int size) {
    const int64_t first = sat_add(base.olo, off);             // lowest byte touched
    const int64_t end_lo = sat_add(first, size);              // end of the access, at olo
    const int64_t end_hi = sat_add(sat_add(base.ohi, off), size);  // ... at ohi
    if (first < 0) {
        report(i, "packet-offset",
               first == kNegInf ? std::string("packet access at an offset with no lower bound")
                                : "packet access at byte " + std::to_string(first) +
                                      ", before the start of the packet",
               "access the packet only at data + 0 and beyond", first == kNegInf);
    }
    if (base.ohi == kPosInf) {
        report(i, "packet-offset", "packet access at an offset that cannot be bounded",
               "bound the offset with a constant check (e.g. `if (off > 1800) goto drop`) "
               "before using it; the NFP reads at most 1888 B into the packet",
               true);
    } else if (end_lo > kPacketMax) {
        report(i, "packet-offset",
               "packet access up to byte " + std::to_string(end_lo) + " > 1888",
               "keep every packet access within the first 1888 B");
    } else if (end_hi > kPacketMax) {
        report(i, "packet-offset",
               "cannot prove packet access ≤ 1888 B (offset " + std::to_string(first) + ".." +
                   std::to_string(sat_add(base.ohi, off)) + ")",
               "bound the variable part of the offset with a constant check before the "
               "access; the NFP reads at most 1888 B into the packet",
               true);
    }
}

void Walker::store(size_t i, State& s, const Val& base, int16_t off, int size, const Val& v) {
    switch (base.kind) {
        case Kind::Stack: {
            int64_t a = 0;
            if (!stack_addr(i, base, off, size, a)) {
                if (!exact(base)) s.stack.clear();  // might have hit anything
                return;
            }
            for (auto it = s.stack.begin(); it != s.stack.end();) {
                const bool overlap = it->first < a + size && a < it->first + it->second.size;
                it = overlap ? s.stack.erase(it) : std::next(it);
            }
            Val stored = v;
            if (size < 8) {
                const Val lim = Val::bits(8 * size);
                stored = v.kind == Kind::Scalar && v.hi <= lim.hi ? v : lim;
            }
            s.stack[a] = Slot{size, stored};
            return;
        }
        case Kind::Ctx:
            report(i, "ctx-field", "writes to the program context",
                   "the NFP context is read-only: write into the packet instead");
            return;
        case Kind::MapValue:
        case Kind::MapOrNull:
            report(i, "map-write",
                   "stores into a map value returned by bpf_map_lookup_elem (" +
                       (base.olo == base.ohi ? "offset " + signed_str(sat_add(base.olo, off))
                                             : std::string("variable offset")) + ")",
                   "public NFP firmware only supports map lookups from the datapath: update "
                   "maps from user space, or use an atomic add (no fetch) for counters");
            return;
        case Kind::Packet:
            check_packet_access(i, base, off, size);  // same offset limit as reads
            return;
        default: return;
    }
}

}  // namespace etcpipe::nfp::checker
