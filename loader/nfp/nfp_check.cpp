// NFP offload checker (see nfp_check.hpp for the contract, SPEC §6 for the
// rules). Layout of this file:
//   1. ELF reading: executable sections, function symbols, relocations.
//   2. The abstract domain: Val (scalar interval or pointer + offset interval)
//      and State (11 registers + constant-offset stack slots).
//   3. The transfer function, which also reports violations.
//   4. The fixpoint driver per function, the NFP cost model, map checks.
//   5. check_object() and print_report().
#include "nfp/nfp_check.hpp"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>

#ifndef EM_BPF
#define EM_BPF 247
#endif
#ifndef BPF_MEMSX  // -mcpu=v4 sign-extending loads; older uapi headers lack it
#define BPF_MEMSX 0x80
#endif

namespace etcpipe::nfp {
namespace {

// ---- limits of the NFP and its public firmware (SPEC §6) -------------------
constexpr uint64_t kU32Max = 0xffffffffULL;
constexpr uint64_t kTop = std::numeric_limits<uint64_t>::max();
constexpr int64_t kNegInf = std::numeric_limits<int64_t>::min();
constexpr int64_t kPosInf = std::numeric_limits<int64_t>::max();
constexpr int64_t kStackMax = 512;
constexpr int64_t kPacketMax = 1888;
constexpr uint32_t kMapKeyMax = 56;
constexpr uint32_t kMapValueMax = 56;
constexpr uint32_t kMapEntryMax = 64;

// Helper ids, in uapi order; the mapper macro gives the names.
#define ETCPIPE_HELPER_NAME(x, ...) #x
constexpr const char* kHelperNames[] = {__BPF_FUNC_MAPPER(ETCPIPE_HELPER_NAME)};
#undef ETCPIPE_HELPER_NAME

std::string helper_name(int32_t id) {
    if (id >= 0 && static_cast<size_t>(id) < std::size(kHelperNames))
        return std::string("bpf_") + kHelperNames[id];
    return "helper #" + std::to_string(id);
}

// ---- 1. ELF reading ---------------------------------------------------------

struct Insn {
    uint8_t code = 0;
    uint8_t dst = 0;
    uint8_t src = 0;
    int16_t off = 0;
    int32_t imm = 0;
};

enum class RelKind { Map, Global, Call };

struct Rel {
    RelKind kind = RelKind::Global;
    std::string sym;       // symbol (map or variable name, or section)
    size_t target_sec = 0; // Call: section of the callee
    int64_t target = 0;    // Call: callee instruction index in that section
};

struct Section {
    std::string name;
    bool exec = false;
    std::vector<Insn> insns;
    std::map<size_t, Rel> rels;  // by instruction index
};

struct Func {
    std::string name;
    size_t sec = 0;
    size_t start = 0;  // instruction index in the section
    size_t count = 0;
};

struct Image {
    std::vector<Section> secs;  // by ELF section index
    std::vector<Func> funcs;
};

struct ElfCloser {
    Elf* e = nullptr;
    int fd = -1;
    ~ElfCloser() {
        if (e) elf_end(e);
        if (fd >= 0) close(fd);
    }
};

Result<Image> read_image(const std::string& path) {
    ElfCloser h;
    h.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (h.fd < 0)
        return make_error(ErrorKind::Io, errno, path, "open BPF object", {},
                          "check the path (build it with make first)");
    if (elf_version(EV_CURRENT) == EV_NONE)
        return make_error(ErrorKind::Bpf, 0, path, "libelf init", elf_errmsg(-1));
    h.e = elf_begin(h.fd, ELF_C_READ, nullptr);
    GElf_Ehdr eh;
    if (!h.e || elf_kind(h.e) != ELF_K_ELF || !gelf_getehdr(h.e, &eh))
        return make_error(ErrorKind::Data, 0, path, "read ELF header", "not an ELF file",
                          "pass a BPF object built with clang -target bpf");
    if (eh.e_machine != EM_BPF)
        return make_error(ErrorKind::Data, 0, path, "read ELF header",
                          "ELF machine " + std::to_string(eh.e_machine) + " is not BPF",
                          "pass a BPF object built with clang -target bpf");
    size_t shstrndx = 0;
    size_t nsec = 0;
    if (elf_getshdrstrndx(h.e, &shstrndx) != 0 || elf_getshdrnum(h.e, &nsec) != 0)
        return make_error(ErrorKind::Data, 0, path, "read ELF sections", elf_errmsg(-1));

    Image img;
    img.secs.resize(nsec);
    Elf_Data* symtab = nullptr;
    size_t strtab = 0;
    std::vector<std::pair<size_t, Elf_Scn*>> rel_secs;  // (target section, rel scn)
    for (Elf_Scn* scn = elf_nextscn(h.e, nullptr); scn; scn = elf_nextscn(h.e, scn)) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh)) continue;
        size_t idx = elf_ndxscn(scn);
        const char* nm = elf_strptr(h.e, shstrndx, sh.sh_name);
        img.secs[idx].name = nm ? nm : "";
        if (sh.sh_type == SHT_PROGBITS && (sh.sh_flags & SHF_EXECINSTR)) {
            img.secs[idx].exec = true;
            Elf_Data* d = elf_getdata(scn, nullptr);
            if (!d || !d->d_buf) continue;
            size_t n = d->d_size / 8;
            const auto* raw = static_cast<const uint8_t*>(d->d_buf);
            img.secs[idx].insns.resize(n);
            for (size_t i = 0; i < n; ++i) {
                const uint8_t* p = raw + 8 * i;
                Insn& in = img.secs[idx].insns[i];
                in.code = p[0];
                in.dst = p[1] & 0x0f;  // little-endian BPF objects only
                in.src = static_cast<uint8_t>(p[1] >> 4);
                in.off = static_cast<int16_t>(p[2] | (p[3] << 8));
                in.imm = static_cast<int32_t>(static_cast<uint32_t>(p[4]) |
                                              (static_cast<uint32_t>(p[5]) << 8) |
                                              (static_cast<uint32_t>(p[6]) << 16) |
                                              (static_cast<uint32_t>(p[7]) << 24));
            }
        } else if (sh.sh_type == SHT_SYMTAB) {
            symtab = elf_getdata(scn, nullptr);
            strtab = sh.sh_link;
        } else if (sh.sh_type == SHT_REL) {
            rel_secs.emplace_back(sh.sh_info, scn);
        }
    }
    if (!symtab)
        return make_error(ErrorKind::Data, 0, path, "read ELF symbols", "no symbol table",
                          "do not strip BPF objects");

    const size_t nsyms = symtab->d_size / sizeof(Elf64_Sym);
    auto sym_at = [&](size_t i, GElf_Sym& s) { return gelf_getsym(symtab, static_cast<int>(i), &s) != nullptr; };
    for (size_t i = 0; i < nsyms; ++i) {
        GElf_Sym s;
        if (!sym_at(i, s) || GELF_ST_TYPE(s.st_info) != STT_FUNC) continue;
        if (s.st_shndx >= nsec || !img.secs[s.st_shndx].exec) continue;
        const char* nm = elf_strptr(h.e, strtab, s.st_name);
        img.funcs.push_back(Func{nm ? nm : "", s.st_shndx, s.st_value / 8, s.st_size / 8});
    }
    for (auto [target, scn] : rel_secs) {
        if (target >= nsec || !img.secs[target].exec) continue;
        Section& sec = img.secs[target];
        Elf_Data* d = elf_getdata(scn, nullptr);
        GElf_Shdr sh;
        if (!d || !gelf_getshdr(scn, &sh) || sh.sh_entsize == 0) continue;
        const size_t n = sh.sh_size / sh.sh_entsize;
        for (size_t i = 0; i < n; ++i) {
            GElf_Rel r;
            GElf_Sym s;
            if (!gelf_getrel(d, static_cast<int>(i), &r) || !sym_at(GELF_R_SYM(r.r_info), s)) continue;
            const size_t at = r.r_offset / 8;
            if (at >= sec.insns.size()) continue;
            const char* snm = elf_strptr(h.e, strtab, s.st_name);
            Rel rel;
            rel.sym = snm ? snm : "";
            const std::string owner =
                s.st_shndx != SHN_UNDEF && s.st_shndx < nsec ? img.secs[s.st_shndx].name : "";
            if (rel.sym.empty()) rel.sym = owner;
            if (sec.insns[at].code == (BPF_JMP | BPF_CALL)) {
                rel.kind = RelKind::Call;
                rel.target_sec = s.st_shndx;
                rel.target = static_cast<int64_t>(s.st_value / 8) + sec.insns[at].imm + 1;
            } else if (owner == ".maps" || owner == "maps") {
                rel.kind = RelKind::Map;
            } else {
                rel.kind = RelKind::Global;  // .data/.rodata/.bss/.kconfig/externs
                if (rel.sym.empty()) rel.sym = "extern";
            }
            sec.rels[at] = std::move(rel);
        }
    }
    return img;
}

