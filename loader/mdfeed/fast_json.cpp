// JSON rendering of a decoded FAST message, straight from the MessageView:
// no intermediate Record and no allocation beyond the growth of `out`.
#include <charconv>

#include "mdfeed/fast.hpp"

namespace etcpipe::fast {

namespace {

const char kHex[] = "0123456789abcdef";

template <class T>
void append_number(T v, std::string& out) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

void append_escape(unsigned c, std::string& out) {
    switch (c) {
        case '"': out += "\\\""; return;
        case '\\': out += "\\\\"; return;
        case '\b': out += "\\b"; return;
        case '\f': out += "\\f"; return;
        case '\n': out += "\\n"; return;
        case '\r': out += "\\r"; return;
        case '\t': out += "\\t"; return;
        default:
            out += "\\u00";
            out += kHex[(c >> 4) & 15];
            out += kHex[c & 15];
    }
}

// Length of the valid UTF-8 sequence at s[i], 0 if invalid (overlong forms,
// surrogates and code points above U+10FFFF are invalid).
size_t utf8_length(std::string_view s, size_t i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (b0 >= 0xc2 && b0 <= 0xdf) n = 2, cp = b0 & 0x1f;
    else if (b0 >= 0xe0 && b0 <= 0xef) n = 3, cp = b0 & 0x0f;
    else if (b0 >= 0xf0 && b0 <= 0xf4) n = 4, cp = b0 & 0x07;
    else return 0;
    if (i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if ((b & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (b & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

// JSON string; bytes that are not valid UTF-8 become U+FFFD.
void append_string(std::string_view s, std::string& out) {
    out += '"';
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c < 0x20 || c == '"' || c == '\\' || c == 0x7f) append_escape(c, out);
            else out += static_cast<char>(c);
            ++i;
            continue;
        }
        const size_t n = utf8_length(s, i);
        if (n == 0) {
            out += "\\ufffd";
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    out += '"';
}

void append_key(const std::string& name, bool& first, std::string& out) {
    if (!first) out += ',';
    first = false;
    append_string(name, out);
    out += ':';
}

void append_fields(const SegmentView& s, std::string& out);

void append_header(const MessageView& m, std::string& out) {
    out += "\"template\":";
    append_number(m.template_id(), out);
    out += ",\"name\":";
    append_string(m.tmpl().name(), out);
    out += ",\"fields\":";
    append_fields(m, out);
}

void append_field(const SegmentView& s, int i, std::string& out) {
    const FieldInfo& f = s.fields()[static_cast<size_t>(i)];
    switch (f.type) {
        case FieldType::UInt32:
        case FieldType::UInt64: append_number(*s.uint_at(i), out); return;
        case FieldType::Int32:
        case FieldType::Int64: append_number(*s.int_at(i), out); return;
        case FieldType::Decimal:
            out += '"';
            append_decimal(*s.decimal_at(i), out);
            out += '"';
            return;
        case FieldType::Ascii:
        case FieldType::Unicode: append_string(*s.string_at(i), out); return;
        case FieldType::Bytes: {
            const std::span<const uint8_t> bytes = *s.bytes_at(i);
            out += '"';
            for (const uint8_t b : bytes) {
                out += kHex[b >> 4];
                out += kHex[b & 15];
            }
            out += '"';
            return;
        }
        case FieldType::Sequence:
            out += '[';
            for (size_t k = 0; k < s.sequence_size(i); ++k) {
                if (k) out += ',';
                append_fields(*s.element(i, k), out);
            }
            out += ']';
            return;
        case FieldType::Group: append_fields(*s.group(i), out); return;
        case FieldType::TemplateRef:
            out += '{';
            append_header(*s.dynamic(i), out);
            out += '}';
            return;
    }
}

void append_fields(const SegmentView& s, std::string& out) {
    out += '{';
    bool first = true;
    for (size_t i = 0; i < s.size(); ++i) {
        const int k = static_cast<int>(i);
        if (!s.present(k)) continue;
        append_key(s.fields()[i].name, first, out);
        append_field(s, k, out);
    }
    out += '}';
}

}  // namespace

void append_json(const MessageView& m, std::string& out) { append_header(m, out); }

void append_json(const SegmentView& s, std::string& out) { append_fields(s, out); }

}  // namespace etcpipe::fast
