// FAST encoder: the decoder's plan run backwards. For every operator it works
// out what the decoder would infer with the presence bit clear (previous
// value, previous + 1, initial value, absent) and sends the field only when
// that differs from the record, updating its dictionaries exactly as the
// decoder will. Each segment's bits and bytes are collected per nesting depth,
// then written as presence map + body. Errors roll back like the decoder.
#include <deque>

#include "mdfeed/fast_internal.hpp"
#include "mdfeed/fast_wire.hpp"

namespace etcpipe::fast {
namespace detail {

namespace {

void write_pmap(const std::vector<uint8_t>& bits, std::vector<uint8_t>& out) {
    size_t last = bits.size();
    while (last > 0 && !bits[last - 1]) --last;
    const size_t nbytes = std::max<size_t>(1, (last + 6) / 7);
    for (size_t k = 0; k < nbytes; ++k) {
        uint8_t b = 0;
        for (size_t j = 0; j < 7; ++j) {
            const size_t i = k * 7 + j;
            b = static_cast<uint8_t>(b << 1 | (i < last ? bits[i] : 0));
        }
        if (k + 1 == nbytes) b |= 0x80;
        out.push_back(b);
    }
}

void put_num(std::vector<uint8_t>& o, Num n, bool nullable, i128 v) {
    if (is_unsigned(n)) {
        if (nullable) put_uint_null(o, static_cast<u128>(v));
        else put_uint(o, static_cast<u128>(v));
    } else {
        if (nullable) put_int_null(o, v);
        else put_int(o, v);
    }
}

void put_signed(std::vector<uint8_t>& o, bool nullable, i128 v) {
    if (nullable) put_int_null(o, v);
    else put_int(o, v);
}

size_t common_prefix(std::string_view a, std::string_view b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

size_t common_suffix(std::string_view a, std::string_view b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[a.size() - 1 - n] == b[b.size() - 1 - n]) ++n;
    return n;
}

}  // namespace

class EncoderState {
  public:
    explicit EncoderState(const TemplateSet& set) : set_(&set.impl()) {
        dict_.init(set_->slot_names.size());
    }
    Result<void> encode(const Record& r, std::vector<uint8_t>& out);
    void reset() {
        dict_.reset();
        tid_state_ = kUndefined;
    }

  private:
    struct Seg {
        std::vector<uint8_t> bits;
        std::vector<uint8_t> body;
    };

    bool fail(const Instr* in, std::string what) {
        err_field_ = in && in->name ? *in->name : std::string();
        err_what_ = std::move(what);
        return false;
    }
    void prefix(const std::string& name) {
        err_field_ = err_field_.empty() ? name : name + "." + err_field_;
    }
    Seg& seg(size_t depth) {
        while (segs_.size() <= depth) segs_.emplace_back();
        return segs_[depth];
    }

    bool message(const Record& r, std::vector<uint8_t>& out);
    bool template_id(uint32_t id, Seg& s, const Template*& t);
    bool run(const Instr* ins, uint32_t b, uint32_t e, const std::vector<Value>& f, size_t depth);
    bool step(const Instr* ins, const Instr& in, const std::vector<Value>& f, size_t depth);
    bool nested(const Instr* ins, const Instr& in, const std::vector<Value>& f, size_t depth);

    bool get_int(const Instr& in, const Value& v, bool& present, i128& x);
    bool enc_int(const Instr& in, Num n, bool present, i128 x, Seg& s);
    bool int_copy(const Instr& in, Num n, bool present, i128 x, Seg& s);
    bool int_delta(const Instr& in, Num n, bool present, i128 x, Seg& s);

    bool get_dec(const Instr& in, const Value& v, bool& present, Decimal& d);
    bool enc_dec(const Instr& in, bool present, const Decimal& d, Seg& s);
    bool dec_copy(const Instr& in, bool present, const Decimal& d, Seg& s);
    bool dec_delta(const Instr& in, bool present, const Decimal& d, Seg& s);
    void put_dec(const Instr& in, bool nullable, bool present, const Decimal& d, Seg& s);

    bool get_str(const Instr& in, const Value& v, bool& present, std::string_view& sv);
    bool enc_str(const Instr& in, bool present, std::string_view v, Seg& s);
    bool str_implied(const Instr& in, bool present, std::string_view v);
    void str_implied_update(const Instr& in);
    bool str_copy(const Instr& in, bool present, std::string_view v, Seg& s);
    bool str_delta(const Instr& in, bool present, std::string_view v, Seg& s);
    bool str_tail(const Instr& in, bool present, std::string_view v, Seg& s);
    void put_str(const Instr& in, bool nullable, bool present, std::string_view v, Seg& s);

