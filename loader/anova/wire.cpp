#include "anova/wire.hpp"

#include <algorithm>
#include <cstring>

namespace etcpipe::anova {

namespace {

void put_le(uint8_t* p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get_le(const uint8_t* p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{p[i]} << (8 * i);
    return v;
}

}  // namespace

size_t message_size(anova_encoding enc) {
    return enc == ANOVA_ENC_F64 ? sizeof(anova_msg_f64) : sizeof(anova_msg_u32);
}

std::optional<std::vector<uint8_t>> encode_request(std::span<const double, ANOVA_SAMPLES> window,
                                                   anova_encoding enc, uint32_t frac_bits) {
    std::vector<uint8_t> m(message_size(enc));
    put_le(m.data(), ANOVA_MAGIC, 8);
    put_le(m.data() + 8, ANOVA_TAG_DECIDE, 8);
    for (size_t i = 0; i < ANOVA_SAMPLES; ++i) {
        if (enc == ANOVA_ENC_F64) {
            uint64_t bits;
            std::memcpy(&bits, &window[i], 8);
            put_le(m.data() + 16 + 8 * i, bits, 8);
        } else {
            auto v = to_fixed(window[i], frac_bits);
            if (!v) return std::nullopt;
            put_le(m.data() + 16 + 4 * i, *v, 4);
        }
    }
    return m;
}

const char* ignored_name(Ignored why) {
    switch (why) {
    case Ignored::None: return "none";
    case Ignored::Short: return "short";
    case Ignored::Magic: return "bad magic";
    case Ignored::Tag: return "tag not 0";
    }
    return "?";
}

Ignored answer_in_place(std::span<uint8_t> d, anova_encoding enc, const Params& params) {
    if (d.size() < sizeof(anova_hdr)) return Ignored::Short;
    if (get_le(d.data(), 8) != ANOVA_MAGIC) return Ignored::Magic;
    if (get_le(d.data() + 8, 8) != ANOVA_TAG_DECIDE) return Ignored::Tag;
    if (d.size() < message_size(enc)) return Ignored::Short;
    uint32_t tag;
    if (enc == ANOVA_ENC_F64) {
        std::array<double, ANOVA_SAMPLES> x;
        for (size_t i = 0; i < ANOVA_SAMPLES; ++i) {
            uint64_t bits = get_le(d.data() + 16 + 8 * i, 8);
            std::memcpy(&x[i], &bits, 8);
        }
        tag = decide_f64(x, params);
    } else {
        std::array<uint32_t, ANOVA_SAMPLES> x;
        for (size_t i = 0; i < ANOVA_SAMPLES; ++i)
            x[i] = static_cast<uint32_t>(get_le(d.data() + 16 + 4 * i, 4));
        tag = decide_u32(x, params);
    }
    put_le(d.data() + 8, tag, 8);
    return Ignored::None;
}

uint64_t message_tag(std::span<const uint8_t> d) { return get_le(d.data() + 8, 8); }

bool is_reply_to(std::span<const uint8_t> reply, std::span<const uint8_t> req, uint32_t& tag) {
    if (reply.size() != req.size() || reply.size() < sizeof(anova_hdr)) return false;
    if (get_le(reply.data(), 8) != ANOVA_MAGIC) return false;
    uint64_t t = get_le(reply.data() + 8, 8);
    if (t < ANOVA_TAG_SPLIT || t > ANOVA_TAG_INVALID) return false;
    if (std::memcmp(reply.data() + 16, req.data() + 16, req.size() - 16) != 0) return false;
    tag = static_cast<uint32_t>(t);
    return true;
}

}  // namespace etcpipe::anova
