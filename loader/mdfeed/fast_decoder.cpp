// FAST decoder: runs a template's instruction plan over the bytes.
//
// run() dispatches each field with one switch on the opcode resolved at load
// (kind x type x operator), into handlers specialised by template. Every step
// returns Ok, More (the input ends inside the message) or Err (error_
// filled). Decoded values land in Store::cells (one per field, nested blocks
// appended) and Store::arena (string bytes); both only grow, so a warm
// decoder does not allocate. Dictionary writes go through the Dictionary
// journal and are rolled back when a message ends in More or Err. Integers
// take a 1-, 2-byte or 8-byte-word fast path; error text is built only in
// cold helpers.
#include <algorithm>
#include <cstring>

#include "mdfeed/fast_internal.hpp"
#include "mdfeed/fast_wire.hpp"

namespace etcpipe::fast {
namespace detail {

namespace {

enum class St : uint8_t { Ok, More, Err };

inline int64_t bits_of(i128 v) { return static_cast<int64_t>(static_cast<uint64_t>(v)); }

// Largest value of a type, as stored (uint64 bits for unsigned types).
template <Num N>
constexpr int64_t max_bits() {
    if constexpr (N == Num::U32) return UINT32_MAX;
    else if constexpr (N == Num::I32) return INT32_MAX;
    else if constexpr (N == Num::U64) return -1;  // UINT64_MAX
    else return INT64_MAX;
}

// base + delta in the type's range; false on overflow (R4).
template <Num N>
inline bool add_delta(int64_t base, int64_t delta, int64_t& out) {
    if constexpr (N == Num::U64) {
        const auto b = static_cast<uint64_t>(base);
        const uint64_t r = b + static_cast<uint64_t>(delta);
        out = static_cast<int64_t>(r);
        return delta >= 0 ? r >= b : r < b;
    } else {
        if (__builtin_add_overflow(base, delta, &out)) return false;
        if constexpr (N == Num::U32) return out >= 0 && out <= UINT32_MAX;
        else if constexpr (N == Num::I32) return out >= INT32_MIN && out <= INT32_MAX;
        else return true;
    }
}

const char* slot_type_name(uint8_t t) {
    static const char* const names[] = {"uInt32", "int32",  "uInt64",  "int64",
                                        "decimal", "string", "unicode", "byteVector"};
    return t < 8 ? names[t] : "?";
}

}  // namespace

class DecoderState {
  public:
    DecoderState(const TemplateSet& set, DecoderOptions o) : set_(&set.impl()), opt_(o) {
        dict_.init(set_->slot_names.size());
        store_.set = set_;
        tid_instr_.name = &tid_name_;
    }

    Decoder::Status decode(std::span<const uint8_t> in, size_t& consumed);
    void reset() {
        dict_.reset();
        tid_state_ = kUndefined;
    }
    std::string dump() const;

    MessageView view_;
    DecodeError error_;
    uint64_t offset_ = 0;
    uint64_t messages_ = 0;

  private:
    // ---- errors ------------------------------------------------------------
    [[gnu::cold, gnu::noinline]] St fail(const char* code, const Instr* in, const uint8_t* at,
                                         std::string what) {
        error_.code = code;
        error_.message_index = messages_;
        error_.byte_offset = offset_ + static_cast<uint64_t>(at - begin_);
        error_.field = in && in->name ? *in->name : std::string();
        error_.what = std::move(what);
        return St::Err;
    }
    // Cold helpers, so the hot functions build no strings.
    [[gnu::cold, gnu::noinline]] St fail_c(const char* code, const Instr& in, const uint8_t* at,
                                           const char* what) {
        return fail(code, &in, at, what);
    }
    [[gnu::cold, gnu::noinline]] St fail_n(const char* code, const Instr& in, const uint8_t* at,
                                           const char* what, int64_t n, const char* tail = "") {
        return fail(code, &in, at, what + std::to_string(n) + tail);
    }
    [[gnu::cold, gnu::noinline]] St fail_d5(const Instr& in, const uint8_t* at) {
        return fail("D5", &in, at, "mandatory field absent, previous value undefined, no initial value");
    }
    [[gnu::cold, gnu::noinline]] St fail_d6(const Instr& in, const uint8_t* at) {
        return fail("D6", &in, at, "mandatory field absent, previous value empty");
    }
    [[gnu::cold, gnu::noinline]] St fail_d6_delta(const Instr& in, const uint8_t* at) {
        return fail("D6", &in, at, "delta base (previous value) is empty");
    }
    [[gnu::cold, gnu::noinline]] St fail_r1(const Instr& in, const uint8_t* at, int64_t e) {
        return fail_n("R1", in, at, "decimal exponent ", e, " outside -63..63");
    }
    [[gnu::cold, gnu::noinline]] St fail_r4(const Instr& in, const uint8_t* at, const char* what, Num n) {
        return fail("R4", &in, at, std::string(what) + num_name(n));
    }
    [[gnu::cold, gnu::noinline]] St fail_d4(const Instr& in, const uint8_t* at) {
        return fail("D4", &in, at,
                    std::string("previous value is ") +
                        slot_type_name(dict_.header(in.slot).type) + ", field is " +
                        slot_type_name(in.slot_type));
    }
    [[gnu::cold, gnu::noinline]] St fail_range(const Instr& in, Num n, const uint8_t* at) {
        return fail("D2", &in, at, std::string("integer does not fit ") + num_name(n));
    }
    [[gnu::cold, gnu::noinline]] void prefix_field(const std::string& name, size_t k) {
        std::string p = name;
        if (k != SIZE_MAX) p += "[" + std::to_string(k) + "]";
        error_.field = error_.field.empty() ? p : p + "." + error_.field;
    }

