// NFP checker, 3. the walker: one instruction is dispatched on its class to
// walker_{alu,mem,jmp,call}.cpp; a function is walked to a fixpoint, then
// replayed once to report.
#include <algorithm>
#include <deque>
#include <string>

#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp::checker {

// ---- decoding ----------------------------------------------------------------

namespace {

constexpr const char* kLeaves =
    "every jump must land inside its function and the last instruction must be an exit or a "
    "goto: the object is corrupt or hand-written";

bool writes_dst(const Insn& in) {
    const uint8_t c = BPF_CLASS(in.code);
    return c == BPF_ALU || c == BPF_ALU64 || c == BPF_LDX || in.code == kLdImm64;
}

bool known_alu_op(uint8_t op) { return op <= BPF_END; }  // ADD (0x00) .. END (0xd0)

bool known_jmp_op(uint8_t cls, uint8_t op) {
    switch (op) {
        case BPF_CALL:
        case BPF_EXIT: return cls == BPF_JMP;
        case 0xe0:
        case 0xf0: return false;
        default: return true;  // JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE
    }
}

// Fields an instruction does not use must be zero (the kernel's "uses
// reserved fields"); a nonzero one means the bytes are not what they seem.
// What is not checked here the walker reads as it is (-mcpu=v4 offsets).
const char* reserved_field(const Insn& in) {
    const uint8_t c = BPF_CLASS(in.code);
    const uint8_t op = BPF_OP(in.code);
    const bool k = BPF_SRC(in.code) == BPF_K;
    switch (c) {
        case BPF_ALU:
        case BPF_ALU64:
            if (op == BPF_END) return in.src != 0 ? "byte swap with a source register" : nullptr;
            if (op == BPF_NEG) return in.src != 0 || in.imm != 0 || !k ? "neg with an operand" : nullptr;
            if (k && in.src != 0) return "immediate ALU operation with a source register";
            if (!k && in.imm != 0) return "register ALU operation with an immediate";
            return nullptr;
        case BPF_LD:
            if (in.code == kLdImm64) return in.off != 0 ? "ld_imm64 with an offset" : nullptr;
            if (in.dst != 0 || in.off != 0 || BPF_SIZE(in.code) == BPF_DW ||
                (BPF_MODE(in.code) == BPF_ABS && in.src != 0))
                return "legacy packet load with reserved fields set";
            return nullptr;
        case BPF_LDX: return in.imm != 0 ? "load with an immediate" : nullptr;
        case BPF_ST: return in.src != 0 ? "immediate store with a source register" : nullptr;
        case BPF_STX:
            return BPF_MODE(in.code) == BPF_MEM && in.imm != 0 ? "register store with an immediate"
                                                               : nullptr;
        default: break;  // BPF_JMP, BPF_JMP32
    }
    const bool j32 = c == BPF_JMP32;
    switch (op) {
        case BPF_EXIT:
            return !k || in.imm != 0 || in.src != 0 || in.dst != 0 || in.off != 0
                       ? "exit with operands"
                       : nullptr;
        case BPF_CALL:
            return !k || in.dst != 0 || (in.src != BPF_PSEUDO_KFUNC_CALL && in.off != 0) ||
                           (in.src != 0 && in.src != BPF_PSEUDO_CALL &&
                            in.src != BPF_PSEUDO_KFUNC_CALL)
                       ? "call with reserved fields set"
                       : nullptr;
        case BPF_JA:
            return !k || in.src != 0 || in.dst != 0 || (j32 ? in.off != 0 : in.imm != 0)
                       ? "goto with reserved fields set"
                       : nullptr;
        default:
            return (k ? in.src != 0 : in.imm != 0) ? "conditional jump with reserved fields set"
                                                   : nullptr;
    }
}

}  // namespace

