// Unit tests for loader/mdfeed/framing: STEP messages (built by append_step or
// by hand for the malformed ones), length-prefixed blocks in the three length
// kinds, the UDP preamble and the per-channel sequence tracker.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "mdfeed/framing.hpp"

namespace etcpipe::test {
namespace {

using md::Framing;
using md::ParseStatus;
using Bytes = std::vector<uint8_t>;

Bytes bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

std::span<const uint8_t> sp(const Bytes& b) { return {b.data(), b.size()}; }

Bytes random_bytes(std::mt19937_64& rng, size_t n) {
    Bytes b(n);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    return b;
}

// A payload full of the bytes that break naive FIX parsing.
Bytes nasty_payload(size_t n) {
    Bytes b(n);
    const uint8_t pattern[] = {0x01, '=', '1', '0', '=', 0x01, '9', '6', '=', 0x00, 0xff, '8'};
    for (size_t i = 0; i < n; ++i) b[i] = pattern[i % sizeof pattern];
    return b;
}

// A STEP message from a hand-written body ('|' stands for SOH); BodyLength and
// CheckSum are computed unless overridden.
Bytes step_raw(std::string body, long body_len = -1, int checksum = -1) {
    for (auto& ch : body)
        if (ch == '|') ch = '\x01';
    std::string m = "8=STEP.1.0.0\x01" "9=" +
                    std::to_string(body_len >= 0 ? static_cast<size_t>(body_len) : body.size()) + "\x01" + body;
    unsigned sum = 0;
    for (unsigned char ch : m) sum += ch;
    char ck[16];
    std::snprintf(ck, sizeof ck, "%03u", checksum >= 0 ? static_cast<unsigned>(checksum) : sum % 256);
    m += "10=";
    m += ck;
    m += '\x01';
    return bytes(m);
}

// ---- parse_framing -----------------------------------------------------------

TEST(MdFraming, NamesRoundTripAndErrorListsThem) {
    for (Framing f : {Framing::Raw, Framing::Step, Framing::Len32Le, Framing::Len32Be, Framing::Block,
                      Framing::Udp}) {
        auto r = md::parse_framing(md::framing_name(f));
        ASSERT_TRUE(r.ok()) << md::framing_name(f);
        EXPECT_EQ(*r, f);
    }
    auto bad = md::parse_framing("fix");
    ASSERT_FALSE(bad.ok());
    const std::string m = bad.error().message();
    for (const char* name : {"raw", "step", "len32le", "len32be", "block", "udp", "fix"})
        EXPECT_NE(m.find(name), std::string::npos) << m;
}

// ---- STEP ----------------------------------------------------------------------

TEST(MdStep, RoundTripWithSohAndEqualsInPayload) {
    std::mt19937_64 rng(1);
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{12}, size_t{100}, size_t{1000}, size_t{65536}}) {
        for (int variant = 0; variant < 2; ++variant) {
            const Bytes fast = variant == 0 ? nasty_payload(n) : random_bytes(rng, n);
            Bytes msg;
            md::append_step(msg, sp(fast), 4242 + n, "UA3201", "20240102-09:30:00.123");
            const auto r = md::parse_step(sp(msg));
            ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
            EXPECT_EQ(r.consumed, msg.size());
            EXPECT_EQ(Bytes(r.fast.begin(), r.fast.end()), fast);
            EXPECT_EQ(r.seq, 4242 + n);
            EXPECT_EQ(r.msg_type, "UA3201");
            EXPECT_EQ(r.sending_time, "20240102-09:30:00.123");
        }
    }
}

TEST(MdStep, MatchesHandBuiltMessage) {
    // The layout of the spec, written out: append_step must produce exactly it.
    const Bytes fast = bytes("ab\x01=c");
    const Bytes want = step_raw("35=UA3202|49=ETCPIPE|56=MD|34=7|52=T|95=5|96=ab\x01=c|");
    Bytes got;
    md::append_step(got, sp(fast), 7, "UA3202", "T");
    EXPECT_EQ(got, want);
}

TEST(MdStep, MessageWithoutRawDataIsOk) {
    const Bytes hb = step_raw("35=0|49=A|56=B|34=12|52=T|");
    const auto r = md::parse_step(sp(hb));
    ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
    EXPECT_TRUE(r.fast.empty());
    EXPECT_EQ(r.seq, 12u);
    EXPECT_EQ(r.msg_type, "0");
}