    St message(Cursor& c);
    St run(const Instr* ins, uint32_t b, uint32_t e, Cursor& c, Pmap& pm, uint32_t base);
    St read_pmap(Cursor& c, Pmap& pm);

    // ---- integers ----------------------------------------------------------
    template <Num N>
    St read_int(const Instr& in, Cursor& c, bool nullable, Cell& out);
    template <Num N>
    St read_int_slow(const Instr& in, Cursor& c, bool nullable, Cell& out);
    template <Num N, Operator O>
    St int_op(const Instr& in, Cursor& c, Pmap& pm, Cell& out);
    template <Num N>
    St exec_int(const Instr& in, Cursor& c, Pmap& pm, Cell& out);
    template <Num N>
    St int_from_prev(const Instr& in, const uint8_t* at, bool increment, Cell& out);
    template <Num N>
    St int_delta(const Instr& in, Cursor& c, Cell& out);

    // ---- decimals ----------------------------------------------------------
    St read_dec(const Instr& in, Cursor& c, bool nullable, Cell& out);
    template <Operator O>
    St dec_op(const Instr& in, Cursor& c, Pmap& pm, Cell& out);
    St dec_from_prev(const Instr& in, const uint8_t* at, Cell& out);
    St dec_delta(const Instr& in, Cursor& c, Cell& out);
    template <Operator O>
    St exp_op(const Instr& in, Cursor& c, Pmap& pm, Cell& out);
    template <Operator O>
    St mant_op(const Instr& in, Cursor& c, Pmap& pm, Cell& out);

    // ---- strings, byte vectors ---------------------------------------------
    St read_str(const Instr& in, Cursor& c, bool nullable, Cell& out);
    St read_ascii(const Instr& in, Cursor& c, bool nullable, Cell& out);
    St ascii_zero(const Instr& in, const uint8_t* start, size_t n, bool nullable, Cell& out);
    St read_blob(const Instr& in, Cursor& c, bool nullable, Cell& out);
    template <Operator O>
    St str_op(const Instr& in, Cursor& c, Pmap& pm, Cell& out);
    St str_from_prev(const Instr& in, const uint8_t* at, Cell& out);
    St str_delta(const Instr& in, Cursor& c, Cell& out);
    St str_tail(const Instr& in, Cursor& c, Cell& out);
    void put_arena(const char* p, size_t n, Cell& out);
    void put_arena(std::string_view s, Cell& out) { put_arena(s.data(), s.size(), out); }

    // ---- composites --------------------------------------------------------
    uint32_t alloc(uint64_t n);
    St exec_group(const Instr* ins, const Instr& in, Cursor& c, Pmap& pm, uint32_t idx);
    St exec_seq(const Instr* ins, const Instr& in, Cursor& c, Pmap& pm, uint32_t idx);
    St exec_dynref(const Instr& in, Cursor& c, uint32_t idx);
    St template_id(Cursor& c, Pmap& pm, const Template*& t);

