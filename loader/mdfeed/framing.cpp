// Market-data framing: STEP, length-prefixed blocks, UDP sequence tracking.
#include "mdfeed/framing.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace etcpipe::md {

namespace {

struct FramingName {
    Framing f;
    const char* name;
};
constexpr FramingName kFramings[] = {
    {Framing::Raw, "raw"},         {Framing::Step, "step"},   {Framing::Len32Le, "len32le"},
    {Framing::Len32Be, "len32be"}, {Framing::Block, "block"}, {Framing::Udp, "udp"},
};

constexpr uint8_t kSohByte = 0x01;

bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

// Up to `max` bytes of buf from `off`, quoted, with SOH and other
// non-printables written as \xNN, so an error stays one line.
std::string excerpt(std::span<const uint8_t> buf, size_t off, size_t max = 12) {
    std::string s = "\"";
    const size_t end = std::min(buf.size(), off + max);
    static const char* hex = "0123456789abcdef";
    for (size_t i = off; i < end; ++i) {
        const uint8_t c = buf[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            s += static_cast<char>(c);
        } else {
            s += "\\x";
            s += hex[c >> 4];
            s += hex[c & 15];
        }
    }
    if (off >= buf.size()) s += "<end>";
    s += "\"";
    return s;
}

std::string num(uint64_t v) { return std::to_string(v); }

StepResult step_error(size_t off, std::string msg) {
    StepResult r;
    r.status = ParseStatus::Error;
    r.error_offset = off;
    r.error = std::move(msg) + " at offset " + num(off);
    return r;
}

StepResult need_more() { return StepResult{}; }

// Compares the literal `lit` with buf at `pos`: 1 when it matches, 0 when buf
// ends inside a matching prefix, -1 (and *bad = first mismatching offset) else.
int match_literal(std::span<const uint8_t> buf, size_t pos, std::string_view lit, size_t* bad) {
    for (size_t i = 0; i < lit.size(); ++i) {
        if (pos + i >= buf.size()) return 0;
        if (buf[pos + i] != static_cast<uint8_t>(lit[i])) {
            *bad = pos + i;
            return -1;
        }
    }
    return 1;
}

// Parses an unsigned decimal number (1..19 digits). False when empty, too
// long or not all digits.
bool parse_uint(std::string_view s, uint64_t& out) {
    if (s.empty() || s.size() > 19) return false;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    out = v;
    return true;
}

std::string_view as_sv(std::span<const uint8_t> buf, size_t begin, size_t end) {
    return {reinterpret_cast<const char*>(buf.data()) + begin, end - begin};
}

size_t decimal_digits(uint64_t v) {
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        ++n;
    }
    return n;
}

void put(std::vector<uint8_t>& out, std::string_view s) {
    out.insert(out.end(), s.begin(), s.end());
}

void put_uint(std::vector<uint8_t>& out, uint64_t v) {
    char tmp[24];
    auto res = std::to_chars(tmp, tmp + sizeof tmp, v);
    out.insert(out.end(), tmp, res.ptr);
}

}  // namespace

Result<Framing> parse_framing(std::string_view name) {
    for (const auto& f : kFramings)
        if (name == f.name) return f.f;
    std::string list;
    for (const auto& f : kFramings) {
        if (!list.empty()) list += ", ";
        list += f.name;
    }
    return Error{ErrorKind::Usage, 0, std::string(name), "parse framing",
                 "unknown framing (expected one of: " + list + ")", ""};
}

const char* framing_name(Framing f) {
    for (const auto& x : kFramings)
        if (x.f == f) return x.name;
    return "?";
}

// ---- STEP ----------------------------------------------------------------

// Sum of n bytes, eight at a time: the bytes of each word are added in
// 16-bit lanes (two bytes per lane per word: at most 128 words per flush).
static unsigned byte_sum(const uint8_t* p, size_t n) {
    constexpr uint64_t kLo = 0x00ff00ff00ff00ffull;
    uint64_t total = 0;
    size_t i = 0;
#if defined(__SSE2__)
    {
        // psadbw against zero sums 16 bytes into two 64-bit lanes.
        const __m128i zero = _mm_setzero_si128();
        __m128i acc = zero;
        for (; n - i >= 16; i += 16)
            acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)), zero));
        total = static_cast<uint64_t>(_mm_cvtsi128_si64(acc)) +
                static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc)));
    }