TEST(MdStep, BackToBack) {
    std::mt19937_64 rng(2);
    Bytes stream;
    std::vector<Bytes> payloads;
    for (int i = 0; i < 20; ++i) {
        payloads.push_back(random_bytes(rng, rng() % 300));
        md::append_step(stream, sp(payloads.back()), static_cast<uint64_t>(i + 1), "UA3113", "T");
    }
    size_t off = 0;
    for (int i = 0; i < 20; ++i) {
        const auto r = md::parse_step(sp(stream).subspan(off));
        ASSERT_EQ(r.status, ParseStatus::Ok) << i << ": " << r.error;
        EXPECT_EQ(Bytes(r.fast.begin(), r.fast.end()), payloads[static_cast<size_t>(i)]);
        EXPECT_EQ(r.seq, static_cast<uint64_t>(i + 1));
        off += r.consumed;
    }
    EXPECT_EQ(off, stream.size());
    EXPECT_EQ(md::parse_step(sp(stream).subspan(off)).status, ParseStatus::NeedMore);
}

TEST(MdStep, EveryPrefixNeedsMore) {
    for (const Bytes& fast : {Bytes{}, nasty_payload(40)}) {
        Bytes msg;
        md::append_step(msg, sp(fast), 123456789, "UA3201", "20240102-09:30:00.000");
        for (size_t k = 0; k < msg.size(); ++k) {
            const auto r = md::parse_step(sp(msg).first(k));
            ASSERT_EQ(r.status, ParseStatus::NeedMore) << "prefix " << k << ": " << r.error;
        }
        EXPECT_EQ(md::parse_step(sp(msg)).status, ParseStatus::Ok);
    }
}

struct StepErrorCase {
    const char* what;
    Bytes msg;
    std::vector<std::string> must_contain;
};

TEST(MdStep, ErrorsSayWhatWhereAndWhy) {
    const std::string good_body = "35=UA3201|49=A|56=B|34=9|52=T|95=4|96=ab=c|";
    const Bytes good = step_raw(good_body);
    ASSERT_EQ(md::parse_step(sp(good)).status, ParseStatus::Ok);
    unsigned sum = 0;
    for (size_t i = 0; i + 7 < good.size(); ++i) sum += good[i];
    const unsigned ck = sum % 256;
    const std::string right_ck = std::to_string(ck / 100) + std::to_string(ck / 10 % 10) + std::to_string(ck % 10);
    const long L = static_cast<long>(good_body.size());

    std::vector<StepErrorCase> cases = {
        {"BodyLength one short", step_raw(good_body, L - 1), {"tag 9 (BodyLength)", "offset"}},
        {"BodyLength one long", step_raw(good_body, L + 1), {"tag 9 (BodyLength)", "offset"}},
        {"BodyLength much too long (trailer inside)", step_raw(good_body, L + 40),
         {"tag 9 (BodyLength) wrong", "\"10=\"", "BodyLength would be " + std::to_string(L)}},
        {"wrong checksum", step_raw(good_body, -1, static_cast<int>((sum + 1) % 256)),
         {"tag 10 (CheckSum)", "expected " + right_ck, "offset"}},
        {"96 without 95", step_raw("35=UA3201|49=A|34=9|96=ab=c|"), {"tag 96", "tag 95", "offset"}},
        {"95 not a number", step_raw("35=UA3201|95=4x|96=ab=c|"), {"tag 95 (RawDataLength)", "4x"}},
        {"96 shorter than 95", step_raw("35=UA3201|95=9|96=ab=c|"),
         {"tag 96 (RawData) shorter than tag 95", "95=9", "offset"}},
        {"96 longer than 95", step_raw("35=UA3201|95=2|96=ab=c|"), {"tag 96 (RawData)", "95=2", "SOH"}},
        {"field without '='", step_raw("35=UA3201|49A|56=B|"), {"field without '='", "offset"}},
        {"tag not digits", step_raw("35=UA3201|4x=A|"), {"tag must be digits"}},
        {"garbage", bytes("GET / HTTP/1.1\r\n\r\n"), {"tag 8 (BeginString)", "offset 0"}},
        {"FIX, not STEP", bytes("8=FIX.4.4\x01" "9=5\x01" "35=0\x01" "10=000\x01"), {"tag 8 (BeginString)"}},
        {"oversized BodyLength", bytes("8=STEP.1.0.0\x01" "9=99999999\x01"), {"exceeds the cap", "tag 9"}},
        {"BodyLength not a number", bytes("8=STEP.1.0.0\x01" "9=1a\x01"), {"tag 9 (BodyLength)", "digit"}},
        {"missing 9=", bytes("8=STEP.1.0.0\x01" "35=0\x01"), {"tag 9 (BodyLength)", "\"9=\""}},
        {"checksum not digits", bytes(""), {"tag 10 (CheckSum)", "3 digits"}},
        {"missing trailer", bytes(""), {"missing trailer", "\"10=\""}},
    };
    // Trailer damage is easier to write by editing a good message.
    cases[cases.size() - 2].msg = good;
    cases[cases.size() - 2].msg[good.size() - 3] = 'x';
    {
        Bytes m(good.begin(), good.end() - 7);  // drop "10=xxx|", add another field instead
        for (char ch : std::string("58=hello\x01" "10=000\x01")) m.push_back(static_cast<uint8_t>(ch));
        cases.back().msg = m;
    }

    for (const auto& tc : cases) {
        const auto r = md::parse_step(sp(tc.msg));
        ASSERT_EQ(r.status, ParseStatus::Error) << tc.what;
        for (const auto& s : tc.must_contain)
            EXPECT_NE(r.error.find(s), std::string::npos) << tc.what << ": \"" << s << "\" not in: " << r.error;
        EXPECT_LE(r.error_offset, tc.msg.size()) << tc.what;
    }
}