    const SetImpl* set_;
    DecoderOptions opt_;
    size_t dyn_depth_ = 0;  // dynamic templateRefs being decoded, outermost first
    Store store_;
    Dictionary dict_;
    const uint8_t* begin_ = nullptr;  // in[0] of the current attempt
    uint32_t tid_ = 0;                // template identifier entry (copy, global)
    uint8_t tid_state_ = kUndefined;
    const Template* last_ = nullptr;
    std::string tid_name_ = "TemplateID";
    Instr tid_instr_;
};

// ---- message ---------------------------------------------------------------

Decoder::Status DecoderState::decode(std::span<const uint8_t> in, size_t& consumed) {
    consumed = 0;
    begin_ = in.data();
    Cursor c{in.data(), in.data() + in.size()};
    const uint32_t saved_tid = tid_;
    const uint8_t saved_tid_state = tid_state_;
    dict_.begin();
    store_.used = 0;
    store_.arena_used = 0;
    const St s = in.empty() ? St::More : message(c);
    if (s == St::Ok) {
        consumed = static_cast<size_t>(c.p - in.data());
        offset_ += consumed;
        ++messages_;
        return Decoder::Status::Ok;
    }
    dict_.rollback();
    tid_ = saved_tid;
    tid_state_ = saved_tid_state;
    view_ = MessageView{};
    return s == St::More ? Decoder::Status::NeedMore : Decoder::Status::Error;
}

St DecoderState::read_pmap(Cursor& c, Pmap& pm) {
    const uint8_t* p = c.p;
    for (;;) {
        if (p == c.end) return St::More;
        if (*p++ & 0x80) break;
    }
    pm = Pmap{0, 0, c.p, p};
    c.p = p;
    return St::Ok;
}

// The template identifier: copy operator, first bit of the segment's pmap.
St DecoderState::template_id(Cursor& c, Pmap& pm, const Template*& t) {
    const uint8_t* at = c.p;
    if (pm.take()) {
        Cell v;
        const St s = read_int<Num::U32>(tid_instr_, c, false, v);
        if (s != St::Ok) return s;
        tid_ = static_cast<uint32_t>(v.v);
        tid_state_ = kAssigned;
    } else if (tid_state_ != kAssigned) {
        return fail("D5", &tid_instr_, at, "no template id in the stream and none before");
    }
    t = last_ && last_->id() == tid_ ? last_ : set_->find(tid_);
    if (!t) return fail("D9", &tid_instr_, at, "unknown template id " + std::to_string(tid_));
    last_ = t;
    return St::Ok;
}

St DecoderState::message(Cursor& c) {
    Pmap pm;
    St s = read_pmap(c, pm);
    if (s != St::Ok) return s;
    const Template* t = nullptr;
    if ((s = template_id(c, pm, t)) != St::Ok) return s;
    if (t->resets()) dict_.reset();
    const Plan& p = t->plan();
    alloc(p.cells);
    if ((s = run(p.instrs.data(), p.body_begin, p.body_end, c, pm, 0)) != St::Ok) return s;
    view_.store_ = &store_;
    view_.fields_ = &t->fields();
    view_.base_ = 0;
    view_.tmpl_ = t;
    return St::Ok;
}


#define FAST_OPS(X, A) X(A, None) X(A, Constant) X(A, Default) X(A, Copy) X(A, Increment) \
    X(A, Delta) X(A, Tail)
#define FAST_INT(N, O)                                             \
    case code_int(Num::N, Operator::O):                            \
        s = int_op<Num::N, Operator::O>(in, c, pm, cells[in.cell]); \
        break;
#define FAST_EXP(A, O)                                          \
    case code_exp(Operator::O):                                 \
        s = exp_op<Operator::O>(in, c, pm, cells[in.cell]);     \
        break;                                                  \
    case code_mant(Operator::O):                                \
        s = mant_op<Operator::O>(in, c, pm, cells[in.cell]);    \
        break;                                                  \
    case code_dec(Operator::O):                                 \
        s = dec_op<Operator::O>(in, c, pm, cells[in.cell]);     \
        break;
#define FAST_STR(K, O)                                          \
    case code_str(StrKind::K, Operator::O):                     \
        s = str_op<Operator::O>(in, c, pm, cells[in.cell]);     \
        break;

// The interpreter: one switch per field on the opcode resolved at load.
// Composite steps may grow the cell vector, so `cells` is reloaded after them,
// and spend dictionary journal entries of their own, so the room for the
// rest of the segment (one entry per instruction) is reserved again.
St DecoderState::run(const Instr* ins, uint32_t b, uint32_t e, Cursor& c, Pmap& pm,
                     uint32_t base) {
    Cell* cells = store_.cells.data() + base;
    dict_.reserve(e - b);
    for (uint32_t k = b; k < e; ++k) {
        const Instr& in = ins[k];
        St s = St::Ok;
        switch (in.code) {
            FAST_OPS(FAST_INT, U32)
            FAST_OPS(FAST_INT, I32)
            FAST_OPS(FAST_INT, U64)
            FAST_OPS(FAST_INT, I64)
            FAST_OPS(FAST_EXP, 0)
            FAST_OPS(FAST_STR, Ascii)
            FAST_OPS(FAST_STR, Unicode)
            FAST_OPS(FAST_STR, Bytes)
            case kCodeGroup:
                s = exec_group(ins, in, c, pm, base + in.cell);
                cells = store_.cells.data() + base;
                dict_.reserve(e - k);  // the nested runs spent entries of their own
                break;
            case kCodeSeq:
                s = exec_seq(ins, in, c, pm, base + in.cell);
                cells = store_.cells.data() + base;
                dict_.reserve(e - k);  // the nested runs spent entries of their own
                break;
            case kCodeDynRef:
                s = exec_dynref(in, c, base + in.cell);
                cells = store_.cells.data() + base;
                dict_.reserve(e - k);  // the nested runs spent entries of their own
                break;
            default: break;
        }
        if (s != St::Ok) [[unlikely]]
            return s;
    }
    return St::Ok;
}

#undef FAST_STR
#undef FAST_EXP
#undef FAST_INT
#undef FAST_OPS

// ---- integers ----------------------------------------------------------------

// Fast path: values of up to 8 bytes (56 bits), decoded from one 64-bit load
// when 8 bytes are available; anything longer (overlong or 64-bit extremes)
// goes to read_int_slow().
template <Num N>
[[gnu::always_inline]] inline St DecoderState::read_int(const Instr& in, Cursor& c, bool nullable,
                                                         Cell& out) {
    const uint8_t* p = c.p;
    uint64_t x = 0;
    int n = 0;
    if (p != c.end && (*p & 0x80)) {  // one byte: the most common case
        x = *p & 0x7f;
        n = 1;
    } else if (c.end - p >= 2 && (p[1] & 0x80)) {  // two bytes: small deltas and sizes
        x = static_cast<uint64_t>(p[0]) << 7 | (p[1] & 0x7f);
        n = 2;
    } else if (c.end - p >= 8) [[likely]] {
        n = varint8(p, x);
        if (n == 0) [[unlikely]] {
            // 9 bytes (57..63 bits) still fit 64-bit arithmetic.
            if (c.end - p < 9 || !(p[8] & 0x80)) return read_int_slow<N>(in, c, nullable, out);
            x = (groups8(p) << 7) | (p[8] & 0x7f);
            n = 9;
        }
    } else {
        for (;;) {
            if (p + n == c.end) return St::More;
            const uint8_t b = p[n++];
            x = (x << 7) | (b & 0x7f);
            if (b & 0x80) break;
            if (n == 8) return read_int_slow<N>(in, c, nullable, out);
        }
    }
    int64_t v;
    if constexpr (N == Num::U32 || N == Num::U64) {
        v = static_cast<int64_t>(x);
    } else {
        const int sh = 64 - 7 * n;
        v = static_cast<int64_t>(x << sh) >> sh;
    }
    if (nullable) {
        if (v == 0) {
            c.p = p + n;
            out.present = 0;
            return St::Ok;
        }
        if (v > 0) --v;
    }
    if constexpr (N == Num::U32) {
        if (static_cast<uint64_t>(v) > UINT32_MAX) [[unlikely]]
            return fail_range(in, N, c.p);
    } else if constexpr (N == Num::I32) {
        if (v < INT32_MIN || v > INT32_MAX) [[unlikely]]
            return fail_range(in, N, c.p);
    }
    c.p = p + n;
    out.present = 1;
    out.v = v;
    return St::Ok;
}

template <Num N>
St DecoderState::read_int_slow(const Instr& in, Cursor& c, bool nullable, Cell& out) {
    const uint8_t* at = c.p;
    i128 v;
    Rd r;
    if constexpr (N == Num::U32 || N == Num::U64) {
        u128 u = 0;
        r = read_uraw(c, u);
        v = static_cast<i128>(u);
    } else {
        r = read_sraw(c, v);
    }
    if (r != Rd::Ok) return r == Rd::More ? St::More : fail_range(in, N, at);
    if (nullable) {
        if (v == 0) {
            out.present = 0;
            return St::Ok;
        }
        if (v > 0) --v;
    }
    if (v < num_min(N) || v > num_max(N)) return fail_range(in, N, at);
    out.present = 1;
    out.v = bits_of(v);
    return St::Ok;
}

template <Num N, Operator O>
[[gnu::always_inline]] inline St DecoderState::int_op(const Instr& in, Cursor& c, Pmap& pm,
                                                       Cell& out) {
    if constexpr (O == Operator::None) {
        return read_int<N>(in, c, in.nullable, out);
    } else if constexpr (O == Operator::Constant) {
        out.present = !in.optional || pm.take();
        out.v = in.init_i;
        return St::Ok;
    } else if constexpr (O == Operator::Default) {
        if (pm.take()) return read_int<N>(in, c, in.nullable, out);
        out.present = in.has_init;
        out.v = in.init_i;
        return St::Ok;
    } else if constexpr (O == Operator::Copy || O == Operator::Increment) {
        if (!pm.take()) return int_from_prev<N>(in, c.p, O == Operator::Increment, out);
        const St s = read_int<N>(in, c, in.nullable, out);
        if (s != St::Ok) return s;
        if (out.present) dict_.set_int(in.slot, in.slot_type, out.v);
        else dict_.set_empty(in.slot);
        return St::Ok;
    } else if constexpr (O == Operator::Delta) {
        return int_delta<N>(in, c, out);
    } else {
        return St::Ok;  // tail: rejected by the template compiler
    }
}

// Runtime operator (sequence lengths).
template <Num N>
St DecoderState::exec_int(const Instr& in, Cursor& c, Pmap& pm, Cell& out) {
    switch (in.op) {
        case Operator::None: return int_op<N, Operator::None>(in, c, pm, out);
        case Operator::Constant: return int_op<N, Operator::Constant>(in, c, pm, out);
        case Operator::Default: return int_op<N, Operator::Default>(in, c, pm, out);
        case Operator::Copy: return int_op<N, Operator::Copy>(in, c, pm, out);
        case Operator::Increment: return int_op<N, Operator::Increment>(in, c, pm, out);
        case Operator::Delta: return int_op<N, Operator::Delta>(in, c, pm, out);
        case Operator::Tail: break;
    }
    return St::Ok;
}

template <Num N>
St DecoderState::int_from_prev(const Instr& in, const uint8_t* at, bool increment, Cell& out) {
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned) {
        const SlotHeader& h = dict_.header(in.slot);
        if (h.type != in.slot_type) return fail_d4(in, at);
        int64_t v = h.i;
        if (increment) {
            if (v == max_bits<N>()) [[unlikely]]
                return fail_r4(in, at, "increment overflows ", N);
            v = static_cast<int64_t>(static_cast<uint64_t>(v) + 1);
            dict_.set_int(in.slot, in.slot_type, v);
        }
        out.present = 1;
        out.v = v;
        return St::Ok;
    }
    if (st == kUndefined) {
        if (in.has_init) {
            out.present = 1;
            out.v = in.init_i;
            dict_.set_int(in.slot, in.slot_type, in.init_i);
            return St::Ok;
        }
        if (!in.optional)
            return fail_d5(in, at);
        out.present = 0;
        dict_.set_empty(in.slot);
        return St::Ok;
    }
    if (!in.optional) return fail_d6(in, at);
    out.present = 0;
    return St::Ok;
}

template <Num N>
St DecoderState::int_delta(const Instr& in, Cursor& c, Cell& out) {
    const uint8_t* at = c.p;
    Cell d;
    const St s = read_int<Num::I64>(in, c, in.nullable, d);
    if (s != St::Ok || !d.present) {
        out.present = 0;
        return s;
    }
    int64_t base = 0;
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned) {
        if (dict_.header(in.slot).type != in.slot_type) [[unlikely]]
            return fail_d4(in, at);
        base = dict_.header(in.slot).i;
    } else if (st == kUndefined) {
        base = in.has_init ? in.init_i : 0;
    } else {
        return fail_d6_delta(in, at);
    }
    int64_t v;
    if (!add_delta<N>(base, d.v, v)) [[unlikely]]
        return fail_r4(in, at, "delta result overflows ", N);
    out.present = 1;
    out.v = v;
    dict_.set_int(in.slot, in.slot_type, v);
    return St::Ok;
}