    bool enc_group(const Instr* ins, const Instr& in, const Value& v, size_t depth);
    bool enc_seq(const Instr* ins, const Instr& in, const Value& v, size_t depth);
    bool enc_dynref(const Instr& in, const Value& v, size_t depth);

    const SetImpl* set_;
    Dictionary dict_;
    std::deque<Seg> segs_;
    uint32_t tid_ = 0;
    uint8_t tid_state_ = kUndefined;
    uint32_t msg_tid_ = 0;
    std::string err_field_, err_what_;
};

// ---- message -----------------------------------------------------------------

Result<void> EncoderState::encode(const Record& r, std::vector<uint8_t>& out) {
    const size_t size0 = out.size();
    const uint32_t saved_tid = tid_;
    const uint8_t saved_state = tid_state_;
    dict_.begin();
    err_field_.clear();
    msg_tid_ = r.template_id;
    if (message(r, out)) return {};
    dict_.rollback();
    tid_ = saved_tid;
    tid_state_ = saved_state;
    out.resize(size0);
    std::string detail = err_field_.empty() ? err_what_ : "field " + err_field_ + ": " + err_what_;
    return make_error(ErrorKind::Data, 0, set_->source,
                      "encode FAST template " + std::to_string(r.template_id), detail);
}

bool EncoderState::template_id(uint32_t id, Seg& s, const Template*& t) {
    t = set_->find(id);
    if (!t) return fail(nullptr, "unknown template id " + std::to_string(id));
    const bool same = tid_state_ == kAssigned && tid_ == id;
    s.bits.push_back(same ? 0 : 1);
    if (!same) put_uint(s.body, id);
    tid_ = id;
    tid_state_ = kAssigned;
    return true;
}

bool EncoderState::message(const Record& r, std::vector<uint8_t>& out) {
    Seg& s = seg(0);
    s.bits.clear();
    s.body.clear();
    const Template* t = nullptr;
    if (!template_id(r.template_id, s, t)) return false;
    const Plan& p = t->plan();
    if (r.fields.size() != p.cells)
        return fail(nullptr, std::to_string(r.fields.size()) + " fields, template \"" + t->name() +
                                 "\" has " + std::to_string(p.cells));
    if (t->resets()) dict_.reset();
    if (!run(p.instrs.data(), p.body_begin, p.body_end, r.fields, 0)) return false;
    write_pmap(s.bits, out);
    out.insert(out.end(), s.body.begin(), s.body.end());
    return true;
}

bool EncoderState::run(const Instr* ins, uint32_t b, uint32_t e, const std::vector<Value>& f,
                       size_t depth) {
    // One journal entry per plain instruction at most; a group, sequence or
    // template reference spends entries of its own (one run per element), so
    // the room for the rest of the segment is reserved again after it.
    dict_.reserve(e - b);
    for (uint32_t k = b; k < e; ++k) {
        if (!step(ins, ins[k], f, depth)) return false;
        if (ins[k].kind >= Kind::Group) dict_.reserve(e - k);
    }
    return true;
}

bool EncoderState::step(const Instr* ins, const Instr& in, const std::vector<Value>& f,
                        size_t depth) {
    const Value& v = f[in.cell];
    Seg& s = segs_[depth];
    bool present = false;
    switch (in.kind) {
        case Kind::Int: {
            i128 x = 0;
            return get_int(in, v, present, x) && enc_int(in, in.num, present, x, s);
        }
        case Kind::Dec: {
            Decimal d;
            return get_dec(in, v, present, d) && enc_dec(in, present, d, s);
        }
        case Kind::DecExp: {
            Decimal d;
            return get_dec(in, v, present, d) && enc_int(in, Num::I32, present, d.exponent, s);
        }
        case Kind::DecMant: {
            Decimal d;
            if (!get_dec(in, v, present, d)) return false;
            return !present || enc_int(in, Num::I64, true, d.mantissa, s);
        }
        case Kind::Str: {
            std::string_view sv;
            return get_str(in, v, present, sv) && enc_str(in, present, sv, s);
        }
        case Kind::Group: return enc_group(ins, in, v, depth);
        case Kind::Seq: return enc_seq(ins, in, v, depth);
        case Kind::DynRef: return enc_dynref(in, v, depth);
    }
    return true;
}

// ---- integers ------------------------------------------------------------------

bool EncoderState::get_int(const Instr& in, const Value& v, bool& present, i128& x) {
    present = true;
    if (const auto* u = std::get_if<uint64_t>(&v)) x = *u;
    else if (const auto* i = std::get_if<int64_t>(&v)) x = *i;
    else if (std::holds_alternative<std::monostate>(v)) present = false;
    else return fail(&in, "value is not an integer: " + to_string(v));
    if (present && (x < num_min(in.num) || x > num_max(in.num)))
        return fail(&in, "value " + to_string(v) + " does not fit " + num_name(in.num));
    return true;
}

bool EncoderState::enc_int(const Instr& in, Num n, bool present, i128 x, Seg& s) {
    if (!present && !in.optional && in.op != Operator::Constant)
        return fail(&in, "mandatory field absent");
    switch (in.op) {
        case Operator::None:
            if (present) put_num(s.body, n, in.nullable, x);
            else put_null(s.body);
            return true;
        case Operator::Constant:
            if (present && x != widen(n, in.init_i)) return fail(&in, "value differs from the constant");
            if (in.optional) s.bits.push_back(present);
            return true;
        case Operator::Default: {
            const bool implied = present ? in.has_init && x == widen(n, in.init_i) : !in.has_init;
            s.bits.push_back(!implied);
            if (!implied && present) put_num(s.body, n, in.nullable, x);
            else if (!implied) put_null(s.body);
            return true;
        }
        case Operator::Copy:
        case Operator::Increment: return int_copy(in, n, present, x, s);
        case Operator::Delta: return int_delta(in, n, present, x, s);
        case Operator::Tail: break;
    }
    return fail(&in, "operator not applicable");
}

bool EncoderState::int_copy(const Instr& in, Num n, bool present, i128 x, Seg& s) {
    const uint8_t st = dict_.state(in.slot);
    const bool inc = in.op == Operator::Increment;
    if (st == kAssigned && dict_.header(in.slot).type == in.slot_type) {
        const i128 implied = widen(n, dict_.header(in.slot).i) + (inc ? 1 : 0);
        if (present && implied == x) {
            s.bits.push_back(0);
            if (inc) dict_.set_int(in.slot, in.slot_type, static_cast<int64_t>(static_cast<uint64_t>(x)));
            return true;
        }
    } else if (st == kUndefined) {
        if (in.has_init ? present && x == widen(n, in.init_i) : !present && in.optional) {
            s.bits.push_back(0);
            if (in.has_init) dict_.set_int(in.slot, in.slot_type, in.init_i);
            else dict_.set_empty(in.slot);
            return true;
        }
    } else if (st == kEmpty && !present && in.optional) {
        s.bits.push_back(0);
        return true;
    }
    s.bits.push_back(1);
    if (present) {
        put_num(s.body, n, in.nullable, x);
        dict_.set_int(in.slot, in.slot_type, static_cast<int64_t>(static_cast<uint64_t>(x)));
    } else {
        put_null(s.body);
        dict_.set_empty(in.slot);
    }
    return true;
}

bool EncoderState::int_delta(const Instr& in, Num n, bool present, i128 x, Seg& s) {
    if (!present) {
        put_null(s.body);
        return true;
    }
    i128 base = 0;
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned) {
        if (dict_.header(in.slot).type != in.slot_type)
            return fail(&in, "D4: dictionary entry holds another type");
        base = widen(n, dict_.header(in.slot).i);
    } else if (st == kUndefined) {
        base = in.has_init ? widen(n, in.init_i) : 0;
    } else {
        return fail(&in, "D6: delta base is empty");
    }
    const i128 d = x - base;
    if (d < INT64_MIN || d > INT64_MAX) return fail(&in, "delta does not fit int64");
    put_signed(s.body, in.nullable, d);
    dict_.set_int(in.slot, in.slot_type, static_cast<int64_t>(static_cast<uint64_t>(x)));
    return true;
}

// ---- decimals --------------------------------------------------------------------

bool EncoderState::get_dec(const Instr& in, const Value& v, bool& present, Decimal& d) {
    present = true;
    if (const auto* p = std::get_if<Decimal>(&v)) d = *p;
    else if (std::holds_alternative<std::monostate>(v)) present = false;
    else return fail(&in, "value is not a decimal: " + to_string(v));
    if (present && (d.exponent < -63 || d.exponent > 63))
        return fail(&in, "R1: exponent " + std::to_string(d.exponent) + " outside -63..63");
    return true;
}

void EncoderState::put_dec(const Instr& in, bool nullable, bool present, const Decimal& d, Seg& s) {
    (void)in;
    if (!present) {
        put_null(s.body);
        return;
    }
    put_signed(s.body, nullable, d.exponent);
    put_int(s.body, d.mantissa);
}

bool EncoderState::enc_dec(const Instr& in, bool present, const Decimal& d, Seg& s) {
    if (!present && !in.optional && in.op != Operator::Constant)
        return fail(&in, "mandatory field absent");
    const Decimal init{in.init_exp, in.init_i};
    switch (in.op) {
        case Operator::None: put_dec(in, in.nullable, present, d, s); return true;
        case Operator::Constant:
            if (present && !(d == init)) return fail(&in, "value differs from the constant");
            if (in.optional) s.bits.push_back(present);
            return true;
        case Operator::Default: {
            const bool implied = present ? in.has_init && d == init : !in.has_init;
            s.bits.push_back(!implied);
            if (!implied) put_dec(in, in.nullable, present, d, s);
            return true;
        }
        case Operator::Copy: return dec_copy(in, present, d, s);
        case Operator::Delta: return dec_delta(in, present, d, s);
        default: break;
    }
    return fail(&in, "operator not applicable");
}

bool EncoderState::dec_copy(const Instr& in, bool present, const Decimal& d, Seg& s) {
    const uint8_t st = dict_.state(in.slot);
    const Decimal init{in.init_exp, in.init_i};
    if (st == kAssigned && dict_.header(in.slot).type == kSlotDec) {
        const SlotHeader& h = dict_.header(in.slot);
        if (present && d == Decimal{static_cast<int32_t>(h.i), h.m}) {
            s.bits.push_back(0);
            return true;
        }
    } else if (st == kUndefined) {
        if (in.has_init ? present && d == init : !present && in.optional) {
            s.bits.push_back(0);
            if (in.has_init) dict_.set_dec(in.slot, init.exponent, init.mantissa);
            else dict_.set_empty(in.slot);
            return true;
        }
    } else if (st == kEmpty && !present && in.optional) {
        s.bits.push_back(0);
        return true;
    }
    s.bits.push_back(1);
    put_dec(in, in.nullable, present, d, s);
    if (present) dict_.set_dec(in.slot, d.exponent, d.mantissa);
    else dict_.set_empty(in.slot);
    return true;
}

bool EncoderState::dec_delta(const Instr& in, bool present, const Decimal& d, Seg& s) {
    if (!present) {
        put_null(s.body);
        return true;
    }
    int64_t be = 0, bm = 0;
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned) {
        const SlotHeader& h = dict_.header(in.slot);
        if (h.type != kSlotDec) return fail(&in, "D4: dictionary entry holds another type");
        be = h.i;
        bm = h.m;
    } else if (st == kUndefined) {
        be = in.has_init ? in.init_exp : 0;
        bm = in.has_init ? in.init_i : 0;
    } else {
        return fail(&in, "D6: delta base is empty");
    }
    const i128 dm = static_cast<i128>(d.mantissa) - bm;
    if (dm < INT64_MIN || dm > INT64_MAX) return fail(&in, "mantissa delta does not fit int64");
    put_signed(s.body, in.nullable, d.exponent - be);
    put_int(s.body, dm);
    dict_.set_dec(in.slot, d.exponent, d.mantissa);
    return true;
}