#endif
    while (n - i >= 8) {
        uint64_t acc = 0;
        const size_t words = std::min<size_t>((n - i) / 8, 128);
        for (size_t k = 0; k < words; ++k, i += 8) {
            uint64_t w;
            std::memcpy(&w, p + i, 8);
            acc += (w & kLo) + ((w >> 8) & kLo);
        }
        acc = (acc & 0x0000ffff0000ffffull) + ((acc >> 16) & 0x0000ffff0000ffffull);
        total += (acc & 0xffffffffull) + (acc >> 32);
    }
    for (; i < n; ++i) total += p[i];
    return static_cast<unsigned>(total);
}

StepResult parse_step(std::span<const uint8_t> buf) {
    const size_t n = buf.size();
    size_t bad = 0;

    // BeginString.
    switch (match_literal(buf, 0, kStepBeginString, &bad)) {
        case 0: return need_more();
        case -1:
            return step_error(bad, "tag 8 (BeginString): expected \"8=STEP.1.0.0\\x01\", got " +
                                       excerpt(buf, 0, kStepBeginString.size()));
        default: break;
    }
    size_t pos = kStepBeginString.size();

    // BodyLength.
    switch (match_literal(buf, pos, "9=", &bad)) {
        case 0: return need_more();
        case -1:
            return step_error(pos, "tag 9 (BodyLength): expected \"9=\" after the BeginString, got " +
                                       excerpt(buf, pos, 4));
        default: break;
    }
    pos += 2;
    const size_t len_start = pos;
    uint64_t body_len = 0;
    for (;;) {
        if (pos >= n) return need_more();
        const uint8_t c = buf[pos];
        if (c == kSohByte) break;
        if (!is_digit(c))
            return step_error(pos, "tag 9 (BodyLength): expected a digit or SOH, got " +
                                       excerpt(buf, pos, 1));
        body_len = body_len * 10 + (c - '0');
        if (body_len > kStepMaxBodyLength)
            return step_error(len_start, "tag 9 (BodyLength): value starting " +
                                             excerpt(buf, len_start, pos + 1 - len_start) + " exceeds the cap of " +
                                             num(kStepMaxBodyLength) + " bytes");
        ++pos;
    }
    if (pos == len_start) return step_error(len_start, "tag 9 (BodyLength): empty value");
    const size_t body_start = pos + 1;
    const size_t body_end = body_start + body_len;
    // Built only for error messages.
    const auto body_desc = [&] {
        return "BodyLength 9=" + num(body_len) + " ends the body at offset " + num(body_end);
    };

    // Body fields.
    StepResult r;
    bool have95 = false;
    uint64_t len95 = 0;
    pos = body_start;
    while (pos < body_end) {
        const size_t field = pos;
        // The trailer inside the body: BodyLength is too big (no other tag is "10").
        if (field + 3 <= n && buf[field] == '1' && buf[field + 1] == '0' && buf[field + 2] == '=')
            return step_error(field, "tag 9 (BodyLength) wrong: the trailer \"10=\" comes at offset " +
                                         num(field) + ", inside the body (" + body_desc() +
                                         "; BodyLength would be " + num(field - body_start) + ")");
        uint32_t tag = 0;
        size_t digits = 0;
        for (;;) {
            if (pos >= n) return need_more();
            if (pos >= body_end)
                return step_error(field, "tag 9 (BodyLength) wrong: the field at offset " + num(field) +
                                             " crosses the end of the body (" + body_desc() + ")");
            const uint8_t c = buf[pos];
            if (c == '=') break;
            if (c == kSohByte)
                return step_error(field, "field without '=': " + excerpt(buf, field, pos + 1 - field));
            if (!is_digit(c)) {
                // "49A␁" lacks its '='; "4x=A␁" has a bad tag.
                size_t q = pos;
                while (q < n && buf[q] != '=' && buf[q] != kSohByte) ++q;
                if (q < n && buf[q] == kSohByte)
                    return step_error(field, "field without '=': " + excerpt(buf, field, q + 1 - field));
                return step_error(pos, "field at offset " + num(field) + ": tag must be digits, got " +
                                           excerpt(buf, pos, 1));
            }
            if (++digits > 9)
                return step_error(field, "field at offset " + num(field) + ": tag longer than 9 digits");
            tag = tag * 10 + (c - '0');
            ++pos;
        }
        if (digits == 0) return step_error(field, "field without a tag before '='");
        const size_t vstart = ++pos;

        if (tag == 96) {
            if (!have95)
                return step_error(field, "tag 96 (RawData) without a preceding tag 95 (RawDataLength)");
            const size_t vend = vstart + len95;
            if (vend + 1 > body_end) {
                if (vend + 4 <= n && buf[vend] == kSohByte && buf[vend + 1] == '1' && buf[vend + 2] == '0' &&
                    buf[vend + 3] == '=')
                    return step_error(field, "tag 9 (BodyLength) wrong: tag 96 (95=" + num(len95) +
                                                 " bytes) ends at offset " + num(vend + 1) +
                                                 ", past the end of the body (" + body_desc() +
                                                 "; BodyLength would be " + num(vend + 1 - body_start) + ")");
                const size_t left = body_end > vstart ? body_end - vstart - 1 : 0;
                return step_error(vstart, "tag 96 (RawData) shorter than tag 95 says: expected 95=" +
                                              num(len95) + " bytes, only " + num(left) +
                                              " fit before the end of the body (" + body_desc() + ")");
            }
            if (vend >= n) return need_more();
            if (buf[vend] != kSohByte)
                return step_error(vend, "tag 96 (RawData) does not end where tag 95 says: expected SOH after 95=" +
                                            num(len95) + " bytes, got " + excerpt(buf, vend, 1));
            r.fast = buf.subspan(vstart, len95);
            pos = vend + 1;
            continue;
        }

        const size_t lim = std::min(n, body_end);
        const void* soh = vstart < lim ? std::memchr(buf.data() + vstart, kSohByte, lim - vstart) : nullptr;
        if (soh == nullptr) {
            if (body_end <= n)
                return step_error(field, "tag 9 (BodyLength) wrong: field " + num(tag) + " at offset " +
                                             num(field) + " has no SOH before the end of the body (" +
                                             body_desc() + ")");
            return need_more();
        }
        const size_t vend = static_cast<size_t>(static_cast<const uint8_t*>(soh) - buf.data());
        const std::string_view value = as_sv(buf, vstart, vend);
        switch (tag) {
            case 34:
                if (!parse_uint(value, r.seq))
                    return step_error(vstart, "tag 34 (MsgSeqNum): expected a number, got " +
                                                  excerpt(buf, vstart, vend - vstart));
                break;
            case 35: r.msg_type = value; break;
            case 52: r.sending_time = value; break;
            case 95:
                if (!parse_uint(value, len95))
                    return step_error(vstart, "tag 95 (RawDataLength): expected a number, got " +
                                                  excerpt(buf, vstart, vend - vstart));
                have95 = true;
                break;
            default: break;
        }
        pos = vend + 1;
    }

    // Trailer: "10=" three digits SOH.
    switch (match_literal(buf, body_end, "10=", &bad)) {
        case 0: return need_more();
        case -1: {
            std::string msg = "missing trailer: expected \"10=\" at offset " + num(body_end) + " (" +
                              body_desc() + "), got " + excerpt(buf, body_end, 6);
            // Point at the real trailer when it is in sight.
            for (size_t i = body_end; i + 4 <= n; ++i) {
                if (buf[i] == kSohByte && buf[i + 1] == '1' && buf[i + 2] == '0' && buf[i + 3] == '=') {
                    msg += "; \"10=\" found at offset " + num(i + 1) + " (tag 9 BodyLength would be " +
                           num(i + 1 - body_start) + ")";
                    break;
                }
            }
            return step_error(body_end, msg);
        }
        default: break;
    }
    const size_t ck = body_end + 3;
    for (size_t i = 0; i < 3; ++i) {
        if (ck + i >= n) return need_more();
        if (!is_digit(buf[ck + i]))
            return step_error(ck, "tag 10 (CheckSum): expected 3 digits, got " + excerpt(buf, ck, 4));
    }
    if (ck + 3 >= n) return need_more();
    if (buf[ck + 3] != kSohByte)
        return step_error(ck + 3, "tag 10 (CheckSum): expected SOH after 3 digits, got " +
                                      excerpt(buf, ck + 3, 1));
    const unsigned sum = byte_sum(buf.data(), body_end) & 0xff;
    const unsigned got = static_cast<unsigned>((buf[ck] - '0') * 100 + (buf[ck + 1] - '0') * 10 + (buf[ck + 2] - '0'));
    if (got != sum) {
        char want[4];
        want[0] = static_cast<char>('0' + sum / 100);
        want[1] = static_cast<char>('0' + sum / 10 % 10);
        want[2] = static_cast<char>('0' + sum % 10);
        want[3] = 0;
        return step_error(ck, std::string("tag 10 (CheckSum): expected ") + want +
                                  " (sum of bytes 0.." + num(body_end - 1) + " mod 256), got " +
                                  excerpt(buf, ck, 3));
    }
    r.status = ParseStatus::Ok;
    r.consumed = ck + 4;
    return r;
}