// ---- decimals ----------------------------------------------------------------

St DecoderState::read_dec(const Instr& in, Cursor& c, bool nullable, Cell& out) {
    const uint8_t* at = c.p;
    Cell e, m;
    St s = read_int<Num::I32>(in, c, nullable, e);
    if (s != St::Ok || !e.present) {
        out.present = 0;
        return s;
    }
    if ((s = read_int<Num::I64>(in, c, false, m)) != St::Ok) return s;
    if (e.v < -63 || e.v > 63)
        return fail_r1(in, at, e.v);
    out.present = 1;
    out.exp = static_cast<int32_t>(e.v);
    out.v = m.v;
    return St::Ok;
}

template <Operator O>
St DecoderState::dec_op(const Instr& in, Cursor& c, Pmap& pm, Cell& out) {
    if constexpr (O == Operator::None) {
        return read_dec(in, c, in.nullable, out);
    } else if constexpr (O == Operator::Constant || O == Operator::Default) {
        if (O == Operator::Constant ? !in.optional || pm.take() : !pm.take()) {
            out.present = O == Operator::Constant || in.has_init;
            out.exp = in.init_exp;
            out.v = in.init_i;
            return St::Ok;
        }
        if constexpr (O == Operator::Constant) {
            out.present = 0;
            return St::Ok;
        } else {
            return read_dec(in, c, in.nullable, out);
        }
    } else if constexpr (O == Operator::Copy) {
        if (!pm.take()) return dec_from_prev(in, c.p, out);
        const St s = read_dec(in, c, in.nullable, out);
        if (s != St::Ok) return s;
        if (out.present) dict_.set_dec(in.slot, out.exp, out.v);
        else dict_.set_empty(in.slot);
        return St::Ok;
    } else if constexpr (O == Operator::Delta) {
        return dec_delta(in, c, out);
    } else {
        return St::Ok;  // increment, tail: rejected by the template compiler
    }
}