// ---- 2. abstract domain -----------------------------------------------------

enum class Kind : uint8_t {
    Uninit,
    Scalar,     // unsigned interval [lo, hi]
    Top,        // anything: scalar or pointer of unknown kind
    Ctx,        // program context (xdp_md / __sk_buff) + offset interval
    Stack,      // frame pointer + offset interval (offsets are negative)
    Packet,     // ctx->data + offset interval
    PacketEnd,  // ctx->data_end
    MapValue,   // non-null result of bpf_map_lookup_elem
    MapOrNull,  // result of bpf_map_lookup_elem before the null check
    MapPtr,     // a map (ld_imm64 with a .maps relocation)
    Global,     // .data/.rodata/.bss value (already a violation)
    Pointer,    // some other pointer (data_meta, ...)
};

int64_t sat_add(int64_t a, int64_t b) {
    if (a == kNegInf || b == kNegInf) return kNegInf;
    if (a == kPosInf || b == kPosInf) return kPosInf;
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kPosInf : kNegInf;
    return r;
}

struct Val {
    Kind kind = Kind::Uninit;
    uint64_t lo = 0, hi = kTop;  // Scalar
    int64_t olo = 0, ohi = 0;    // pointers: offset interval (kNegInf/kPosInf: unbounded)
    uint32_t id = 0;             // MapOrNull: which lookup, for the null check