// What the kernel's verifier rejects before it looks at values, and what the
// class walkers must never see: register numbers 11-15 (the encoding has four
// bits, the machine eleven registers), writes to the read-only frame pointer,
// an ld_imm64 without its second half, a jump into that second half, unknown
// opcodes, nonzero unused fields.
bool Walker::decodable(size_t i, const Insn& in) {
    static constexpr const char* kHint =
        "the object is corrupt or not produced by clang -target bpf: rebuild it";
    if (imm_tail_[i]) {
        report(i, "malformed", "jumps into the second half of an ld_imm64", kHint, true);
        return false;
    }
    if (in.dst > BPF_REG_10 || in.src > BPF_REG_10) {
        report(i, "malformed",
               "register r" + std::to_string(in.dst > BPF_REG_10 ? in.dst : in.src) +
                   " does not exist (opcode " + std::to_string(in.code) + "; BPF has r0-r10)",
               kHint, true);
        return false;
    }
    const bool fetch_into_src = BPF_CLASS(in.code) == BPF_STX && BPF_MODE(in.code) == BPF_ATOMIC &&
                                (in.imm & BPF_FETCH) && in.imm != BPF_CMPXCHG;
    if ((writes_dst(in) && in.dst == BPF_REG_10) || (fetch_into_src && in.src == BPF_REG_10)) {
        report(i, "malformed", "writes r10, the read-only frame pointer", kHint, true);
        return false;
    }
    if (in.code == kLdImm64) {
        if (i + 1 >= n_) {
            report(i, "malformed", "ld_imm64 without its second half (last instruction)", kHint,
                   true);
            return false;
        }
        const Insn& hi = at(i + 1);
        if (hi.code != 0 || hi.dst != 0 || hi.src != 0 || hi.off != 0) {
            report(i, "malformed", "ld_imm64 whose second half is not a zero-opcode pseudo instruction",
                   kHint, true);
            return false;
        }
    }
    const uint8_t c = BPF_CLASS(in.code);
    const uint8_t op = BPF_OP(in.code);
    if (((c == BPF_ALU || c == BPF_ALU64) && !known_alu_op(op)) ||
        ((c == BPF_JMP || c == BPF_JMP32) && !known_jmp_op(c, op))) {
        report(i, "malformed", "unknown opcode " + std::to_string(in.code), kHint, true);
        return false;
    }
    if ((c == BPF_ALU || c == BPF_ALU64) && BPF_SRC(in.code) == BPF_K &&
        (op == BPF_LSH || op == BPF_RSH || op == BPF_ARSH) &&
        (in.imm < 0 || in.imm >= (c == BPF_ALU64 ? 64 : 32))) {
        report(i, "malformed", "shift by " + std::to_string(in.imm) + " (the kernel's \"invalid shift\")",
               kHint, true);
        return false;
    }
    if (const char* why = reserved_field(in)) {
        report(i, "malformed", std::string(why) + " (opcode " + std::to_string(in.code) + ")", kHint,
               true);
        return false;
    }
    return true;
}

// ---- dispatch -------------------------------------------------------------------