St DecoderState::dec_from_prev(const Instr& in, const uint8_t* at, Cell& out) {
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned) {
        const SlotHeader& h = dict_.header(in.slot);
        if (h.type != kSlotDec) return fail_d4(in, at);
        out.present = 1;
        out.exp = static_cast<int32_t>(h.i);
        out.v = h.m;
        return St::Ok;
    }
    if (st == kUndefined) {
        if (in.has_init) {
            out.present = 1;
            out.exp = in.init_exp;
            out.v = in.init_i;
            dict_.set_dec(in.slot, in.init_exp, in.init_i);
            return St::Ok;
        }
        if (!in.optional)
            return fail_d5(in, at);
        out.present = 0;
        dict_.set_empty(in.slot);
        return St::Ok;
    }
    if (!in.optional) return fail_d6(in, at);
    out.present = 0;
    return St::Ok;
}

St DecoderState::dec_delta(const Instr& in, Cursor& c, Cell& out) {
    const uint8_t* at = c.p;
    Cell de, dm;
    St s = read_int<Num::I32>(in, c, in.nullable, de);
    if (s != St::Ok || !de.present) {
        out.present = 0;
        return s;
    }
    if ((s = read_int<Num::I64>(in, c, false, dm)) != St::Ok) return s;
    int64_t be = 0, bm = 0;
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned) {
        const SlotHeader& h = dict_.header(in.slot);
        if (h.type != kSlotDec) return fail_d4(in, at);
        be = h.i;
        bm = h.m;
    } else if (st == kUndefined) {
        be = in.has_init ? in.init_exp : 0;
        bm = in.has_init ? in.init_i : 0;
    } else {
        return fail_d6_delta(in, at);
    }
    const int64_t e = be + de.v;
    int64_t m;
    if (e < -63 || e > 63) [[unlikely]]
        return fail_r1(in, at, e);
    if (__builtin_add_overflow(bm, dm.v, &m)) [[unlikely]]
        return fail_c("R4", in, at, "mantissa delta overflows int64");
    out.present = 1;
    out.exp = static_cast<int32_t>(e);
    out.v = m;
    dict_.set_dec(in.slot, out.exp, out.v);
    return St::Ok;
}