    static Val scalar(uint64_t l, uint64_t h) { return Val{Kind::Scalar, l, h, 0, 0, 0}; }
    static Val konst(uint64_t c) { return scalar(c, c); }
    static Val bits(int n) { return scalar(0, n >= 64 ? kTop : (1ULL << n) - 1); }
    static Val top() { return Val{Kind::Top, 0, kTop, kNegInf, kPosInf, 0}; }
    static Val ptr(Kind k, int64_t o = 0) { return Val{k, 0, kTop, o, o, 0}; }

    [[nodiscard]] bool is_ptr() const { return kind >= Kind::Ctx; }
    [[nodiscard]] bool is_const() const { return kind == Kind::Scalar && lo == hi; }
    // Unsigned upper bound usable in arithmetic: pointers and unknowns are Top.
    [[nodiscard]] uint64_t umax() const { return kind == Kind::Scalar ? hi : kTop; }
    [[nodiscard]] uint64_t umin() const { return kind == Kind::Scalar ? lo : 0; }
    bool operator==(const Val&) const = default;
};

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

// Pushes every bound that moved between `old` and `now` to infinity, so that
// loops reach a fixpoint after a few rounds.
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

struct Slot {
    int size = 0;
    Val v;
    bool operator==(const Slot&) const = default;
};

struct State {
    std::array<Val, 11> r{};
    std::map<int64_t, Slot> stack;  // by frame offset (negative)
    bool operator==(const State&) const = default;
};

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


// ---- 3. transfer function ---------------------------------------------------

int access_size(uint8_t code) {
    switch (BPF_SIZE(code)) {
        case BPF_B: return 1;
        case BPF_H: return 2;
        case BPF_W: return 4;
        default: return 8;
    }
}

uint64_t smear(uint64_t x) {
    for (int s = 1; s < 64; s <<= 1) x |= x >> s;
    return x;
}

// Unsigned interval arithmetic on scalars. 32-bit ALU results are always
// ≤ 2^32−1 (the upper half is zeroed); 64-bit overflow gives [0, 2^64−1].
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

// Narrows scalar v under "v OP c" being `truth`; nullopt: that edge is dead.
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

uint8_t mirror(uint8_t op) {
    switch (op) {
        case BPF_JGT: return BPF_JLT;
        case BPF_JLT: return BPF_JGT;
        case BPF_JGE: return BPF_JLE;
        case BPF_JLE: return BPF_JGE;
        default: return op;
    }
}

// Collects violations of one program, deduplicated per (program, insn, rule).
struct Sink {
    std::vector<Violation>* out = nullptr;
    std::set<std::tuple<std::string, int, std::string, std::string>> seen;

    // `subject` separates object-level findings (one per map) in the key.
    void add(const std::string& program, int insn, std::string rule, std::string message,
             std::string hint, bool unprovable = false, const std::string& subject = {}) {
        if (!seen.emplace(program, insn, rule, subject).second) return;
        out->push_back(Violation{program, insn, std::move(rule), std::move(message),
                                 std::move(hint), unprovable});
    }
};

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

struct Succ {
    size_t to;
    State st;
};

// Walks one function (a program or a BPF-to-BPF subprogram) of one section.
class Walker {
  public:
    Walker(const Section& sec, size_t start, size_t count, bpf_prog_type type, bool is_main,
           std::string program)
        : sec_(sec), start_(start), n_(count), type_(type), main_(is_main),
          prog_(std::move(program)) {}

    std::vector<std::pair<size_t, int64_t>> callees;  // (section, insn) of BPF-to-BPF calls

    // Runs to a fixpoint, then replays every reachable instruction once with
    // its final input state and reports what breaks the rules.
    void run(Sink& sink);

  private:
    const Section& sec_;
    size_t start_, n_;
    bpf_prog_type type_;
    bool main_;
    std::string prog_;
    Sink* sink_ = nullptr;  // null during the fixpoint iterations

    [[nodiscard]] const Insn& at(size_t i) const { return sec_.insns[start_ + i]; }
    [[nodiscard]] bool xdp() const { return type_ == BPF_PROG_TYPE_XDP; }
    [[nodiscard]] bool cls() const { return type_ == BPF_PROG_TYPE_SCHED_CLS; }

    void report(size_t i, const char* rule, std::string msg, std::string hint,
                bool unprovable = false) {
        if (sink_) sink_->add(prog_, static_cast<int>(i), rule, std::move(msg), std::move(hint), unprovable);
    }

    void step(size_t i, const State& in, std::vector<Succ>& out);
    void alu(size_t i, const Insn& in, State& s);
    Val load(size_t i, State& s, const Val& base, int16_t off, int size);
    void store(size_t i, State& s, const Val& base, int16_t off, int size, const Val& v);
    bool stack_addr(size_t i, const Val& base, int16_t off, int size, int64_t& addr);
    void helper(size_t i, const Insn& in, State& s);
    void jump(size_t i, const Insn& in, const State& s, std::vector<Succ>& out);
    void check_exit(size_t i, const State& s);
};