void Walker::step(size_t i, const State& in_state, std::vector<Succ>& out) {
    const Insn& in = at(i);
    if (!decodable(i, in)) return;  // no successor: the walk stops here, reported
    State s = in_state;
    const uint8_t cls_ = BPF_CLASS(in.code);
    switch (cls_) {
        case BPF_ALU:
        case BPF_ALU64:
            alu(i, in, s);
            break;
        case BPF_LD:
            if (in.code == kLdImm64) {
                ld_imm64(i, in, s);
                out.push_back({i + 2, std::move(s)});
                return;
            }
            ld_packet(i, in, s);
            break;
        case BPF_LDX:
            ldx(i, in, s);
            break;
        case BPF_ST:
            st(i, in, s);
            break;
        case BPF_STX:
            stx(i, in, s);
            break;
        case BPF_JMP:
        case BPF_JMP32: {
            const uint8_t op = BPF_OP(in.code);
            if (cls_ == BPF_JMP && op == BPF_EXIT) {
                if (sink_) exit_walked_ = true;
                check_exit(i, s);
                return;
            }
            if (cls_ == BPF_JMP && op == BPF_CALL) {
                call(i, in, s);
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

State Walker::entry_state() const {
    State entry;
    for (auto& v : entry.r) v = Val{};
    if (main_) {
        entry.r[1] = Val::ptr(Kind::Ctx);
    } else {
        for (int r = 1; r <= 5; ++r) entry.r[r] = Val::top();
    }
    entry.r[10] = Val::ptr(Kind::Stack);
    return entry;
}

// Back edges of a DFS over the static CFG close the (bounded) loops; what the
// DFS never reaches is dead code, which the kernel rejects.
Walker::Cfg Walker::cfg() const {
    Cfg g;
    std::vector<std::vector<size_t>> succ(n_);
    for (size_t i = 0; i < n_; ++i) {
        const Insn& x = at(i);
        const uint8_t c = BPF_CLASS(x.code);
        const uint8_t op = BPF_OP(x.code);
        auto add = [&](int64_t to) {
            if (to >= 0 && to < static_cast<int64_t>(n_)) succ[i].push_back(static_cast<size_t>(to));
            else g.leaves.push_back(i);
        };
        const auto si = static_cast<int64_t>(i);
        if (imm_tail_[i]) continue;  // not an instruction: decodable() stops a walk here
        if (x.code == kLdImm64) {
            add(si + 2);
        } else if ((c == BPF_JMP || c == BPF_JMP32) && op != BPF_CALL) {
            if (c == BPF_JMP && op == BPF_EXIT) continue;
            add(si + 1 + ((c == BPF_JMP32 && op == BPF_JA) ? x.imm : x.off));
            if (op != BPF_JA) add(si + 1);
        } else {
            add(si + 1);
        }
    }
    Edges& back = g.back;
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
    g.reached.resize(n_);
    for (size_t i = 0; i < n_; ++i) g.reached[i] = color[i] != 0;
    // Backwards from the exits: which instructions can still end.
    std::vector<std::vector<size_t>> pred(n_);
    std::vector<size_t> todo;
    g.exits.assign(n_, 0);
    for (size_t i = 0; i < n_; ++i) {
        for (size_t w : succ[i]) pred[w].push_back(i);
        if (!imm_tail_[i] && at(i).code == (BPF_JMP | BPF_EXIT)) {
            g.exits[i] = 1;
            todo.push_back(i);
        }
    }
    while (!todo.empty()) {
        const size_t w = todo.back();
        todo.pop_back();
        for (size_t v : pred[w])
            if (!g.exits[v]) {
                g.exits[v] = 1;
                todo.push_back(v);
            }
    }
    return g;
}

// States are kept per (instruction, context), the context being the number
// of back edges taken so far, up to kUnroll: bounded loops (a MAC swap
// `for (i = 0; i != 6; i += 2)`) are thus walked iteration by iteration, as
// the kernel verifier does, and stay exact. Past kUnroll iterations states
// join, and widen at loop heads after a few rounds.
bool Walker::fixpoint(const Edges& back, StatesByContext& in) {
    constexpr unsigned kUnroll = 64;
    using Key = std::pair<size_t, unsigned>;
    std::map<Key, unsigned> visits;
    std::set<Key> queued;
    std::deque<Key> work;
    work.emplace_back(0, 0);
    queued.emplace(0, 0);
    std::vector<Succ> out;
    // Our largest real program (xdp_anova, fully unrolled) converges in
    // ~9,500 steps; 10x that is ample. A malformed object whose joins never
    // settle (fuzz_nfp found one taking 34 s under ASan at 400,000) stops
    // here as "did not converge", i.e. unprovable, in well under a second.
    size_t budget = 100000;
    while (!work.empty()) {
        const Key key = work.front();
        work.pop_front();
        queued.erase(key);
        if (budget-- == 0) return false;
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
    return true;
}

void Walker::replay(const StatesByContext& in) {
    std::vector<Succ> out;
    for (size_t i = 0; i < n_; ++i) {
        for (const auto& [ctx, st] : in[i]) {
            out.clear();
            step(i, st, out);
            for (const auto& sc : out)
                if (sc.to >= n_)
                    report(i, "cannot-prove-cfg", "jump or fall-through leaves the function",
                           kLeaves, true);
        }
    }
}

// Code no path reaches is never walked, so it cannot be passed: one
// violation per dead stretch, at its first instruction. Code from which no
// path reaches an exit (an endless loop) is refused by the kernel: one
// violation, at the first such instruction.
void Walker::report_cfg(const Cfg& g) {
    bool dead = false;
    for (size_t i = 0; i < n_; ++i) {
        if (imm_tail_[i]) continue;
        const bool was_dead = dead;
        dead = !g.reached[i];
        if (!dead || was_dead) continue;
        report(i, "cannot-prove-cfg", "unreachable instructions from here on (no path reaches them)",
               "the kernel rejects dead code: the object is corrupt or hand-written; rebuild it "
               "with clang -O2 -target bpf", true);
    }
    // The kernel checks every jump statically, taken or not (check_cfg).
    for (size_t i : g.leaves)
        if (g.reached[i])
            report(i, "cannot-prove-cfg", "jump or fall-through leaves the function", kLeaves, true);
    for (size_t i = 0; i < n_; ++i) {
        if (imm_tail_[i] || !g.reached[i] || g.exits[i]) continue;
        report(i, "cannot-prove-cfg", "no path from here reaches an exit (endless loop)",
               "every loop needs a way out the verifier can see", true);
        break;
    }
}

void Walker::run(Sink& sink) {
    callees.clear();
    if (n_ == 0) {
        sink.add(prog_, -1, "cannot-prove-elf", "function has no instructions",
                 "the object is corrupt: rebuild it with clang -g -O2 -target bpf", true);
        return;
    }
    imm_tail_.assign(n_, 0);
    for (size_t i = 0; i + 1 < n_; ++i)
        if (at(i).code == kLdImm64) imm_tail_[++i] = 1;
    const Cfg g = cfg();
    StatesByContext in(n_);
    in[0].emplace(0, entry_state());
    const bool converged = fixpoint(g.back, in);
    sink_ = &sink;
    callees.clear();
    if (!converged)
        report(0, "cannot-prove-analysis", "the analysis did not converge",
               "simplify the control flow (unroll fewer loops)", true);
    report_cfg(g);
    exit_walked_ = false;
    replay(in);
    if (!exit_walked_)
        sink.add(prog_, -1, "cannot-prove-cfg", "the walk reached no exit (every path ends in an "
                 "endless loop or in code it could not decode)",
                 "every path must end in an exit", true);
    sink_ = nullptr;
}

}  // namespace etcpipe::nfp::checker
