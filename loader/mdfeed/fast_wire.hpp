// The FAST wire format's primitives: stop-bit integers (plain and nullable),
// presence maps, and the word-at-a-time helpers the decoder's fast paths use.
// Readers never read past Cursor::end; the 8-byte loads are only made when 8
// bytes remain. Internal to loader/mdfeed.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include "mdfeed/fast_internal.hpp"

namespace etcpipe::fast::detail {

enum class Rd : uint8_t { Ok, More, Big };

inline const char* num_name(Num n) {
    switch (n) {
        case Num::U32: return "uInt32";
        case Num::I32: return "int32";
        case Num::U64: return "uInt64";
        default: return "int64";
    }
}

// ---- readers ---------------------------------------------------------------

struct Cursor {
    const uint8_t* p;
    const uint8_t* end;
};

// Presence map bits, most significant first; bits past its end are 0.
struct Pmap {
    uint64_t bits = 0;
    int left = 0;
    const uint8_t* p = nullptr;
    const uint8_t* end = nullptr;

    void load() {
        uint64_t x = 0;
        int n = 0;
        while (p < end && n < 9) {
            x = (x << 7) | (*p++ & 0x7f);
            ++n;
        }
        bits = n ? x << (64 - 7 * n) : 0;
        left = n ? 7 * n : 64;
    }
    [[gnu::always_inline]] bool take() {
        if (left == 0) [[unlikely]]
            load();
        const bool b = (bits >> 63) != 0;
        bits <<= 1;
        --left;
        return b;
    }
};

// Stop-bit integer of at most 8 bytes from p[0..7] (all readable): the
// number of bytes, or 0 when none of the 8 has the stop bit. The 7-bit groups
// are compacted with three shift/mask steps instead of a loop.
[[gnu::always_inline]] inline int varint8(const uint8_t* p, uint64_t& x) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
    const uint64_t stop = w & 0x8080808080808080ull;
    if (!stop) return 0;
    const int n = (__builtin_ctzll(stop) >> 3) + 1;
    uint64_t v = __builtin_bswap64(w & 0x7f7f7f7f7f7f7f7full) >> (64 - 8 * n);
    v = ((v & 0x7f007f007f007f00ull) >> 1) | (v & 0x007f007f007f007full);
    v = ((v & 0x3fff00003fff0000ull) >> 2) | (v & 0x00003fff00003fffull);
    v = ((v & 0x0fffffff00000000ull) >> 4) | (v & 0x000000000fffffffull);
    x = v;
    return n;
}

// The 56 bits of 8 stop-bit groups without a stop bit among them.
[[gnu::always_inline]] inline uint64_t groups8(const uint8_t* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
    uint64_t v = __builtin_bswap64(w & 0x7f7f7f7f7f7f7f7full);
    v = ((v & 0x7f007f007f007f00ull) >> 1) | (v & 0x007f007f007f007full);
    v = ((v & 0x3fff00003fff0000ull) >> 2) | (v & 0x00003fff00003fffull);
    v = ((v & 0x0fffffff00000000ull) >> 4) | (v & 0x000000000fffffffull);
    return v;
}

// Length of the stop-bit entity at p (1..8), 0 when the 8 bytes hold no stop bit.
[[gnu::always_inline]] inline int stop8(const uint8_t* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
    const uint64_t stop = w & 0x8080808080808080ull;
    return stop ? (__builtin_ctzll(stop) >> 3) + 1 : 0;
}

// Unsigned stop-bit integer. Big: the value is far beyond 64 bits.
inline Rd read_uraw(Cursor& c, u128& v) {
    const uint8_t* p = c.p;
    uint64_t x = 0;
    for (int i = 0; i < 9; ++i) {
        if (p == c.end) return Rd::More;
        const uint8_t b = *p++;
        x = (x << 7) | (b & 0x7f);
        if (b & 0x80) {
            c.p = p;
            v = x;
            return Rd::Ok;
        }
    }
    u128 w = x;
    for (;;) {
        if (p == c.end) return Rd::More;
        if (w >> 70) return Rd::Big;
        const uint8_t b = *p++;
        w = (w << 7) | (b & 0x7f);
        if (b & 0x80) break;
    }
    c.p = p;
    v = w;
    return Rd::Ok;
}

// Signed stop-bit integer: two's complement, sign in bit 6 of the first byte.
inline Rd read_sraw(Cursor& c, i128& v) {
    const uint8_t* p = c.p;
    uint64_t x = 0;
    for (int i = 1; i <= 9; ++i) {
        if (p == c.end) return Rd::More;
        const uint8_t b = *p++;
        x = (x << 7) | (b & 0x7f);
        if (b & 0x80) {
            const int sh = 64 - 7 * i;
            c.p = p;
            v = static_cast<int64_t>(x << sh) >> sh;
            return Rd::Ok;
        }
    }
    i128 w = static_cast<int64_t>(x << 1) >> 1;
    for (;;) {
        if (p == c.end) return Rd::More;
        if (w > (static_cast<i128>(1) << 70) || w < -(static_cast<i128>(1) << 70)) return Rd::Big;
        const uint8_t b = *p++;
        w = w * 128 + (b & 0x7f);
        if (b & 0x80) break;
    }
    c.p = p;
    v = w;
    return Rd::Ok;
}

// ---- stop-bit writers ------------------------------------------------------

inline void put_uint(std::vector<uint8_t>& o, u128 v) {
    uint8_t tmp[20];
    int n = 0;
    do {
        tmp[n++] = static_cast<uint8_t>(v & 0x7f);
        v >>= 7;
    } while (v != 0);
    tmp[0] |= 0x80;
    while (n > 0) o.push_back(tmp[--n]);
}
inline void put_int(std::vector<uint8_t>& o, i128 v) {
    uint8_t tmp[20];
    int n = 0;
    for (;;) {
        tmp[n++] = static_cast<uint8_t>(static_cast<u128>(v) & 0x7f);
        const i128 rest = v >> 7;  // arithmetic
        const bool sign = (tmp[n - 1] & 0x40) != 0;
        if ((rest == 0 && !sign) || (rest == -1 && sign)) break;
        v = rest;
    }
    tmp[0] |= 0x80;
    while (n > 0) o.push_back(tmp[--n]);
}
// Nullable forms: NULL is 0, non-negative values are sent +1.
inline void put_uint_null(std::vector<uint8_t>& o, u128 v) { put_uint(o, v + 1); }
inline void put_int_null(std::vector<uint8_t>& o, i128 v) { put_int(o, v >= 0 ? v + 1 : v); }
inline void put_null(std::vector<uint8_t>& o) { o.push_back(0x80); }

}  // namespace etcpipe::fast::detail