// ---- memory -------------------------------------------------------------

bool Walker::stack_addr(size_t i, const Val& base, int16_t off, int size, int64_t& addr) {
    if (base.olo != base.ohi) {
        report(i, "stack-variable-offset",
               "stack access at a variable offset (fp" + signed_str(sat_add(base.olo, off)) + " .. fp" +
                   signed_str(sat_add(base.ohi, off)) + ")",
               "the NFP JIT needs constant stack offsets: index with constants (unroll the "
               "loop) or keep the array in the packet or a map value");
        return false;
    }
    addr = base.olo + off;
    if (addr < -kStackMax || addr + size > 0) {
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
        case Kind::Ctx: {
            if (!xdp() && !cls()) return loaded;
            if (base.olo != base.ohi) {
                report(i, "ctx-field", "context read at a variable offset",
                       "read ctx->data and ctx->data_end only, at constant offsets");
                return loaded;
            }
            const int64_t f = base.olo + off;
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
        case Kind::MapValue:
        case Kind::MapOrNull:
            if (base.olo != base.ohi)
                report(i, "map-variable-offset", "map value read at a variable offset",
                       "the NFP verifier needs constant offsets into map values: index "
                       "with constants or split the value", base.ohi == kPosInf);
            return loaded;
        case Kind::Packet:
            if (base.ohi == kPosInf) {
                report(i, "packet-offset", "packet access at an offset that cannot be bounded",
                       "bound the offset with a constant check (e.g. `if (off > 1800) goto drop`) "
                       "before using it; the NFP reads at most 1888 B into the packet",
                       true);
            } else if (base.olo + off + size > kPacketMax) {
                report(i, "packet-offset",
                       "packet access up to byte " + std::to_string(base.olo + off + size) +
                           " > 1888",
                       "keep every packet access within the first 1888 B");
            } else if (base.ohi + off + size > kPacketMax) {
                report(i, "packet-offset",
                       "cannot prove packet access ≤ 1888 B (offset " + std::to_string(base.olo + off) +
                           ".." + std::to_string(base.ohi + off) + ")",
                       "bound the variable part of the offset with a constant check before the "
                       "access; the NFP reads at most 1888 B into the packet",
                       true);
            }
            return loaded;
        default: return loaded;
    }
}

void Walker::store(size_t i, State& s, const Val& base, int16_t off, int size, const Val& v) {
    switch (base.kind) {
        case Kind::Stack: {
            int64_t a = 0;
            if (!stack_addr(i, base, off, size, a)) {
                if (base.olo != base.ohi) s.stack.clear();  // might have hit anything
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
            (void)load(i, s, base, off, size);  // same offset limit as reads
            return;
        default: return;
    }
}

// ---- ALU ----------------------------------------------------------------

void Walker::alu(size_t i, const Insn& in, State& s) {
    const bool is64 = BPF_CLASS(in.code) == BPF_ALU64;
    const uint8_t op = BPF_OP(in.code);
    const bool use_imm = BPF_SRC(in.code) == BPF_K;
    Val& d = s.r[in.dst];
    const Val src = use_imm ? Val::konst(is64 ? static_cast<uint64_t>(static_cast<int64_t>(in.imm))
                                               : static_cast<uint32_t>(in.imm))
                            : s.r[in.src];

    if (op == BPF_END) {
        if (is64) {
            report(i, "bswap", "unconditional byte swap (BPF_ALU64|BPF_END, -mcpu=v4) is not supported",
                   "build with -mcpu=v3 and use bpf_htons/bpf_htonl");
        } else if (!use_imm && in.imm != 16 && in.imm != 32 && in.imm != 64) {
            report(i, "bswap", "byte swap of width " + std::to_string(in.imm), "use 16, 32 or 64");
        } else if (use_imm) {  // BPF_TO_LE: the NFP JIT only implements to-big-endian
            report(i, "bswap", "to-little-endian conversion (le" + std::to_string(in.imm) +
                                   ") is not implemented by the NFP JIT",
                   "mask with 0xffff/0xffffffff instead of bpf_cpu_to_le*");
        }
        d = in.imm >= 64 ? Val::scalar(0, kTop) : Val::bits(in.imm);
        return;
    }
    if (in.off != 0) {
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
        d = Val::scalar(0, is64 ? kTop : kU32Max);
        return;
    }
    if (op == BPF_MOD) {
        report(i, "opcode-mod", std::string(is64 ? "64" : "32") + "-bit modulo: the NFP has no BPF_MOD",
               "replace `x % n` with `x & (n - 1)` for powers of two, or x - (x / n) * n with "
               "n constant");
    }
    if (op == BPF_DIV) {
        if (use_imm) {
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
    if (op == BPF_MUL) {
        // The NFP multiplies 32x32 bits; the kernel checks the 64-bit bounds
        // of both registers, for ALU32 as well as ALU64.
        if (d.umax() > kU32Max)
            report(i, "mul-operand-range", "cannot prove ≤ 2^32−1: multiplier r" +
                                               std::to_string(in.dst) + " is " + range_str(d),
                   "make both operands provably 32-bit: load them as __u32, mask with "
                   "0xffffffff or compare against a constant before multiplying", true);
        if (!use_imm && src.umax() > kU32Max)
            report(i, "mul-operand-range", "cannot prove ≤ 2^32−1: multiplicand r" +
                                               std::to_string(in.src) + " is " + range_str(src),
                   "make both operands provably 32-bit: load them as __u32, mask with "
                   "0xffffffff or compare against a constant before multiplying", true);
        if (use_imm && is64 && in.imm < 0)
            report(i, "mul-operand-range", "multiplication by a negative (sign-extended) constant",
                   "multiply by a positive constant");
    }

    // Pointer arithmetic: pointer ± scalar keeps the pointer, moves the offset.
    if (is64 && (op == BPF_ADD || op == BPF_SUB) && (d.is_ptr() || (op == BPF_ADD && src.is_ptr()))) {
        Val p = d.is_ptr() ? d : src;
        const Val k = d.is_ptr() ? src : d;
        if (k.is_ptr()) {  // pointer - pointer is a scalar, pointer + pointer is junk
            d = op == BPF_SUB ? Val::scalar(0, kTop) : Val::top();
            return;
        }
        {
            int64_t lo = kNegInf, hi = kPosInf;
            if (use_imm) {
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
            d = p;
            return;
        }
    }
    if (op == BPF_MOV) {
        if (is64) d = src;
        else d = src.kind == Kind::Scalar ? alu_scalar(BPF_MOV, d, src, false) : Val::bits(32);
        return;
    }
    d = alu_scalar(op, d, src, is64);
}

// ---- helpers, jumps, exit ---------------------------------------------------

// Is the low 32-bit half of v provably a signed value ≤ 0 (int offset args)?
bool provably_nonpositive32(const Val& v) {
    if (v.kind != Kind::Scalar) return false;
    if (v.is_const()) return static_cast<int32_t>(static_cast<uint32_t>(v.lo)) <= 0;
    if ((v.lo >> 32) != (v.hi >> 32) || v.hi - v.lo > kU32Max) return false;
    return (v.lo & 0x80000000ULL) && (v.hi & 0x80000000ULL);
}

void Walker::helper(size_t i, const Insn& in, State& s) {
    const int32_t id = in.imm;
    const std::string name = helper_name(id);
    Val r0 = Val::scalar(0, kTop);
    // Map helpers take keys (and update values) on the stack, at a constant,
    // 4-byte aligned offset (nfp verifier: nfp_bpf_stack_arg_ok).
    auto stack_arg = [&](int reg) {
        const Val& a = s.r[reg];
        std::string why;
        if (a.kind != Kind::Stack) why = "is not a stack pointer";
        else if (a.olo != a.ohi) why = "is a stack pointer at a variable offset";
        else if ((-a.olo) % 4 != 0) why = "is a stack pointer not aligned to 4 B (fp" + signed_str(a.olo) + ")";
        if (!why.empty())
            report(i, "helper-arg", name + ": argument r" + std::to_string(reg) + " " + why,
                   "copy the key/value into a 4-byte aligned local variable and pass its address",
                   a.kind == Kind::Top);
    };
    if (id == BPF_FUNC_map_lookup_elem || id == BPF_FUNC_map_update_elem ||
        id == BPF_FUNC_map_delete_elem)
        stack_arg(2);
    if (id == BPF_FUNC_map_update_elem) stack_arg(3);
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
    for (int r = 1; r <= 5; ++r) s.r[r] = Val{};
    s.r[0] = r0;
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

// ---- one instruction ----------------------------------------------------

void Walker::step(size_t i, const State& in_state, std::vector<Succ>& out) {
    const Insn& in = at(i);
    State s = in_state;
    const uint8_t cls_ = BPF_CLASS(in.code);
    const uint8_t mode = BPF_MODE(in.code);
    switch (cls_) {
        case BPF_ALU:
        case BPF_ALU64:
            alu(i, in, s);
            break;
        case BPF_LD: {
            if (in.code == (BPF_LD | BPF_IMM | BPF_DW)) {
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
                out.push_back({i + 2, std::move(s)});
                return;
            }
            if (mode == BPF_ABS || mode == BPF_IND) {  // legacy packet loads
                const int size = access_size(in.code);
                const Val& x = s.r[in.src];
                const uint64_t hi = mode == BPF_ABS ? 0 : x.umax();
                if (hi > static_cast<uint64_t>(kPacketMax) ||
                    static_cast<int64_t>(hi) + in.imm + size > kPacketMax)
                    report(i, "packet-offset", "legacy packet load beyond 1888 B or unbounded",
                           "keep packet accesses within the first 1888 B", hi == kTop);
                for (int r = 1; r <= 5; ++r) s.r[r] = Val{};
                s.r[0] = Val::bits(8 * size);
                break;
            }
            report(i, "opcode", "unsupported BPF_LD form (opcode " + std::to_string(in.code) + ")", "");
            break;
        }
        case BPF_LDX: {
            const int size = access_size(in.code);
            if (mode == BPF_MEMSX) {
                report(i, "sign-extend", "sign-extending load (ldsx, -mcpu=v4)",
                       "build with -mcpu=v3 and use unsigned types");
                s.r[in.dst] = Val::scalar(0, kTop);
                break;
            }
            if (mode != BPF_MEM) {
                report(i, "opcode", "unsupported load mode", "build with -mcpu=v3");
                s.r[in.dst] = Val::scalar(0, kTop);
                break;
            }
            const Val base = s.r[in.src];
            s.r[in.dst] = load(i, s, base, in.off, size);
            break;
        }
        case BPF_ST:
            report(i, "st-imm", "store of an immediate (BPF_ST) is not allowed here",
                   "store from a register: keep the constant in a variable the compiler cannot "
                   "fold, or build the value in a register first");
            store(i, s, s.r[in.dst], in.off, access_size(in.code),
                  Val::konst(static_cast<uint64_t>(static_cast<int64_t>(in.imm))));
            break;
        case BPF_STX: {
            const int size = access_size(in.code);
            if (mode == BPF_ATOMIC) {
                const Val& base = s.r[in.dst];
                if (in.imm != BPF_ADD) {
                    const bool fetch = (in.imm & BPF_FETCH) != 0;
                    report(i, "atomic",
                           std::string("atomic operation ") + (fetch ? "with BPF_FETCH " : "") +
                               "(imm " + std::to_string(in.imm) + "): the NFP only has atomic add without fetch",
                           "use __sync_fetch_and_add without using its result (or "
                           "__atomic_add_fetch ignored); no xchg/cmpxchg/and/or/xor");
                    if (fetch) s.r[in.imm == BPF_CMPXCHG ? 0 : in.src] = Val::bits(8 * size);
                } else if (base.kind != Kind::MapValue && base.kind != Kind::MapOrNull) {
                    report(i, "atomic", "atomic add not to a map value",
                           "atomic adds are offloaded only on values returned by bpf_map_lookup_elem",
                           base.kind == Kind::Top);
                }
                break;
            }
            if (mode != BPF_MEM) {
                report(i, "opcode", "unsupported store mode", "build with -mcpu=v3");
                break;
            }
            store(i, s, s.r[in.dst], in.off, size, s.r[in.src]);
            break;
        }
        case BPF_JMP:
        case BPF_JMP32: {
            const uint8_t op = BPF_OP(in.code);
            if (cls_ == BPF_JMP && op == BPF_EXIT) {
                check_exit(i, s);
                return;
            }
            if (cls_ == BPF_JMP && op == BPF_CALL) {
                if (in.src == BPF_PSEUDO_CALL) {
                    auto rel = sec_.rels.find(start_ + i);
                    if (rel != sec_.rels.end() && rel->second.kind == RelKind::Call)
                        callees.emplace_back(rel->second.target_sec, rel->second.target);
                    else
                        callees.emplace_back(static_cast<size_t>(-1),
                                             static_cast<int64_t>(start_ + i) + in.imm + 1);
                    for (int r = 1; r <= 5; ++r) s.r[r] = Val{};
                    s.r[0] = Val::scalar(0, kTop);
                } else if (in.src == BPF_PSEUDO_KFUNC_CALL) {
                    report(i, "helper", "kfunc calls are not supported by the NFP", "");
                    for (int r = 0; r <= 5; ++r) s.r[r] = Val::scalar(0, kTop);
                } else {
                    helper(i, in, s);
                }
                break;
            }
            jump(i, in, s, out);
            return;
        }
        default:
            report(i, "opcode", "unknown instruction class", "");
            break;
    }
    out.push_back({i + 1, std::move(s)});
}

// ---- fixpoint -------------------------------------------------------------

void Walker::run(Sink& sink) {
    if (n_ == 0) return;
    State entry;
    for (auto& v : entry.r) v = Val{};
    if (main_) {
        entry.r[1] = Val::ptr(Kind::Ctx);
    } else {
        for (int r = 1; r <= 5; ++r) entry.r[r] = Val::top();
    }
    entry.r[10] = Val::ptr(Kind::Stack);

    // Static successors, for finding the loops.
    std::vector<std::vector<size_t>> succ(n_);
    for (size_t i = 0; i < n_; ++i) {
        const Insn& x = at(i);
        const uint8_t c = BPF_CLASS(x.code);
        const uint8_t op = BPF_OP(x.code);
        auto add = [&](int64_t to) {
            if (to >= 0 && to < static_cast<int64_t>(n_)) succ[i].push_back(static_cast<size_t>(to));
        };
        const auto si = static_cast<int64_t>(i);
        if (x.code == (BPF_LD | BPF_IMM | BPF_DW)) {
            add(si + 2);
        } else if ((c == BPF_JMP || c == BPF_JMP32) && op != BPF_CALL) {
            if (c == BPF_JMP && op == BPF_EXIT) continue;
            add(si + 1 + ((c == BPF_JMP32 && op == BPF_JA) ? x.imm : x.off));
            if (op != BPF_JA) add(si + 1);
        } else {
            add(si + 1);
        }
    }
    // Back edges of a DFS over the CFG close the (bounded) loops.
    std::set<std::pair<size_t, size_t>> back;
    {
        std::vector<uint8_t> color(n_, 0);  // 0 new, 1 on the DFS stack, 2 done
        std::vector<std::pair<size_t, size_t>> dfs{{0, 0}};
        color[0] = 1;
        while (!dfs.empty()) {
            auto& [v, k] = dfs.back();
            if (k < succ[v].size()) {
                const size_t w = succ[v][k++];
                if (color[w] == 1) {
                    back.emplace(v, w);
                } else if (color[w] == 0) {
                    color[w] = 1;
                    dfs.emplace_back(w, 0);
                }
            } else {
                color[v] = 2;
                dfs.pop_back();
            }
        }
    }

    // States are kept per (instruction, context), the context being the
    // number of back edges taken so far, up to kUnroll: bounded loops (a MAC
    // swap `for (i = 0; i != 6; i += 2)`) are thus walked iteration by
    // iteration, as the kernel verifier does, and stay exact. Past kUnroll
    // iterations states join, and widen at loop heads after a few rounds.
    constexpr unsigned kUnroll = 64;
    using Key = std::pair<size_t, unsigned>;
    std::vector<std::map<unsigned, State>> in(n_);
    std::map<Key, unsigned> visits;
    std::set<Key> queued;
    std::deque<Key> work;
    in[0].emplace(0, entry);
    work.emplace_back(0, 0);
    queued.emplace(0, 0);
    std::vector<Succ> out;
    size_t budget = 400000;
    bool gave_up = false;
    while (!work.empty()) {
        const Key key = work.front();
        work.pop_front();
        queued.erase(key);
        if (budget-- == 0) {
            gave_up = true;
            break;
        }
        const auto [i, ctx] = key;
        out.clear();
        step(i, in[i].at(ctx), out);
        for (auto& sc : out) {
            if (sc.to >= n_) continue;  // reported in the final pass
            const unsigned nctx = back.count({i, sc.to}) ? std::min(ctx + 1, kUnroll) : ctx;
            auto [it, fresh] = in[sc.to].try_emplace(nctx, sc.st);
            if (!fresh) {
                const bool widening = nctx == kUnroll && ++visits[{sc.to, nctx}] > 3;
                State j = join(it->second, sc.st, widening);
                if (j == it->second) continue;
                it->second = std::move(j);
            }
            if (queued.emplace(sc.to, nctx).second) work.emplace_back(sc.to, nctx);
        }
    }
    sink_ = &sink;
    callees.clear();
    if (gave_up)
        report(0, "cannot-prove-analysis", "the analysis did not converge",
               "simplify the control flow (unroll fewer loops)", true);
    for (size_t i = 0; i < n_; ++i) {
        for (const auto& [ctx, st] : in[i]) {
            out.clear();
            step(i, st, out);
            for (const auto& sc : out)
                if (sc.to >= n_)
                    report(i, "cannot-prove-cfg", "jump or fall-through leaves the function",
                           "", true);
        }
    }
    sink_ = nullptr;
}

// ---- 4. NFP cost model --------------------------------------------------
//
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
constexpr size_t kProgramOverhead = 30;

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
            if (in.code == (BPF_LD | BPF_IMM | BPF_DW))
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

// ---- map rules ----------------------------------------------------------

void check_maps(bpf_object* obj, Sink& sink) {
    bpf_map* m = nullptr;
    bpf_object__for_each_map(m, obj) {
        const std::string name = bpf_map__name(m);
        if (bpf_map__is_internal(m)) {
            sink.add("", -1, "global-data",
                     "map '" + name + "' holds global variables (.data/.rodata/.bss/.kconfig)",
                     "the NFP has no global data: use #define constants or a one-entry ARRAY map",
                     false, name);
            continue;
        }
        const auto type = bpf_map__type(m);
        if (type != BPF_MAP_TYPE_ARRAY && type != BPF_MAP_TYPE_HASH) {
            const char* tn = libbpf_bpf_map_type_str(type);
            sink.add("", -1, "map-type",
                     "map '" + name + "' is a " + (tn ? tn : "unknown") +
                         " map; the NFP offloads only array and hash maps",
                     "use BPF_MAP_TYPE_ARRAY or BPF_MAP_TYPE_HASH (no per-CPU, LRU, LPM, "
                     "ring buffer or XSK maps)",
                     false, name);
        }
        if (const uint32_t fl = bpf_map__map_flags(m); fl != 0) {
            sink.add("", -1, "map-flags",
                     "map '" + name + "' has map_flags 0x" + [&] {
                         char b[16];
                         std::snprintf(b, sizeof b, "%x", fl);
                         return std::string(b);
                     }() + "; the NFP needs 0",
                     "drop BPF_F_NO_PREALLOC/BPF_F_RDONLY_PROG/... from the map definition",
                     false, name);
        }
        const uint32_t k = bpf_map__key_size(m);
        const uint32_t v = bpf_map__value_size(m);
        const uint32_t entry = ((k + 7) & ~7U) + ((v + 7) & ~7U);
        if (k > kMapKeyMax || v > kMapValueMax || entry > kMapEntryMax) {
            sink.add("", -1, "map-size",
                     "map '" + name + "' has key " + std::to_string(k) + " B, value " +
                         std::to_string(v) + " B (8-rounded sum " + std::to_string(entry) +
                         " B); the NFP allows ≤ 56 B each and ≤ 64 B together",
                     "shrink the key/value or split the value over several maps", false, name);
        }
    }
}

}  // namespace

// ---- 5. entry points ------------------------------------------------------

Result<Report> check_object(const std::string& path, size_t nfp_limit) {
    auto img = read_image(path);
    if (!img) return img.error();

    errno = 0;
    bpf_object* raw = bpf_object__open_file(path.c_str(), nullptr);
    if (!raw) {
        const int err = errno ? errno : EINVAL;
        return make_error(ErrorKind::Bpf, err, path, "libbpf open", {},
                          "is this a BPF object built by clang -target bpf?");
    }
    std::unique_ptr<bpf_object, void (*)(bpf_object*)> obj(raw, bpf_object__close);

    Report rep;
    rep.object = path;
    rep.nfp_limit = nfp_limit;
    Sink sink;
    sink.out = &rep.violations;
    check_maps(obj.get(), sink);

    const Image& im = *img;
    auto find_func = [&](size_t sec, int64_t at) -> std::optional<Func> {
        if (sec >= im.secs.size() || at < 0) return std::nullopt;
        const auto idx = static_cast<size_t>(at);
        size_t end = im.secs[sec].insns.size();
        for (const Func& f : im.funcs) {
            if (f.sec != sec) continue;
            if (f.start == idx) return f.count ? f : Func{f.name, sec, idx, end - idx};
            if (f.start > idx) end = std::min(end, f.start);
        }
        if (idx >= im.secs[sec].insns.size()) return std::nullopt;
        return Func{"subprog@" + im.secs[sec].name + "+" + std::to_string(idx), sec, idx, end - idx};
    };

    bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, obj.get()) {
        const std::string name = bpf_program__name(prog);
        const std::string section = bpf_program__section_name(prog);
        const bpf_prog_type type = bpf_program__type(prog);
        ProgramEstimate est{name, section, 0, kProgramOverhead};
        if (type != BPF_PROG_TYPE_XDP && type != BPF_PROG_TYPE_SCHED_CLS) {
            const char* tn = libbpf_bpf_prog_type_str(type);
            sink.add(name, -1, "prog-type",
                     std::string("program type ") + (tn ? tn : "unknown") + " (section '" +
                         section + "') cannot be offloaded",
                     "the NFP offloads only XDP (SEC(\"xdp\")) and TC classifier "
                     "(SEC(\"tc\")) programs");
        }
        const Func* mainf = nullptr;
        for (const Func& f : im.funcs)
            if (f.name == name && im.secs[f.sec].name == section) mainf = &f;
        if (!mainf) {
            sink.add(name, -1, "cannot-prove-elf", "program code not found in the ELF symbols",
                     "rebuild the object with clang -g -O2 -target bpf", true);
            rep.programs.push_back(est);
            continue;
        }
        std::set<std::pair<size_t, size_t>> done{{mainf->sec, mainf->start}};
        std::deque<std::tuple<Func, bool, std::string>> todo{{*mainf, true, name}};
        while (!todo.empty()) {
            auto [f, is_main, label] = todo.front();
            todo.pop_front();
            const Section& sec = im.secs[f.sec];
            const size_t count = std::min(f.count, sec.insns.size() - std::min(f.start, sec.insns.size()));
            est.bpf_insns += count;
            for (size_t i = 0; i < count; ++i) {
                const Insn* next = i + 1 < count ? &sec.insns[f.start + i + 1] : nullptr;
                if (i > 0 && sec.insns[f.start + i - 1].code == (BPF_LD | BPF_IMM | BPF_DW)) continue;
                est.nfp_insns += insn_cost(sec.insns[f.start + i], next);
            }
            Walker w(sec, f.start, count, type, is_main, label);
            w.run(sink);
            for (auto [csec, cat] : w.callees) {
                const size_t s2 = csec == static_cast<size_t>(-1) ? f.sec : csec;
                auto cf = find_func(s2, cat);
                if (!cf) {
                    sink.add(label, -1, "cannot-prove-call", "BPF-to-BPF call target not found",
                             "mark helper functions static __always_inline", true);
                    continue;
                }
                if (done.emplace(cf->sec, cf->start).second)
                    todo.emplace_back(*cf, false, name + "/" + cf->name);
            }
        }
        if (est.nfp_insns > nfp_limit) {
            sink.add(name, -1, "insn-budget",
                     "about " + std::to_string(est.nfp_insns) + " NFP instructions (estimate) > limit " +
                         std::to_string(nfp_limit),
                     "unroll less, share code paths, or move work to user space");
        }
        rep.programs.push_back(est);
    }
    return rep;
}

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