size_t find_step_begin(std::span<const uint8_t> buf) {
    const uint8_t* p = buf.data();
    const size_t n = buf.size();
    const size_t hl = kStepBeginString.size();
    size_t i = 0;
    while (i < n) {
        const void* q = std::memchr(p + i, '8', n - i);
        if (q == nullptr) break;
        const size_t j = static_cast<size_t>(static_cast<const uint8_t*>(q) - p);
        const size_t avail = std::min(hl, n - j);
        if (std::memcmp(p + j, kStepBeginString.data(), avail) == 0) return j;
        i = j + 1;
    }
    return n;
}

void append_step(std::vector<uint8_t>& out, std::span<const uint8_t> fast, uint64_t seq,
                 std::string_view msg_type, std::string_view sending_time, std::string_view sender,
                 std::string_view target) {
    // Field lengths: tag, '=', value, SOH.
    const size_t body_len = (3 + msg_type.size() + 1) + (3 + sender.size() + 1) + (3 + target.size() + 1) +
                            (3 + decimal_digits(seq) + 1) + (3 + sending_time.size() + 1) +
                            (3 + decimal_digits(fast.size()) + 1) + (3 + fast.size() + 1);
    const size_t start = out.size();
    out.reserve(start + kStepBeginString.size() + 3 + decimal_digits(body_len) + body_len + 7);
    put(out, kStepBeginString);
    put(out, "9=");
    put_uint(out, body_len);
    out.push_back(kSohByte);
    put(out, "35=");
    put(out, msg_type);
    out.push_back(kSohByte);
    put(out, "49=");
    put(out, sender);
    out.push_back(kSohByte);
    put(out, "56=");
    put(out, target);
    out.push_back(kSohByte);
    put(out, "34=");
    put_uint(out, seq);
    out.push_back(kSohByte);
    put(out, "52=");
    put(out, sending_time);
    out.push_back(kSohByte);
    put(out, "95=");
    put_uint(out, fast.size());
    out.push_back(kSohByte);
    put(out, "96=");
    out.insert(out.end(), fast.begin(), fast.end());
    out.push_back(kSohByte);
    unsigned sum = 0;
    for (size_t i = start; i < out.size(); ++i) sum += out[i];
    sum &= 0xff;
    put(out, "10=");
    out.push_back(static_cast<uint8_t>('0' + sum / 100));
    out.push_back(static_cast<uint8_t>('0' + sum / 10 % 10));
    out.push_back(static_cast<uint8_t>('0' + sum % 10));
    out.push_back(kSohByte);
}