// ---- strings, byte vectors ---------------------------------------------------------

bool EncoderState::get_str(const Instr& in, const Value& v, bool& present, std::string_view& sv) {
    present = true;
    if (std::holds_alternative<std::monostate>(v)) {
        present = false;
        return true;
    }
    if (in.str == StrKind::Bytes) {
        const auto* b = std::get_if<Bytes>(&v);
        if (!b) return fail(&in, "value is not a byte vector: " + to_string(v));
        sv = std::string_view(reinterpret_cast<const char*>(b->data.data()), b->data.size());
        return true;
    }
    const auto* s = std::get_if<std::string>(&v);
    if (!s) return fail(&in, "value is not a string: " + to_string(v));
    sv = *s;
    if (in.str == StrKind::Ascii) {
        for (const char c : sv)
            if (c & 0x80) return fail(&in, "non-ASCII byte in an ASCII string");
        if (sv.size() > 1 && sv[0] == '\0')
            return fail(&in, "ASCII string starting with NUL cannot be encoded");
    }
    return true;
}

void EncoderState::put_str(const Instr& in, bool nullable, bool present, std::string_view v,
                           Seg& s) {
    if (!present) {
        put_null(s.body);
        return;
    }
    if (in.str != StrKind::Ascii) {
        if (nullable) put_uint_null(s.body, v.size());
        else put_uint(s.body, v.size());
        s.body.insert(s.body.end(), v.begin(), v.end());
        return;
    }
    if (v.empty() || v == std::string_view("\0", 1)) {
        if (nullable) s.body.push_back(0x00);
        if (!v.empty()) s.body.push_back(0x00);
        s.body.push_back(0x80);
        return;
    }
    s.body.insert(s.body.end(), v.begin(), v.end());
    s.body.back() |= 0x80;
}