template <Operator O>
St DecoderState::exp_op(const Instr& in, Cursor& c, Pmap& pm, Cell& out) {
    const uint8_t* at = c.p;
    Cell e;
    const St s = int_op<Num::I32, O>(in, c, pm, e);
    if (s != St::Ok || !e.present) {
        out.present = 0;
        return s;
    }
    if (e.v < -63 || e.v > 63) [[unlikely]]
        return fail_r1(in, at, e.v);
    out.present = 1;
    out.exp = static_cast<int32_t>(e.v);
    return St::Ok;
}

template <Operator O>
St DecoderState::mant_op(const Instr& in, Cursor& c, Pmap& pm, Cell& out) {
    if (!out.present) return St::Ok;  // NULL exponent: no mantissa, no pmap bit
    Cell m;
    const St s = int_op<Num::I64, O>(in, c, pm, m);
    out.v = m.v;
    return s;
}

// ---- strings, byte vectors ---------------------------------------------------

[[gnu::always_inline]] inline void DecoderState::put_arena(const char* p, size_t n, Cell& out) {
    const size_t at = store_.arena_used;
    if (at + n > store_.arena.size()) [[unlikely]]
        store_.arena.resize(2 * (at + n));
    copy_small(store_.arena.data() + at, p, n);
    store_.arena_used = at + n;
    out.present = 1;
    out.v = static_cast<int64_t>(at);
    out.n = static_cast<uint32_t>(n);
}

St DecoderState::read_str(const Instr& in, Cursor& c, bool nullable, Cell& out) {
    return in.str == StrKind::Ascii ? read_ascii(in, c, nullable, out)
                                    : read_blob(in, c, nullable, out);
}

St DecoderState::read_ascii(const Instr& in, Cursor& c, bool nullable, Cell& out) {
    const uint8_t* start = c.p;
    const uint8_t* p = start;
    const size_t limit = opt_.max_string_length + 3;
    for (;;) {
        if (c.end - p >= 8) [[likely]] {
            const int k = stop8(p);
            p += k ? k : 8;
            if (k) break;
        } else {
            if (p == c.end) return St::More;
            if (*p++ & 0x80) break;
        }
        if (static_cast<size_t>(p - start) > limit)
            return fail_c("limit", in, start, "string longer than max_string_length");
    }
    const auto n = static_cast<size_t>(p - start);
    c.p = p;
    if ((start[0] & 0x7f) == 0) return ascii_zero(in, start, n, nullable, out);
    put_arena(reinterpret_cast<const char*>(start), n, out);
    char& last = store_.arena[store_.arena_used - 1];
    last = static_cast<char>(last & 0x7f);
    return St::Ok;
}

// Leading 0x00: 0x80 is ""/NULL, 0x00 0x80 is "\0"/"", 0x00 0x00 0x80 is the
// nullable "\0"; anything else is an overlong string (R9).
St DecoderState::ascii_zero(const Instr& in, const uint8_t* start, size_t n, bool nullable,
                            Cell& out) {
    static const char nul = '\0';
    if (n == 1) {
        if (nullable) out.present = 0;
        else put_arena(&nul, 0, out);
        return St::Ok;
    }
    if (n == 2 && start[1] == 0x80) {
        put_arena(&nul, nullable ? 0 : 1, out);
        return St::Ok;
    }
    if (nullable && n == 3 && start[1] == 0x00 && start[2] == 0x80) {
        put_arena(&nul, 1, out);
        return St::Ok;
    }
    return fail_c("R9", in, start, "overlong string (leading zero byte)");
}

St DecoderState::read_blob(const Instr& in, Cursor& c, bool nullable, Cell& out) {
    const uint8_t* at = c.p;
    Cell len;
    const St s = read_int<Num::U32>(in, c, nullable, len);
    if (s != St::Ok || !len.present) {
        out.present = 0;
        return s;
    }
    const auto n = static_cast<uint64_t>(len.v);
    if (n > opt_.max_string_length)
        return fail_n("limit", in, at, "length ", static_cast<int64_t>(n), " above max_string_length");
    if (static_cast<uint64_t>(c.end - c.p) < n) return St::More;
    put_arena(reinterpret_cast<const char*>(c.p), n, out);
    c.p += n;
    return St::Ok;
}

