// Internal declarations of the NFP offload checker; nfp_check.hpp is the
// public contract, SPEC §6 the rules. The checker's outline, one file each:
//   elf_image.cpp     1. ELF reading: executable sections, function symbols,
//                        relocations.
//   value_domain.cpp  2. The abstract domain: Val (scalar interval or pointer
//                        + offset interval), State (11 registers + constant-
//                        offset stack slots), scalar ALU and branch refinement.
//   walker.cpp        3. The walker: dispatch on the instruction class, and
//                        the fixpoint driver per function. It reports
//                        violations through a Sink while it walks; one file
//                        per instruction class:
//     walker_alu.cpp       BPF_ALU, BPF_ALU64
//     walker_mem.cpp       BPF_LD, BPF_LDX, BPF_ST, BPF_STX
//     walker_jmp.cpp       BPF_JMP, BPF_JMP32: branches and exit
//     walker_call.cpp      BPF_CALL: helpers, BPF-to-BPF calls, kfuncs
//   cost_model.cpp    4. The NFP instruction estimate.
//   map_rules.cpp        The rules on map definitions.
//   nfp_check.cpp     5. check_object(): the programs, their subprograms.
//   report.cpp           print_report().
#pragma once

#include <linux/bpf.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "nfp/nfp_check.hpp"

struct bpf_object;

namespace etcpipe::nfp::checker {

// ---- limits of the NFP and its public firmware (SPEC §6) -------------------
inline constexpr uint64_t kU32Max = 0xffffffffULL;
inline constexpr uint64_t kTop = std::numeric_limits<uint64_t>::max();
inline constexpr int64_t kNegInf = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kPosInf = std::numeric_limits<int64_t>::max();
inline constexpr int64_t kStackMax = 512;
inline constexpr int64_t kPacketMax = 1888;
inline constexpr uint32_t kMapKeyMax = 56;
inline constexpr uint32_t kMapValueMax = 56;
inline constexpr uint32_t kMapEntryMax = 64;

// ---- 1. ELF reading (elf_image.cpp) ------------------------------------------

struct Insn {
    uint8_t code = 0;
    uint8_t dst = 0;
    uint8_t src = 0;
    int16_t off = 0;
    int32_t imm = 0;
};

// The first half of a 16-byte ld_imm64; the second half is no instruction.
inline constexpr uint8_t kLdImm64 = BPF_LD | BPF_IMM | BPF_DW;

// Bytes moved by a load or store.
[[nodiscard]] inline int access_size(uint8_t code) {
    switch (BPF_SIZE(code)) {
        case BPF_B: return 1;
        case BPF_H: return 2;
        case BPF_W: return 4;
        default: return 8;
    }
}

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
    // What could not be read as it should (a truncated or misaligned code
    // section, a function past its section, a relocation to no instruction or
    // no symbol, ...): each one becomes a "cannot-prove-elf" violation, so an
    // object the checker could not read in full is never offloadable.
    std::vector<std::string> defects;
};

// Data error when `bytes` are not a 64-bit little-endian BPF ELF with a symbol
// table, or its .BTF is corrupt; `name` names the object in messages.
[[nodiscard]] Result<Image> read_image(std::span<const uint8_t> bytes, const std::string& name);

// What makes a .BTF section unsafe to hand to libbpf (btf_check.cpp): a type,
// member, parameter or variable id past the last type, a name past the string
// section, an unknown kind, a typedef/modifier/array loop; nullopt when none.
[[nodiscard]] std::optional<std::string> btf_defect(std::span<const uint8_t> btf);

// ---- 2. abstract domain (value_domain.cpp) -----------------------------------

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

// a + b, where kNegInf/kPosInf stand for unbounded and overflow saturates.
[[nodiscard]] int64_t sat_add(int64_t a, int64_t b);

struct Val {
    Kind kind = Kind::Uninit;
    uint64_t lo = 0, hi = kTop;  // Scalar
    int64_t olo = 0, ohi = 0;    // pointers: offset interval (kNegInf/kPosInf: unbounded)
    uint32_t id = 0;             // MapOrNull: which lookup, for the null check

    static Val scalar(uint64_t l, uint64_t h) { return Val{Kind::Scalar, l, h, 0, 0, 0}; }
    static Val konst(uint64_t c) { return scalar(c, c); }
    static Val bits(int n) { return scalar(0, n >= 64 ? kTop : n <= 0 ? 0 : (1ULL << n) - 1); }
    static Val top() { return Val{Kind::Top, 0, kTop, kNegInf, kPosInf, 0}; }
    static Val ptr(Kind k, int64_t o = 0) { return Val{k, 0, kTop, o, o, 0}; }

    [[nodiscard]] bool is_ptr() const { return kind >= Kind::Ctx; }
    [[nodiscard]] bool is_const() const { return kind == Kind::Scalar && lo == hi; }
    // Unsigned upper bound usable in arithmetic: pointers and unknowns are Top.
    [[nodiscard]] uint64_t umax() const { return kind == Kind::Scalar ? hi : kTop; }
    [[nodiscard]] uint64_t umin() const { return kind == Kind::Scalar ? lo : 0; }
    bool operator==(const Val&) const = default;
};

