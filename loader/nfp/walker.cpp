// NFP checker, 3. the walker: one instruction is dispatched on its class to
// walker_{alu,mem,jmp,call}.cpp; a function is walked to a fixpoint, then
// replayed once to report.
#include <algorithm>
#include <deque>

#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp::checker {

void Walker::step(size_t i, const State& in_state, std::vector<Succ>& out) {
    const Insn& in = at(i);
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

// Back edges of a DFS over the static CFG close the (bounded) loops.
Walker::Edges Walker::back_edges() const {
    std::vector<std::vector<size_t>> succ(n_);
    for (size_t i = 0; i < n_; ++i) {
        const Insn& x = at(i);
        const uint8_t c = BPF_CLASS(x.code);
        const uint8_t op = BPF_OP(x.code);
        auto add = [&](int64_t to) {
            if (to >= 0 && to < static_cast<int64_t>(n_)) succ[i].push_back(static_cast<size_t>(to));
        };
        const auto si = static_cast<int64_t>(i);
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
    Edges back;
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
    return back;
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
    size_t budget = 400000;
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
                           "", true);
        }
    }
}

void Walker::run(Sink& sink) {
    if (n_ == 0) return;
    StatesByContext in(n_);
    in[0].emplace(0, entry_state());
    const bool converged = fixpoint(back_edges(), in);
    sink_ = &sink;
    callees.clear();
    if (!converged)
        report(0, "cannot-prove-analysis", "the analysis did not converge",
               "simplify the control flow (unroll fewer loops)", true);
    replay(in);
    sink_ = nullptr;
}

}  // namespace etcpipe::nfp::checker