template <Operator O>
St DecoderState::str_op(const Instr& in, Cursor& c, Pmap& pm, Cell& out) {
    if constexpr (O == Operator::None) {
        return read_str(in, c, in.nullable, out);
    } else if constexpr (O == Operator::Constant) {
        if (in.optional && !pm.take()) out.present = 0;
        else put_arena(in.init_s, out);
        return St::Ok;
    } else if constexpr (O == Operator::Default) {
        if (pm.take()) return read_str(in, c, in.nullable, out);
        if (in.has_init) put_arena(in.init_s, out);
        else out.present = 0;
        return St::Ok;
    } else if constexpr (O == Operator::Copy) {
        if (!pm.take()) return str_from_prev(in, c.p, out);
        const St s = read_str(in, c, in.nullable, out);
        if (s != St::Ok) return s;
        if (out.present)
            dict_.write_str(in.slot, in.slot_type, false)
                .assign(store_.arena.data() + out.v, out.n);
        else
            dict_.set_empty(in.slot);
        return St::Ok;
    } else if constexpr (O == Operator::Delta) {
        return str_delta(in, c, out);
    } else if constexpr (O == Operator::Tail) {
        if (pm.take()) return str_tail(in, c, out);
        return str_from_prev(in, c.p, out);
    } else {
        return St::Ok;  // increment: rejected by the template compiler
    }
}

St DecoderState::str_from_prev(const Instr& in, const uint8_t* at, Cell& out) {
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned) {
        if (dict_.header(in.slot).type != in.slot_type) return fail_d4(in, at);
        put_arena(dict_.str(in.slot), out);
        return St::Ok;
    }
    if (st == kUndefined) {
        if (in.has_init) {
            put_arena(in.init_s, out);
            dict_.write_str(in.slot, in.slot_type, false).assign(in.init_s);
            return St::Ok;
        }
        if (!in.optional)
            return fail_d5(in, at);
        out.present = 0;
        dict_.set_empty(in.slot);
        return St::Ok;
    }
    if (!in.optional) return fail_d6(in, at);
    out.present = 0;
    return St::Ok;
}

St DecoderState::str_delta(const Instr& in, Cursor& c, Cell& out) {
    const uint8_t* at = c.p;
    Cell sub, d;
    St s = read_int<Num::I32>(in, c, in.nullable, sub);
    if (s != St::Ok || !sub.present) {
        out.present = 0;
        return s;
    }
    if ((s = read_str(in, c, false, d)) != St::Ok) return s;
    const uint8_t st = dict_.state(in.slot);
    if (st == kEmpty) return fail_d6_delta(in, at);
    if (st == kAssigned && dict_.header(in.slot).type != in.slot_type) return fail_d4(in, at);
    const size_t base_len = st == kAssigned ? dict_.str(in.slot).size() : in.init_s.size();
    const bool front = sub.v < 0;
    const auto cut = static_cast<uint64_t>(front ? -(sub.v + 1) : sub.v);
    if (cut > base_len)
        return fail("D7", &in, at, "subtraction length " + std::to_string(cut) +
                                       " larger than the base value (" + std::to_string(base_len) + ")");
    if (base_len - cut + d.n > opt_.max_string_length)
        return fail_c("limit", in, at, "delta result longer than max_string_length");
    DictStr& buf = dict_.write_str(in.slot, in.slot_type, st == kAssigned);
    if (st != kAssigned) buf.assign(in.init_s);
    const char* delta = store_.arena.data() + d.v;
    if (front) buf.replace(0, cut, delta, d.n);
    else buf.replace(buf.size() - cut, cut, delta, d.n);
    store_.arena_used = static_cast<size_t>(d.v);
    put_arena(buf, out);
    return St::Ok;
}

St DecoderState::str_tail(const Instr& in, Cursor& c, Cell& out) {
    const uint8_t* at = c.p;
    Cell t;
    const St s = read_str(in, c, in.nullable, t);
    if (s != St::Ok) return s;
    if (!t.present) {
        out.present = 0;
        dict_.set_empty(in.slot);
        return St::Ok;
    }
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned && dict_.header(in.slot).type != in.slot_type) return fail_d4(in, at);
    DictStr& buf = dict_.write_str(in.slot, in.slot_type, st == kAssigned);
    if (st != kAssigned) buf.assign(in.init_s);
    const char* tail = store_.arena.data() + t.v;
    const size_t cut = std::min<size_t>(t.n, buf.size());
    buf.replace(buf.size() - cut, cut, tail, t.n);
    store_.arena_used = static_cast<size_t>(t.v);
    put_arena(buf, out);
    return St::Ok;
}

// ---- composites --------------------------------------------------------------

uint32_t DecoderState::alloc(uint64_t n) {
    const size_t at = store_.used;
    store_.used += n;
    if (store_.used > store_.cells.size()) store_.cells.resize(store_.used);
    return static_cast<uint32_t>(at);
}