// ---- blocks ----------------------------------------------------------------

namespace {

BlockResult block_error(std::string msg) {
    BlockResult r;
    r.status = ParseStatus::Error;
    r.error = std::move(msg);
    return r;
}

BlockResult block_payload(std::span<const uint8_t> buf, size_t prefix, uint64_t len, const char* what) {
    if (len > kMaxBlockLength)
        return block_error(std::string(what) + ": length " + num(len) + " exceeds the cap of " +
                           num(kMaxBlockLength) + " bytes");
    if (buf.size() - prefix < len) return BlockResult{};
    BlockResult r;
    r.status = ParseStatus::Ok;
    r.consumed = prefix + static_cast<size_t>(len);
    r.payload = buf.subspan(prefix, static_cast<size_t>(len));
    return r;
}

}  // namespace

BlockResult parse_block(std::span<const uint8_t> buf, Framing kind) {
    switch (kind) {
        case Framing::Len32Le:
        case Framing::Len32Be: {
            if (buf.size() < 4) return BlockResult{};
            const uint32_t len =
                kind == Framing::Len32Le
                    ? uint32_t{buf[0]} | uint32_t{buf[1]} << 8 | uint32_t{buf[2]} << 16 | uint32_t{buf[3]} << 24
                    : uint32_t{buf[3]} | uint32_t{buf[2]} << 8 | uint32_t{buf[1]} << 16 | uint32_t{buf[0]} << 24;
            return block_payload(buf, 4, len, kind == Framing::Len32Le ? "len32le prefix" : "len32be prefix");
        }
        case Framing::Block: {
            // Stop-bit encoding: 7 bits a byte, most significant first, the
            // last byte has bit 7 set. A uInt32 takes at most 5 bytes.
            uint64_t v = 0;
            for (size_t i = 0; i < 5; ++i) {
                if (i >= buf.size()) return BlockResult{};
                const uint8_t b = buf[i];
                v = v << 7 | (b & 0x7f);
                if (b & 0x80) return block_payload(buf, i + 1, v, "block length");
                // Whatever follows only makes the value bigger: fail early.
                if ((v << 7) > kMaxBlockLength)
                    return block_error("block length: more than " + num(v << 7) + " (" + num(i + 1) +
                                       " bytes without a stop bit) exceeds the cap of " +
                                       num(kMaxBlockLength) + " bytes");
            }
            return block_error("block length: no stop bit within 5 bytes");
        }
        case Framing::Raw:
        case Framing::Step:
        case Framing::Udp: break;
    }
    return block_error(std::string("parse_block: framing '") + framing_name(kind) +
                       "' has no length prefix");
}