TEST(MdStep, ChecksumErrorPointsAtTheTrailer) {
    const Bytes m = step_raw("35=0|", -1, 0);
    const auto r = md::parse_step(sp(m));
    ASSERT_EQ(r.status, ParseStatus::Error);
    EXPECT_EQ(r.error_offset, m.size() - 4);  // the three digits
}

TEST(MdStep, FindBeginAcrossSplitHeader) {
    const std::string hdr(md::kStepBeginString);
    const Bytes junk = bytes("xx8=FIX8=S8");
    // The full header after junk that contains near-misses.
    Bytes b = junk;
    b.insert(b.end(), hdr.begin(), hdr.end());
    EXPECT_EQ(md::find_step_begin(sp(b)), junk.size());
    // Every split of the header: the tail that may start it is kept.
    for (size_t k = 0; k < hdr.size(); ++k) {
        Bytes t = bytes("garbage ");
        t.insert(t.end(), hdr.begin(), hdr.begin() + static_cast<long>(k));
        const size_t at = md::find_step_begin(sp(t));
        EXPECT_EQ(at, k == 0 ? t.size() : size_t{8}) << "split after " << k;
    }
    EXPECT_EQ(md::find_step_begin({}), 0u);
    EXPECT_EQ(md::find_step_begin(sp(bytes("no header here"))), 14u);
    EXPECT_EQ(md::find_step_begin(sp(bytes("trailing 8"))), 9u);
}

// A stream cut into random chunks, with garbage between messages, fed to the
// usual loop (find the header, parse, resync on error): every message comes out.
TEST(MdStep, StreamingResyncsOverGarbage) {
    std::mt19937_64 rng(3);
    Bytes stream;
    std::vector<Bytes> want;
    for (int i = 0; i < 200; ++i) {
        if (rng() % 4 == 0) {
            Bytes g = random_bytes(rng, rng() % 50);
            g.push_back('8');  // a near miss
            stream.insert(stream.end(), g.begin(), g.end());
        }
        want.push_back(random_bytes(rng, rng() % 200));
        md::append_step(stream, sp(want.back()), static_cast<uint64_t>(i), "UA3201", "T");
    }
    std::vector<Bytes> got;
    Bytes buf;
    size_t fed = 0;
    while (fed < stream.size()) {
        const size_t n = std::min<size_t>(1 + rng() % 97, stream.size() - fed);
        buf.insert(buf.end(), stream.begin() + static_cast<long>(fed), stream.begin() + static_cast<long>(fed + n));
        fed += n;
        size_t off = 0;
        for (;;) {
            off += md::find_step_begin(sp(buf).subspan(off));
            const auto r = md::parse_step(sp(buf).subspan(off));
            if (r.status == ParseStatus::NeedMore) break;
            if (r.status == ParseStatus::Error) {
                ++off;
                continue;
            }
            got.emplace_back(r.fast.begin(), r.fast.end());
            off += r.consumed;
        }
        buf.erase(buf.begin(), buf.begin() + static_cast<long>(off));
    }
    EXPECT_EQ(got, want);
}

// ---- blocks --------------------------------------------------------------------

