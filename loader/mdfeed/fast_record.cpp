// Value types of the FAST codec: exact decimal formatting, Record equality and
// a one-line text form for test failure messages.
#include <charconv>

#include "mdfeed/fast.hpp"

namespace etcpipe::fast {

void append_decimal(const Decimal& d, std::string& out) {
    char digits[24];
    const uint64_t mag = d.mantissa < 0 ? 0 - static_cast<uint64_t>(d.mantissa)
                                        : static_cast<uint64_t>(d.mantissa);
    const auto r = std::to_chars(digits, digits + sizeof digits, mag);
    const auto len = static_cast<size_t>(r.ptr - digits);
    if (d.mantissa < 0) out += '-';
    if (d.exponent >= 0) {
        out.append(digits, len);
        if (mag != 0) out.append(static_cast<size_t>(d.exponent), '0');
        return;
    }
    const auto frac = static_cast<size_t>(-static_cast<int64_t>(d.exponent));
    if (len > frac) {
        out.append(digits, len - frac);
        out += '.';
        out.append(digits + (len - frac), frac);
    } else {
        out += "0.";
        out.append(frac - len, '0');
        out.append(digits, len);
    }
}

std::string Decimal::to_string() const {
    std::string s;
    append_decimal(*this, s);
    return s;
}

bool operator==(const Sequence& a, const Sequence& b) { return a.elements == b.elements; }

bool operator==(const Group& a, const Group& b) {
    const Record* x = a.operator->();
    const Record* y = b.operator->();
    if (!x || !y) return x == y;
    return *x == *y;
}

bool operator==(const Record& a, const Record& b) {
    return a.template_id == b.template_id && a.fields == b.fields;
}

namespace {

void quote(const std::string& s, std::string& out) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20 || c >= 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += ch;
        }
    }
    out += '"';
}

void append_value(const Value& v, std::string& out);

void append_record(const Record& r, std::string& out) {
    out += '{';
    if (r.template_id) out += std::to_string(r.template_id) + "|";
    for (size_t i = 0; i < r.fields.size(); ++i) {
        out += i ? ", " : " ";
        append_value(r.fields[i], out);
    }
    out += " }";
}

void append_value(const Value& v, std::string& out) {
    static const char hex[] = "0123456789abcdef";
    switch (v.index()) {
        case 0: out += '-'; break;
        case 1: out += std::to_string(std::get<int64_t>(v)); break;
        case 2: out += std::to_string(std::get<uint64_t>(v)) + "u"; break;
        case 3: {
            const Decimal& d = std::get<Decimal>(v);
            append_decimal(d, out);
            out += "(e" + std::to_string(d.exponent) + ")";
            break;
        }
        case 4: quote(std::get<std::string>(v), out); break;
        case 5:
            out += "0x";
            for (const uint8_t b : std::get<Bytes>(v).data) {
                out += hex[b >> 4];
                out += hex[b & 15];
            }
            break;
        case 6: {
            out += '[';
            const auto& els = std::get<Sequence>(v).elements;
            for (size_t k = 0; k < els.size(); ++k) {
                if (k) out += ", ";
                append_record(els[k], out);
            }
            out += ']';
            break;
        }
        case 7: {
            const Group& g = std::get<Group>(v);
            if (g.operator->()) append_record(*g, out);
            else out += "{null}";
            break;
        }
        default: break;
    }
}

}  // namespace

std::string to_string(const Value& v) {
    std::string s;
    append_value(v, s);
    return s;
}

std::string to_string(const Record& r) {
    std::string s;
    append_record(r, s);
    return s;
}

}  // namespace etcpipe::fast
