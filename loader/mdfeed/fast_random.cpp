// Random Records for tests and benchmarks: every value is one the encoder can
// send for its field (see random_record() in fast.hpp for the constraints).
#include <algorithm>

#include "mdfeed/fast_internal.hpp"

namespace etcpipe::fast {

namespace {

using detail::i128;

bool has_dynamic_ref(const std::vector<FieldInfo>& fields) {
    return std::any_of(fields.begin(), fields.end(), [](const FieldInfo& f) {
        return f.type == FieldType::TemplateRef || has_dynamic_ref(f.children);
    });
}

struct Gen {
    std::mt19937_64& rng;
    const RandomOptions& o;

    bool chance(double p) { return std::uniform_real_distribution<double>(0.0, 1.0)(rng) < p; }
    size_t below(size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; }

    // Mostly small magnitudes (random bit width), sometimes the extremes.
    i128 integer(i128 lo, i128 hi) {
        if (o.extremes && chance(0.08)) {
            const i128 picks[] = {lo, hi, lo + 1, hi - 1, 0, 1, -1};
            const i128 v = picks[below(7)];
            return std::clamp(v, lo, hi);
        }
        const int width = static_cast<int>(below(65));
        i128 v = width == 64 ? static_cast<i128>(rng()) : static_cast<i128>(rng() & ((uint64_t{1} << width) - 1));
        if (lo < 0 && chance(0.5)) v = -v;
        if (v < lo || v > hi) v = lo + (v < 0 ? -v : v) % (hi - lo + 1);
        return v;
    }

    static bool delta_coded(const OperatorSpec& s) { return s.op == Operator::Delta; }

    Value int_value(const FieldInfo& f) {
        const bool wide_delta = delta_coded(f.op);
        switch (f.type) {
            case FieldType::UInt32: return static_cast<uint64_t>(integer(0, UINT32_MAX));
            case FieldType::Int32: return static_cast<int64_t>(integer(INT32_MIN, INT32_MAX));
            case FieldType::UInt64:
                return static_cast<uint64_t>(integer(0, wide_delta ? INT64_MAX : static_cast<i128>(UINT64_MAX)));
            default:
                if (wide_delta) return static_cast<int64_t>(integer(-(i128(1) << 62), (i128(1) << 62) - 1));
                return static_cast<int64_t>(integer(INT64_MIN, INT64_MAX));
        }
    }

    Value decimal_value(const FieldInfo& f) {
        Decimal d;
        const bool mant_delta = f.split_decimal ? delta_coded(f.mantissa) : delta_coded(f.op);
        const i128 lim = mant_delta ? i128(1) << 62 : static_cast<i128>(INT64_MAX);
        d.mantissa = static_cast<int64_t>(integer(mant_delta ? -lim : INT64_MIN, mant_delta ? lim - 1 : lim));
        if (o.extremes && chance(0.05)) d.exponent = chance(0.5) ? 63 : -63;
        else d.exponent = static_cast<int32_t>(below(12)) - 9;
        if (f.split_decimal && f.exponent.op == Operator::Constant)
            d.exponent = static_cast<int32_t>(std::get<int64_t>(f.exponent.initial));
        if (f.split_decimal && f.mantissa.op == Operator::Constant)
            d.mantissa = std::get<int64_t>(f.mantissa.initial);
        return d;
    }

    // Under tail the length is fixed (never shorter than the base value).
    size_t length(const FieldInfo& f) {
        if (f.op.op == Operator::Tail) {
            size_t init = 0;
            if (const auto* s = std::get_if<std::string>(&f.op.initial)) init = s->size();
            if (const auto* b = std::get_if<Bytes>(&f.op.initial)) init = b->data.size();
            return std::max(o.max_string_length, init);
        }
        if (o.extremes && chance(0.05)) return 0;
        return below(o.max_string_length + 1);
    }

    std::string ascii(const FieldInfo& f) {
        if (o.extremes && f.op.op != Operator::Tail && chance(0.01)) return std::string(1, '\0');
        std::string s(length(f), ' ');
        for (char& c : s)
            c = static_cast<char>(chance(0.05) ? 1 + below(127) : 0x20 + below(95));
        return s;
    }

    void code_point(std::string& s) {
        const size_t kind = below(20);
        uint32_t cp;
        if (kind < 12) cp = static_cast<uint32_t>(0x20 + below(95));
        else if (kind < 16) cp = static_cast<uint32_t>(0x80 + below(0x780));
        else if (kind < 19) cp = static_cast<uint32_t>(0x800 + below(0xd000));  // below the surrogates
        else cp = static_cast<uint32_t>(0x10000 + below(0x100000));
        if (cp < 0x80) {
            s += static_cast<char>(cp);
        } else if (cp < 0x800) {
            s += static_cast<char>(0xc0 | cp >> 6);
            s += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            s += static_cast<char>(0xe0 | cp >> 12);
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            s += static_cast<char>(0xf0 | cp >> 18);
            s += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }

    std::string unicode(const FieldInfo& f) {
        if (f.op.op == Operator::Tail) {
            std::string s(length(f), ' ');
            for (char& c : s) c = static_cast<char>(0x20 + below(95));
            return s;
        }
        std::string s;
        const size_t n = length(f);
        for (size_t k = 0; k < n; ++k) code_point(s);
        return s;
    }

    Bytes bytes(const FieldInfo& f) {
        Bytes b;
        b.data.resize(length(f));
        for (uint8_t& x : b.data) x = static_cast<uint8_t>(rng());
        return b;
    }

    Value dynamic() {
        if (!o.templates) return {};
        std::vector<const Template*> flat;
        for (const Template* t : *o.templates)
            if (!has_dynamic_ref(t->fields())) flat.push_back(t);
        if (flat.empty()) return {};
        const Template* t = flat[below(flat.size())];
        Record r = record(t->fields());
        r.template_id = t->id();
        return Group(std::move(r));
    }

    Value value(const FieldInfo& f) {
        if (f.op.op == Operator::Constant) {
            if (f.optional && chance(o.absent_probability)) return {};
            return f.op.initial;
        }
        if (f.optional && chance(o.absent_probability)) return {};
        switch (f.type) {
            case FieldType::UInt32:
            case FieldType::Int32:
            case FieldType::UInt64:
            case FieldType::Int64: return int_value(f);
            case FieldType::Decimal: return decimal_value(f);
            case FieldType::Ascii: return ascii(f);
            case FieldType::Unicode: return unicode(f);
            case FieldType::Bytes: return bytes(f);
            case FieldType::Sequence: {
                Sequence q;
                size_t n = o.extremes && chance(0.05) ? 0 : below(o.max_sequence_length + 1);
                if (f.length.op == Operator::Constant)
                    n = static_cast<size_t>(std::get<uint64_t>(f.length.initial));
                for (size_t k = 0; k < n; ++k) q.elements.push_back(record(f.children));
                return q;
            }
            case FieldType::Group: return Group(record(f.children));
            case FieldType::TemplateRef: return dynamic();
        }
        return {};
    }

    Record record(const std::vector<FieldInfo>& fields) {
        Record r;
        r.fields.reserve(fields.size());
        for (const FieldInfo& f : fields) r.fields.push_back(value(f));
        return r;
    }
};

}  // namespace

Record random_record(const Template& t, std::mt19937_64& rng, const RandomOptions& o) {
    Gen g{rng, o};
    Record r = g.record(t.fields());
    r.template_id = t.id();
    return r;
}

}  // namespace etcpipe::fast