TEST(MdBlock, RoundTripAllKindsAndPrefixesNeedMore) {
    std::mt19937_64 rng(4);
    for (Framing kind : {Framing::Len32Le, Framing::Len32Be, Framing::Block}) {
        Bytes stream;
        std::vector<Bytes> want;
        for (size_t n : {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{300}, size_t{16383},
                         size_t{16384}, size_t{100000}}) {
            want.push_back(random_bytes(rng, n));
            md::append_block(stream, sp(want.back()), kind);
        }
        size_t off = 0;
        for (const auto& w : want) {
            const auto r = md::parse_block(sp(stream).subspan(off), kind);
            ASSERT_EQ(r.status, ParseStatus::Ok) << md::framing_name(kind) << ": " << r.error;
            EXPECT_EQ(Bytes(r.payload.begin(), r.payload.end()), w);
            off += r.consumed;
        }
        EXPECT_EQ(off, stream.size());
        // Every prefix of one block needs more.
        Bytes one;
        md::append_block(one, sp(want[4]), kind);
        for (size_t k = 0; k < one.size(); ++k)
            ASSERT_EQ(md::parse_block(sp(one).first(k), kind).status, ParseStatus::NeedMore)
                << md::framing_name(kind) << " prefix " << k;
    }
}

TEST(MdBlock, EncodingsAreTheSpecs) {
    const Bytes p(128, 7);
    Bytes le, be, blk;
    md::append_block(le, sp(p), Framing::Len32Le);
    md::append_block(be, sp(p), Framing::Len32Be);
    md::append_block(blk, sp(p), Framing::Block);
    EXPECT_EQ(Bytes(le.begin(), le.begin() + 4), (Bytes{128, 0, 0, 0}));
    EXPECT_EQ(Bytes(be.begin(), be.begin() + 4), (Bytes{0, 0, 0, 128}));
    EXPECT_EQ(Bytes(blk.begin(), blk.begin() + 2), (Bytes{0x01, 0x80}));  // stop bit on the last byte
    Bytes small;
    md::append_block(small, sp(Bytes(5, 1)), Framing::Block);
    EXPECT_EQ(small[0], 0x85);
}

TEST(MdBlock, OversizedAndMalformedLengthsAreErrors) {
    const auto big = static_cast<uint32_t>(md::kMaxBlockLength + 1);
    const Bytes le = {static_cast<uint8_t>(big), static_cast<uint8_t>(big >> 8), static_cast<uint8_t>(big >> 16),
                      static_cast<uint8_t>(big >> 24)};
    const Bytes be = {le[3], le[2], le[1], le[0]};
    auto r = md::parse_block(sp(le), Framing::Len32Le);
    EXPECT_EQ(r.status, ParseStatus::Error);
    EXPECT_NE(r.error.find("exceeds the cap"), std::string::npos) << r.error;
    EXPECT_EQ(md::parse_block(sp(be), Framing::Len32Be).status, ParseStatus::Error);
    EXPECT_EQ(md::parse_block(sp(Bytes{0xff, 0xff, 0xff, 0xff}), Framing::Len32Le).status, ParseStatus::Error);
    // Stop-bit: 2^24 + 1 = 0x08 0x00 0x00 0x81; an error as soon as it is certain.
    EXPECT_EQ(md::parse_block(sp(Bytes{0x08, 0x00, 0x00, 0x81}), Framing::Block).status, ParseStatus::Error);
    EXPECT_EQ(md::parse_block(sp(Bytes{0x08, 0x00, 0x00}), Framing::Block).status, ParseStatus::NeedMore);  // may still be 2^24
    EXPECT_EQ(md::parse_block(sp(Bytes{0x08, 0x00, 0x01}), Framing::Block).status, ParseStatus::Error);
    EXPECT_EQ(md::parse_block(sp(Bytes{0x00, 0x00, 0x00, 0x00, 0x00}), Framing::Block).status,
              ParseStatus::Error);  // no stop bit within 5 bytes
    EXPECT_EQ(md::parse_block(sp(Bytes{0x01, 0x80}), Framing::Raw).status, ParseStatus::Error);
}

// ---- UDP -----------------------------------------------------------------------