void append_block(std::vector<uint8_t>& out, std::span<const uint8_t> payload, Framing kind) {
    const auto len = static_cast<uint32_t>(payload.size());
    switch (kind) {
        case Framing::Len32Le:
            for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(len >> (8 * i)));
            break;
        case Framing::Len32Be:
            for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(len >> (8 * i)));
            break;
        case Framing::Block: {
            int groups = 1;
            while (groups < 5 && (len >> (7 * groups)) != 0) ++groups;
            for (int g = groups - 1; g >= 0; --g) {
                auto b = static_cast<uint8_t>((len >> (7 * g)) & 0x7f);
                if (g == 0) b |= 0x80;
                out.push_back(b);
            }
            break;
        }
        case Framing::Raw:
        case Framing::Step:
        case Framing::Udp: return;
    }
    out.insert(out.end(), payload.begin(), payload.end());
}

// ---- UDP -----------------------------------------------------------------

UdpDatagram split_udp(std::span<const uint8_t> datagram, const UdpOptions& opt) {
    UdpDatagram d;
    if (!opt.seq_preamble) {
        d.messages = datagram;
        return d;
    }
    if (datagram.size() < 4) {
        d.status = ParseStatus::Error;
        return d;
    }
    d.has_seq = true;
    d.seq = uint32_t{datagram[0]} << 24 | uint32_t{datagram[1]} << 16 | uint32_t{datagram[2]} << 8 |
            uint32_t{datagram[3]};
    d.messages = datagram.subspan(4);
    return d;
}

void SequenceTracker::observe(uint64_t channel, uint32_t seq) {
    auto [it, fresh] = chans_.try_emplace(channel);
    Channel& ch = it->second;
    auto bump = [&](uint64_t SequenceCounters::*field, uint64_t by) {
        total_.*field += by;
        ch.c.*field += by;
    };
    auto bit = [&](uint32_t s) -> uint64_t& { return ch.seen[(s % kWindow) / 64]; };
    auto mask = [](uint32_t s) { return uint64_t{1} << (s % 64); };

    bump(&SequenceCounters::datagrams, 1);
    if (fresh) {
        bump(&SequenceCounters::channels, 1);
        bump(&SequenceCounters::in_order, 1);
        bit(seq) |= mask(seq);
        ch.start = seq;
        ch.next = seq + 1;
        return;
    }
    const uint32_t ahead = seq - ch.next;  // mod 2^32
    if (ahead == 0) {
        bump(&SequenceCounters::in_order, 1);
    } else if (ahead < 0x80000000u) {
        bump(&SequenceCounters::gaps, ahead);
        bump(&SequenceCounters::gap_events, 1);
        // The skipped numbers fall into the window unseen.
        if (ahead >= kWindow) {
            ch.seen.fill(0);
        } else {
            for (uint32_t s = ch.next; s != seq; ++s) bit(s) &= ~mask(s);
        }
    } else {
        const uint32_t back = ch.next - seq;  // 1 .. 2^31
        const uint32_t since_start = ch.next - ch.start;
        if (back > since_start && since_start < kWindow) {
            bump(&SequenceCounters::before_start, 1);
        } else if (back <= kWindow && (bit(seq) & mask(seq)) == 0) {
            bump(&SequenceCounters::reordered, 1);
            bit(seq) |= mask(seq);
        } else {
            bump(&SequenceCounters::duplicates, 1);
        }
        return;
    }
    bit(seq) |= mask(seq);
    ch.next = seq + 1;
}

SequenceCounters SequenceTracker::counters(uint64_t channel) const {
    auto it = chans_.find(channel);
    return it == chans_.end() ? SequenceCounters{} : it->second.c;
}

}  // namespace etcpipe::md