bool EncoderState::enc_str(const Instr& in, bool present, std::string_view v, Seg& s) {
    if (!present && !in.optional && in.op != Operator::Constant)
        return fail(&in, "mandatory field absent");
    switch (in.op) {
        case Operator::None: put_str(in, in.nullable, present, v, s); return true;
        case Operator::Constant:
            if (present && v != in.init_s) return fail(&in, "value differs from the constant");
            if (in.optional) s.bits.push_back(present);
            return true;
        case Operator::Default: {
            const bool implied = present ? in.has_init && v == in.init_s : !in.has_init;
            s.bits.push_back(!implied);
            if (!implied) put_str(in, in.nullable, present, v, s);
            return true;
        }
        case Operator::Copy: return str_copy(in, present, v, s);
        case Operator::Delta: return str_delta(in, present, v, s);
        case Operator::Tail: return str_tail(in, present, v, s);
        case Operator::Increment: break;
    }
    return fail(&in, "operator not applicable");
}

// Copy and tail with the bit clear give the previous value, else the initial
// value, else absent: true when that is `v` (so the bit can stay clear).
bool EncoderState::str_implied(const Instr& in, bool present, std::string_view v) {
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned)
        return dict_.header(in.slot).type == in.slot_type && present && v == dict_.str(in.slot);
    if (st == kUndefined && in.has_init) return present && v == in.init_s;
    return !present && in.optional;
}