TEST(MdUdp, SplitPreamble) {
    const Bytes d = {0x00, 0x00, 0x01, 0x02, 0xaa, 0xbb};
    auto u = md::split_udp(sp(d), md::UdpOptions{true});
    ASSERT_EQ(u.status, ParseStatus::Ok);
    EXPECT_TRUE(u.has_seq);
    EXPECT_EQ(u.seq, 0x102u);
    EXPECT_EQ(u.messages.size(), 2u);
    u = md::split_udp(sp(d), md::UdpOptions{});
    EXPECT_FALSE(u.has_seq);
    EXPECT_EQ(u.messages.size(), d.size());
    EXPECT_EQ(md::split_udp(sp(Bytes{1, 2}), md::UdpOptions{true}).status, ParseStatus::Error);
}

TEST(MdSequence, GapsDuplicatesReorderAndWrap) {
    md::SequenceTracker t;
    // Channel 1: 10 11 12 15 13 12 16 (14 never comes).
    for (uint32_t s : {10u, 11u, 12u, 15u, 13u, 12u, 16u}) t.observe(1, s);
    auto c = t.counters(1);
    EXPECT_EQ(c.channels, 1u);
    EXPECT_EQ(c.datagrams, 7u);
    EXPECT_EQ(c.in_order, 4u);  // 10 (the start), 11, 12, 16
    EXPECT_EQ(c.gaps, 2u);      // 13 and 14 skipped by 15
    EXPECT_EQ(c.gap_events, 1u);
    EXPECT_EQ(c.reordered, 1u);  // 13
    EXPECT_EQ(c.duplicates, 1u);  // the second 12
    EXPECT_EQ(c.missing(), 1u);   // 14

    // Channel 2 crosses 2^32: in order all the way, then a gap across the wrap.
    for (uint32_t s : {0xfffffffdu, 0xfffffffeu, 0xffffffffu, 0u, 1u}) t.observe(2, s);
    c = t.counters(2);
    EXPECT_EQ(c.in_order, 5u);
    EXPECT_EQ(c.gaps, 0u);
    t.observe(3, 0xfffffffeu);
    t.observe(3, 2u);  // skips ffffffff, 0, 1
    t.observe(3, 0u);  // late
    t.observe(3, 0u);  // duplicate
    t.observe(3, 0xfffffffeu);  // duplicate
    c = t.counters(3);
    EXPECT_EQ(c.gaps, 3u);
    EXPECT_EQ(c.reordered, 1u);
    EXPECT_EQ(c.duplicates, 2u);
    EXPECT_EQ(c.missing(), 2u);

    // Late arrivals older than the window are duplicates; before the start is its own count.
    t.observe(4, 5000);
    t.observe(4, 4999);
    EXPECT_EQ(t.counters(4).before_start, 1u);
    t.observe(4, 5000 + 2 * md::SequenceTracker::kWindow);
    t.observe(4, 5001);  // skipped, but now beyond the window
    EXPECT_EQ(t.counters(4).duplicates, 1u);
    EXPECT_EQ(t.counters(4).reordered, 0u);

    EXPECT_EQ(t.channels(), 4u);
    const auto& total = t.counters();
    EXPECT_EQ(total.channels, 4u);
    EXPECT_EQ(total.datagrams, 7u + 5u + 5u + 4u);
    EXPECT_EQ(t.counters(99).datagrams, 0u);
}

TEST(MdSequence, RandomLossAndReorderAccountsExactly) {
    std::mt19937_64 rng(5);
    md::SequenceTracker t;
    const uint32_t start = 0xffffff00u;  // crosses the wrap
    std::vector<uint32_t> sent;
    uint64_t lost = 0;
    for (uint32_t i = 0; i < 20000; ++i) {
        if (rng() % 100 == 0) {
            ++lost;
            continue;
        }
        sent.push_back(start + i);
    }
    // Local reordering: swap neighbours 3 % of the time (never the first).
    uint64_t swaps = 0;
    for (size_t i = 2; i + 1 < sent.size(); ++i)
        if (rng() % 100 < 3) {
            std::swap(sent[i], sent[i + 1]);
            ++swaps;
            ++i;
        }
    for (uint32_t s : sent) t.observe(7, s);
    uint32_t max_off = 0;
    for (uint32_t s : sent) max_off = std::max(max_off, s - start);
    const auto c = t.counters(7);
    EXPECT_EQ(c.datagrams, sent.size());
    EXPECT_EQ(c.duplicates, 0u);
    EXPECT_EQ(c.reordered, swaps);  // each swap: the second of the pair arrives late
    EXPECT_EQ(c.missing(), uint64_t{max_off} + 1 - sent.size());
    EXPECT_LE(c.missing(), lost);
}

}  // namespace
}  // namespace etcpipe::test