St DecoderState::exec_group(const Instr* ins, const Instr& in, Cursor& c, Pmap& pm,
                            uint32_t idx) {
    if (in.optional && !pm.take()) {
        store_.cells[idx].present = 0;
        return St::Ok;
    }
    const uint32_t block = alloc(in.body_cells);
    Pmap sub;
    St s = in.body_pmap ? read_pmap(c, sub) : St::Ok;
    if (s == St::Ok) s = run(ins, in.body_begin, in.body_end, c, sub, block);
    if (s == St::Err) prefix_field(*in.name, SIZE_MAX);
    if (s != St::Ok) return s;
    store_.cells[idx].present = 1;
    store_.cells[idx].v = block;
    return St::Ok;
}

St DecoderState::exec_seq(const Instr* ins, const Instr& in, Cursor& c, Pmap& pm,
                          uint32_t idx) {
    const uint8_t* at = c.p;
    Cell len;
    St s = exec_int<Num::U32>(ins[in.len_instr], c, pm, len);
    if (s != St::Ok || !len.present) {
        store_.cells[idx].present = 0;
        return s;
    }
    const auto n = static_cast<uint64_t>(len.v);
    if (n > opt_.max_sequence_length)
        return fail("limit", &ins[in.len_instr], at,
                    "sequence length " + std::to_string(n) + " above max_sequence_length");
    if (n * in.min_bytes > static_cast<uint64_t>(c.end - c.p)) return St::More;
    const uint32_t block = alloc(n * in.body_cells);
    for (uint64_t k = 0; k < n; ++k) {
        Pmap sub;
        s = in.body_pmap ? read_pmap(c, sub) : St::Ok;
        if (s == St::Ok)
            s = run(ins, in.body_begin, in.body_end, c, sub,
                    block + static_cast<uint32_t>(k) * in.body_cells);
        if (s == St::Err) prefix_field(*in.name, k);
        if (s != St::Ok) return s;
    }
    Cell& out = store_.cells[idx];
    out.present = 1;
    out.v = block;
    out.n = static_cast<uint32_t>(n);
    return St::Ok;
}

// A dynamic templateRef: presence map, template id, that template's fields.
St DecoderState::exec_dynref(const Instr& in, Cursor& c, uint32_t idx) {
    Pmap pm;
    St s = read_pmap(c, pm);
    const Template* t = nullptr;
    if (s == St::Ok) s = template_id(c, pm, t);
    if (s != St::Ok) return s;
    if (dyn_depth_ >= opt_.max_dynamic_depth)
        return fail("limit", &in, c.p,
                    "dynamic templateRefs nested deeper than max_dynamic_depth (" +
                        std::to_string(opt_.max_dynamic_depth) + ")");
    const Plan& p = t->plan();
    const uint32_t block = alloc(p.cells);
    ++dyn_depth_;
    s = run(p.instrs.data(), p.body_begin, p.body_end, c, pm, block);
    --dyn_depth_;
    if (s == St::Err) prefix_field(*in.name, SIZE_MAX);
    if (s != St::Ok) return s;
    Cell& out = store_.cells[idx];
    out.present = 1;
    out.v = block;
    out.n = t->id();
    return St::Ok;
}

std::string DecoderState::dump() const {
    std::string out;
    if (tid_state_ == kAssigned) out += "TemplateID = " + std::to_string(tid_) + "\n";
    for (size_t k = 0; k < dict_.size(); ++k) {
        const auto slot = static_cast<int32_t>(k);
        const uint8_t st = dict_.state(slot);
        if (st == kUndefined) continue;
        std::string name = set_->slot_names[k];
        std::replace(name.begin(), name.end(), '\x1f', '/');
        out += name + " = ";
        const SlotHeader& h = dict_.header(slot);
        if (st == kEmpty) out += "<empty>";
        else if (h.type == kSlotDec) out += Decimal{static_cast<int32_t>(h.i), h.m}.to_string();
        else if (h.type >= kSlotAscii) out += "\"" + std::string(std::string_view(dict_.str(slot))) + "\"";
        else if (h.type == kSlotU32 || h.type == kSlotU64) out += std::to_string(static_cast<uint64_t>(h.i));
        else out += std::to_string(h.i);
        out += std::string(" (") + slot_type_name(h.type) + ")\n";
    }
    return out;
}

}  // namespace detail

// ---- public wrappers -----------------------------------------------------------

std::string DecodeError::message() const {
    std::string m = "message " + std::to_string(message_index) + " at byte " +
                    std::to_string(byte_offset);
    if (!field.empty()) m += ", field " + field;
    return m + ": " + code + ": " + what;
}

Decoder::Decoder(const TemplateSet& set, DecoderOptions options)
    : s_(std::make_unique<detail::DecoderState>(set, options)) {}
Decoder::~Decoder() = default;

Decoder::Status Decoder::decode(std::span<const uint8_t> in, size_t& consumed) {
    return s_->decode(in, consumed);
}
const MessageView& Decoder::message() const { return s_->view_; }
const DecodeError& Decoder::error() const { return s_->error_; }
void Decoder::reset() { s_->reset(); }
void Decoder::set_stream_offset(uint64_t offset_of_in0) { s_->offset_ = offset_of_in0; }
uint64_t Decoder::stream_offset() const { return s_->offset_; }
uint64_t Decoder::messages() const { return s_->messages_; }
std::string Decoder::dump_dictionary() const { return s_->dump(); }

}  // namespace etcpipe::fast