[[nodiscard]] Val join(const Val& a, const Val& b);
// Pushes every bound that moved between `old` and `now` to infinity, so that
// loops reach a fixpoint after a few rounds.
[[nodiscard]] Val widen(const Val& old, const Val& now);

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

// Keeps the stack slots both states have with the same size.
[[nodiscard]] State join(const State& a, const State& b, bool widening);

// A call (and a legacy packet load, which is one) leaves r1-r5 unreadable.
inline void clobber_args(State& s) {
    for (int r = 1; r <= 5; ++r) s.r[r] = Val{};
}

// Unsigned interval arithmetic on scalars. 32-bit ALU results are always
// ≤ 2^32−1 (the upper half is zeroed); 64-bit overflow gives [0, 2^64−1].
[[nodiscard]] Val alu_scalar(uint8_t op, const Val& dv, const Val& sv, bool is64);

// Narrows scalar v under "v OP c" being `truth`; nullopt: that edge is dead.
[[nodiscard]] std::optional<Val> refine(const Val& v, uint8_t op, uint64_t c, bool truth);

// How values read in messages: "+8" / "-16", and "[lo, hi]" / "unbounded" / "unknown".
[[nodiscard]] std::string signed_str(int64_t v);
[[nodiscard]] std::string range_str(const Val& v);

// ---- 3. the walker (walker*.cpp) ---------------------------------------------

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
    // Input states per instruction, by loop context (see fixpoint()).
    using StatesByContext = std::vector<std::map<unsigned, State>>;
    using Edges = std::set<std::pair<size_t, size_t>>;
    struct Cfg {
        Edges back;                    // back edges of a DFS from instruction 0
        std::vector<uint8_t> reached;  // statically reachable from instruction 0
        std::vector<uint8_t> exits;    // statically reaches an exit
        std::vector<size_t> leaves;    // instructions with a jump or fall-through out of range
    };

    const Section& sec_;
    size_t start_, n_;
    std::vector<uint8_t> imm_tail_;  // second halves of ld_imm64: no instruction
    bool exit_walked_ = false;       // the replay walked an exit
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

    // walker.cpp: decoding checks, dispatch and fixpoint. The class walkers
    // index s.r[in.dst] and s.r[in.src] freely: step() runs them only on
    // instructions decodable() accepted (registers r0-r10, r10 never written,
    // an ld_imm64 with its second half).
    [[nodiscard]] bool decodable(size_t i, const Insn& in);
    void step(size_t i, const State& in, std::vector<Succ>& out);
    [[nodiscard]] State entry_state() const;
    [[nodiscard]] Cfg cfg() const;
    bool fixpoint(const Edges& back, StatesByContext& in);  // false: gave up
    void replay(const StatesByContext& in);
    void report_cfg(const Cfg& g);

    // walker_alu.cpp
    void alu(size_t i, const Insn& in, State& s);
    void byte_swap(size_t i, const Insn& in, Val& d);
    void alu_with_offset(size_t i, const Insn& in, Val& d);
    void check_div(size_t i, const Insn& in, const Val& d, const Val& src);
    void check_mul(size_t i, const Insn& in, const Val& d, const Val& src);

    // walker_mem.cpp
    void ld_imm64(size_t i, const Insn& in, State& s);
    void ld_packet(size_t i, const Insn& in, State& s);
    void ldx(size_t i, const Insn& in, State& s);
    void st(size_t i, const Insn& in, State& s);
    void stx(size_t i, const Insn& in, State& s);
    void atomic(size_t i, const Insn& in, State& s);
    Val load(size_t i, State& s, const Val& base, int16_t off, int size);
    Val load_ctx(size_t i, const Val& base, int16_t off, const Val& loaded);
    void check_packet_access(size_t i, const Val& base, int16_t off, int size);
    void store(size_t i, State& s, const Val& base, int16_t off, int size, const Val& v);
    bool stack_addr(size_t i, const Val& base, int16_t off, int size, int64_t& addr);

    // walker_jmp.cpp
    void jump(size_t i, const Insn& in, const State& s, std::vector<Succ>& out);
    void check_exit(size_t i, const State& s);

    // walker_call.cpp
    void call(size_t i, const Insn& in, State& s);
    void helper(size_t i, const Insn& in, State& s);
    void check_stack_arg(size_t i, const std::string& name, const State& s, int reg);
};

// ---- 4. NFP cost model (cost_model.cpp) and map rules (map_rules.cpp) --------

// Prologue and XDP/TC outro, once per program.
inline constexpr size_t kProgramOverhead = 30;

// Estimated NFP instructions of `count` BPF instructions of `sec` from `start`.
[[nodiscard]] size_t nfp_cost(const Section& sec, size_t start, size_t count);

void check_maps(bpf_object* obj, Sink& sink);

}  // namespace etcpipe::nfp::checker