void EncoderState::str_implied_update(const Instr& in) {
    if (dict_.state(in.slot) != kUndefined) return;
    if (in.has_init) dict_.write_str(in.slot, in.slot_type, false).assign(in.init_s);
    else dict_.set_empty(in.slot);
}

bool EncoderState::str_copy(const Instr& in, bool present, std::string_view v, Seg& s) {
    if (str_implied(in, present, v)) {
        s.bits.push_back(0);
        str_implied_update(in);
        return true;
    }
    s.bits.push_back(1);
    put_str(in, in.nullable, present, v, s);
    if (present) dict_.write_str(in.slot, in.slot_type, false).assign(v);
    else dict_.set_empty(in.slot);
    return true;
}

bool EncoderState::str_delta(const Instr& in, bool present, std::string_view v, Seg& s) {
    if (!present) {
        put_null(s.body);
        return true;
    }
    const uint8_t st = dict_.state(in.slot);
    if (st == kEmpty) return fail(&in, "D6: delta base is empty");
    if (st == kAssigned && dict_.header(in.slot).type != in.slot_type)
        return fail(&in, "D4: dictionary entry holds another type");
    const std::string_view base = st == kAssigned ? std::string_view(dict_.str(in.slot))
                                                  : std::string_view(in.init_s);
    const size_t p = common_prefix(base, v);
    const size_t q = common_suffix(base, v);
    if (v.size() - p <= v.size() - q) {  // replace the end
        put_signed(s.body, in.nullable, static_cast<i128>(base.size() - p));
        put_str(in, false, true, v.substr(p), s);
    } else {  // replace the front: -(removed + 1)
        put_signed(s.body, in.nullable, -static_cast<i128>(base.size() - q) - 1);
        put_str(in, false, true, v.substr(0, v.size() - q), s);
    }
    dict_.write_str(in.slot, in.slot_type, false).assign(v);
    return true;
}

bool EncoderState::str_tail(const Instr& in, bool present, std::string_view v, Seg& s) {
    if (str_implied(in, present, v)) {
        s.bits.push_back(0);
        str_implied_update(in);
        return true;
    }
    s.bits.push_back(1);
    if (!present) {
        put_null(s.body);
        dict_.set_empty(in.slot);
        return true;
    }
    const uint8_t st = dict_.state(in.slot);
    if (st == kAssigned && dict_.header(in.slot).type != in.slot_type)
        return fail(&in, "D4: dictionary entry holds another type");
    const std::string_view base = st == kAssigned ? std::string_view(dict_.str(in.slot))
                                                  : std::string_view(in.init_s);
    if (v.size() < base.size())
        return fail(&in, "tail operator cannot make the value shorter than the previous one");
    const std::string_view tail = v.size() == base.size() ? v.substr(common_prefix(base, v)) : v;
    put_str(in, in.nullable, true, tail, s);
    dict_.write_str(in.slot, in.slot_type, false).assign(v);
    return true;
}

// ---- composites --------------------------------------------------------------------

// Encodes the body of `in` (group or element fields `f`) one level down and
// appends its presence map and bytes to this level's body.
bool EncoderState::nested(const Instr* ins, const Instr& in, const std::vector<Value>& f,
                          size_t depth) {
    if (f.size() != in.body_cells)
        return fail(&in, std::to_string(f.size()) + " fields, want " + std::to_string(in.body_cells));
    Seg& child = seg(depth + 1);
    child.bits.clear();
    child.body.clear();
    if (!run(ins, in.body_begin, in.body_end, f, depth + 1)) return false;
    Seg& me = segs_[depth];
    if (in.body_pmap) write_pmap(child.bits, me.body);
    me.body.insert(me.body.end(), child.body.begin(), child.body.end());
    return true;
}

bool EncoderState::enc_group(const Instr* ins, const Instr& in, const Value& v, size_t depth) {
    const auto* g = std::get_if<Group>(&v);
    if (!g && !std::holds_alternative<std::monostate>(v))
        return fail(&in, "value is not a group: " + to_string(v));
    if (!g && !in.optional) return fail(&in, "mandatory group absent");
    if (in.optional) segs_[depth].bits.push_back(g != nullptr);
    if (!g) return true;
    if (!nested(ins, in, (*g)->fields, depth)) {
        prefix(*in.name);
        return false;
    }
    return true;
}

bool EncoderState::enc_seq(const Instr* ins, const Instr& in, const Value& v, size_t depth) {
    const auto* q = std::get_if<Sequence>(&v);
    if (!q && !std::holds_alternative<std::monostate>(v))
        return fail(&in, "value is not a sequence: " + to_string(v));
    const Instr& len = ins[in.len_instr];
    const size_t n = q ? q->elements.size() : 0;
    if (n > UINT32_MAX) return fail(&in, "sequence too long");
    if (!enc_int(len, Num::U32, q != nullptr, static_cast<i128>(n), segs_[depth])) return false;
    for (size_t k = 0; k < n; ++k) {
        if (!nested(ins, in, q->elements[k].fields, depth)) {
            prefix(*in.name + "[" + std::to_string(k) + "]");
            return false;
        }
    }
    return true;
}

// Static nesting is bounded by the templates; dynamic references are not.
constexpr size_t kMaxEncodeDepth = 256;

bool EncoderState::enc_dynref(const Instr& in, const Value& v, size_t depth) {
    const auto* g = std::get_if<Group>(&v);
    if (!g) return fail(&in, "dynamic templateRef needs a Group with template_id");
    // Segments nest with every group, sequence and templateRef; a record
    // nested deeper than any decoder accepts is refused, not recursed into.
    if (depth >= kMaxEncodeDepth) return fail(&in, "nested deeper than " + std::to_string(kMaxEncodeDepth));
    Seg& child = seg(depth + 1);
    child.bits.clear();
    child.body.clear();
    const Template* t = nullptr;
    if (!template_id((*g)->template_id, child, t)) return false;
    const Plan& p = t->plan();
    if ((*g)->fields.size() != p.cells) return fail(&in, "field count differs from the template");
    if (!run(p.instrs.data(), p.body_begin, p.body_end, (*g)->fields, depth + 1)) {
        prefix(*in.name);
        return false;
    }
    Seg& me = segs_[depth];
    write_pmap(child.bits, me.body);
    me.body.insert(me.body.end(), child.body.begin(), child.body.end());
    return true;
}

}  // namespace detail

Encoder::Encoder(const TemplateSet& set) : s_(std::make_unique<detail::EncoderState>(set)) {}
Encoder::~Encoder() = default;
Result<void> Encoder::encode(const Record& r, std::vector<uint8_t>& out) { return s_->encode(r, out); }
void Encoder::reset() { s_->reset(); }

}  // namespace etcpipe::fast
