// Unit tests for loader/mdfeed (FAST 1.1): the specification's worked
// examples as bytes, every operator x presence x type with the dictionary
// states, dictionaries (key, template, type, user, reset), random round trips
// over testdata/mdfeed/sse.xml and a richer set defined here, NeedMore on
// every prefix, the error codes with their position, malformed XML, JSON.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "mdfeed/fast.hpp"
#include "tests/common/expect_ok.hpp"

// Counts heap allocations for FastAllocation.NoneOnceWarm. Weak, so that a
// replacement elsewhere in the test binary wins without a link error (the
// test then skips itself).
namespace etcpipe::test {
std::atomic<uint64_t> g_allocations{0};
}  // namespace etcpipe::test

[[gnu::weak]] void* operator new(std::size_t n) {
    etcpipe::test::g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
[[gnu::weak]] void* operator new[](std::size_t n) {
    etcpipe::test::g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
[[gnu::weak]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::weak]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::weak]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::weak]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace etcpipe::test {
namespace {

using namespace etcpipe::fast;
using Buf = std::vector<uint8_t>;

// ---- values and builders -------------------------------------------------------

Value u(uint64_t v) { return v; }
Value i(int64_t v) { return v; }
Value dec(int32_t e, int64_t m) { return Decimal{e, m}; }
Value str(std::string s) { return s; }
Value bytes(Buf b) { return Bytes{std::move(b)}; }
const Value absent{};

Record rec(uint32_t tid, std::vector<Value> fields) { return Record{tid, std::move(fields)}; }
Record el(std::vector<Value> fields) { return Record{0, std::move(fields)}; }
Value seq(std::vector<Record> els) { return Sequence{std::move(els)}; }
Value grp(std::vector<Value> fields) { return Group(el(std::move(fields))); }

std::string hex(const Buf& b) {
    static const char d[] = "0123456789abcdef";
    std::string s;
    for (uint8_t x : b) {
        if (!s.empty()) s += ' ';
        s += d[x >> 4];
        s += d[x & 15];
    }
    return s;
}

// Minimal presence map for the given bits (what a conforming encoder sends).
Buf pmap(const std::vector<int>& bits) {
    size_t last = bits.size();
    while (last > 0 && !bits[last - 1]) --last;
    const size_t n = std::max<size_t>(1, (last + 6) / 7);
    Buf out(n, 0);
    for (size_t k = 0; k < last; ++k)
        if (bits[k]) out[k / 7] |= static_cast<uint8_t>(0x40 >> (k % 7));
    out.back() |= 0x80;
    return out;
}

Buf cat(Buf a, const Buf& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

TemplateSet parse_set(const std::string& xml) {
    auto r = TemplateSet::parse(xml, "test.xml");
    if (!r) ADD_FAILURE() << r.error().message();
    return std::move(r).value();
}

// One template, id 1, name T, with these field instructions.
TemplateSet one(const std::string& fields, const std::string& attrs = "") {
    return parse_set("<templates><template name='T' id='1' " + attrs + ">" + fields +
                     "</template></templates>");
}

struct Decoded {
    Decoder::Status status;
    size_t used = 0;
    Record record;
};

Decoded decode_one(Decoder& d, const Buf& b) {
    Decoded r;
    r.status = d.decode(b, r.used);
    if (r.status == Decoder::Status::Ok) r.record = to_record(d.message());
    return r;
}

Buf encode_one(Encoder& e, const Record& r) {
    Buf out;
    const auto res = e.encode(r, out);
    if (!res) ADD_FAILURE() << res.error().message() << " for " << to_string(r);
    return out;
}

// ---- stop-bit primitives (spec appendix 3.1) -------------------------------------

struct PrimCase {
    const char* field;
    Value value;
    Buf body;
};

class Primitive : public ::testing::TestWithParam<PrimCase> {};

TEST_P(Primitive, DecodesAndEncodesExactBytes) {
    const PrimCase& c = GetParam();
    const TemplateSet set = one(c.field);
    const Buf wire = cat({0xc0, 0x81}, c.body);  // pmap (template id bit), template id 1
    Decoder d(set);
    const Decoded got = decode_one(d, wire);
    ASSERT_EQ(got.status, Decoder::Status::Ok) << d.error().message();
    EXPECT_EQ(got.used, wire.size());
    EXPECT_EQ(got.record, rec(1, {c.value})) << to_string(got.record);
    Encoder e(set);
    EXPECT_EQ(hex(encode_one(e, rec(1, {c.value}))), hex(wire));
}

const Value kU64Max = u(UINT64_MAX);

INSTANTIATE_TEST_SUITE_P(
    Spec, Primitive,
    ::testing::Values(
        PrimCase{"<uInt32 name='F'/>", u(0), {0x80}},
        PrimCase{"<uInt32 name='F'/>", u(1), {0x81}},
        PrimCase{"<uInt32 name='F'/>", u(942755), {0x39, 0x45, 0xa3}},
        PrimCase{"<uInt32 name='F'/>", u(UINT32_MAX), {0x0f, 0x7f, 0x7f, 0x7f, 0xff}},
        PrimCase{"<uInt32 name='F' presence='optional'/>", absent, {0x80}},
        PrimCase{"<uInt32 name='F' presence='optional'/>", u(0), {0x81}},
        PrimCase{"<uInt32 name='F' presence='optional'/>", u(1), {0x82}},
        PrimCase{"<uInt32 name='F' presence='optional'/>", u(942755), {0x39, 0x45, 0xa4}},
        PrimCase{"<uInt32 name='F' presence='optional'/>", u(UINT32_MAX), {0x10, 0x00, 0x00, 0x00, 0x80}},
        PrimCase{"<int32 name='F'/>", i(942755), {0x39, 0x45, 0xa3}},
        PrimCase{"<int32 name='F'/>", i(-942755), {0x46, 0x3a, 0xdd}},
        PrimCase{"<int32 name='F'/>", i(-7942755), {0x7c, 0x1b, 0x1b, 0x9d}},
        PrimCase{"<int32 name='F'/>", i(8193), {0x00, 0x40, 0x81}},
        PrimCase{"<int32 name='F'/>", i(-8193), {0x7f, 0x3f, 0xff}},
        PrimCase{"<int32 name='F'/>", i(-1), {0xff}},
        PrimCase{"<int32 name='F'/>", i(64), {0x00, 0xc0}},
        PrimCase{"<int32 name='F'/>", i(INT32_MIN), {0x78, 0x00, 0x00, 0x00, 0x80}},
        PrimCase{"<int32 name='F' presence='optional'/>", i(942755), {0x39, 0x45, 0xa4}},
        PrimCase{"<int32 name='F' presence='optional'/>", i(-942755), {0x46, 0x3a, 0xdd}},
        PrimCase{"<int32 name='F' presence='optional'/>", i(0), {0x81}},
        PrimCase{"<int32 name='F' presence='optional'/>", i(-1), {0xff}},
        PrimCase{"<int32 name='F' presence='optional'/>", absent, {0x80}},
        PrimCase{"<uInt64 name='F'/>", kU64Max, {0x01, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0xff}},
        PrimCase{"<uInt64 name='F' presence='optional'/>", kU64Max, {0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}},
        PrimCase{"<int64 name='F'/>", i(INT64_MIN), {0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}},
        PrimCase{"<int64 name='F'/>", i(INT64_MAX), {0x00, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0xff}},
        PrimCase{"<int64 name='F' presence='optional'/>", i(INT64_MAX), {0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}},
        PrimCase{"<int64 name='F' presence='optional'/>", i(INT64_MIN), {0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}},
        PrimCase{"<string name='F'/>", str("ABC"), {0x41, 0x42, 0xc3}},
        PrimCase{"<string name='F'/>", str(""), {0x80}},
        PrimCase{"<string name='F'/>", str(std::string(1, '\0')), {0x00, 0x80}},
        PrimCase{"<string name='F' presence='optional'/>", absent, {0x80}},
        PrimCase{"<string name='F' presence='optional'/>", str(""), {0x00, 0x80}},
        PrimCase{"<string name='F' presence='optional'/>", str(std::string(1, '\0')), {0x00, 0x00, 0x80}},
        PrimCase{"<string name='F' presence='optional'/>", str("ABC"), {0x41, 0x42, 0xc3}},
        PrimCase{"<string name='F' charset='unicode'/>", str("\xc3\xa9"), {0x82, 0xc3, 0xa9}},
        PrimCase{"<string name='F' charset='unicode' presence='optional'/>", str(""), {0x81}},
        PrimCase{"<byteVector name='F'/>", bytes({0xc1, 0xb2, 0xa3}), {0x83, 0xc1, 0xb2, 0xa3}},
        PrimCase{"<byteVector name='F'/>", bytes({}), {0x80}},
        PrimCase{"<byteVector name='F' presence='optional'/>", absent, {0x80}},
        PrimCase{"<byteVector name='F' presence='optional'/>", bytes({0x00}), {0x82, 0x00}},
        PrimCase{"<decimal name='F'/>", dec(2, 942755), {0x82, 0x39, 0x45, 0xa3}},
        PrimCase{"<decimal name='F'/>", dec(-2, 942755), {0xfe, 0x39, 0x45, 0xa3}},
        PrimCase{"<decimal name='F'/>", dec(63, -1), {0xbf, 0xff}},
        PrimCase{"<decimal name='F' presence='optional'/>", dec(2, 942755), {0x83, 0x39, 0x45, 0xa3}},
        PrimCase{"<decimal name='F' presence='optional'/>", dec(-2, 942755), {0xfe, 0x39, 0x45, 0xa3}},
        PrimCase{"<decimal name='F' presence='optional'/>", absent, {0x80}}));

TEST(FastPrimitive, OverlongIntegersAreAccepted) {
    struct Case {
        const char* field;
        Buf body;
        Value want;
    };
    const Case cases[] = {
        {"<uInt32 name='F'/>", {0x00, 0x00, 0x81}, u(1)},
        {"<uInt32 name='F'/>", {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x81}, u(1)},
        {"<int32 name='F'/>", {0x7f, 0xff}, i(-1)},
        {"<int32 name='F'/>", {0x00, 0x81}, i(1)},
        {"<int64 name='F'/>", {0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0xff}, i(-1)},
        {"<uInt64 name='F'/>", {0x00, 0x01, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0xff}, kU64Max},
    };
    for (const Case& c : cases) {
        const TemplateSet set = one(c.field);
        Decoder d(set);
        const Decoded got = decode_one(d, cat({0xc0, 0x81}, c.body));
        ASSERT_EQ(got.status, Decoder::Status::Ok) << c.field << ": " << d.error().message();
        EXPECT_EQ(got.record.fields[0], c.want) << c.field << " " << hex(c.body);
    }
}

TEST(FastPrimitive, PresenceMapsLongerThanOneWord) {
    // 20 optional copy fields: 21 bits -> 3 pmap bytes; an overlong pmap
    // (trailing zero groups) and a truncated one (missing bits are 0) decode too.
    std::string fields;
    for (int k = 0; k < 20; ++k)
        fields += "<uInt32 name='F" + std::to_string(k) + "' presence='optional'><copy/></uInt32>";
    const TemplateSet set = one(fields);
    std::vector<int> bits(21, 0);
    bits[0] = 1;
    bits[20] = 1;
    Record r = set.find(1)->make_record();
    r.fields[19] = u(7);
    Encoder e(set);
    const Buf wire = encode_one(e, r);
    EXPECT_EQ(hex(wire), hex(cat(pmap(bits), {0x81, 0x88})));
    EXPECT_EQ(hex(pmap(bits)), "40 00 81");
    Decoder d(set);
    EXPECT_EQ(decode_one(d, wire).record, r);
    Decoder d2(set);
    const Decoded over = decode_one(d2, {0x40, 0x00, 0x01, 0x00, 0x80, 0x81, 0x88});
    ASSERT_EQ(over.status, Decoder::Status::Ok) << d2.error().message();
    EXPECT_EQ(over.record, r);
    Decoder d3(set);
    Record none = set.find(1)->make_record();
    EXPECT_EQ(decode_one(d3, {0xc0, 0x81}).record, none);  // 1 pmap byte for 21 bits
}

// ---- operators (spec appendix 3.2) -------------------------------------------------

struct Step {
    Value value;
    std::vector<int> bits;  // the field's presence-map bits
    Buf body;               // the field's bytes
};

struct OpCase {
    const char* name;
    const char* field;
    std::vector<Step> steps;
};

class OperatorExample : public ::testing::TestWithParam<OpCase> {};

// Each step is one message (template id sent in the first only); checks the
// encoder's bytes and the decoded value, message by message.
TEST_P(OperatorExample, MatchesBytes) {
    const OpCase& c = GetParam();
    const TemplateSet set = one(c.field);
    Encoder e(set);
    Decoder d(set);
    for (size_t k = 0; k < c.steps.size(); ++k) {
        const Step& s = c.steps[k];
        std::vector<int> bits{k == 0 ? 1 : 0};
        bits.insert(bits.end(), s.bits.begin(), s.bits.end());
        const Buf want = cat(cat(pmap(bits), k == 0 ? Buf{0x81} : Buf{}), s.body);
        const Record r = rec(1, {s.value});
        EXPECT_EQ(hex(encode_one(e, r)), hex(want)) << c.name << " step " << k;
        const Decoded got = decode_one(d, want);
        ASSERT_EQ(got.status, Decoder::Status::Ok) << c.name << " step " << k << ": " << d.error().message();
        EXPECT_EQ(got.used, want.size());
        EXPECT_EQ(got.record, r) << c.name << " step " << k << ": " << to_string(got.record);
    }
}

const std::string kNul(1, '\0');

INSTANTIATE_TEST_SUITE_P(
    Spec, OperatorExample,
    ::testing::Values(
        OpCase{"ConstantMandatory", "<uInt32 name='F'><constant value='0'/></uInt32>",
               {{u(0), {}, {}}, {u(0), {}, {}}}},
        OpCase{"ConstantOptional", "<uInt32 name='F' presence='optional'><constant value='0'/></uInt32>",
               {{u(0), {1}, {}}, {absent, {0}, {}}, {u(0), {1}, {}}}},
        OpCase{"DefaultMandatory", "<uInt32 name='F'><default value='0'/></uInt32>",
               {{u(0), {0}, {}}, {u(1), {1}, {0x81}}, {u(0), {0}, {}}}},
        OpCase{"DefaultOptionalNoValue", "<uInt32 name='F' presence='optional'><default/></uInt32>",
               {{absent, {0}, {}}, {u(0), {1}, {0x81}}, {absent, {0}, {}}}},
        OpCase{"DefaultOptionalValue", "<uInt32 name='F' presence='optional'><default value='5'/></uInt32>",
               {{u(5), {0}, {}}, {absent, {1}, {0x80}}, {u(6), {1}, {0x87}}}},
        OpCase{"CopyMandatoryString", "<string name='F'><copy/></string>",
               {{str("CME"), {1}, {0x43, 0x4d, 0xc5}},
                {str("CME"), {0}, {}},
                {str("ISE"), {1}, {0x49, 0x53, 0xc5}}}},
        OpCase{"CopyOptionalString", "<string name='F' presence='optional'><copy/></string>",
               {{absent, {0}, {}},  // undefined, no initial value: absent, entry empty
                {absent, {0}, {}},  // empty
                {str("CME"), {1}, {0x43, 0x4d, 0xc5}},
                {absent, {1}, {0x80}},
                {str(""), {1}, {0x00, 0x80}},
                {str(""), {0}, {}}}},
        OpCase{"CopyInitialValue", "<uInt32 name='F'><copy value='10'/></uInt32>",
               {{u(10), {0}, {}}, {u(10), {0}, {}}, {u(11), {1}, {0x8b}}, {u(11), {0}, {}}}},
        OpCase{"IncrementMandatory", "<uInt32 name='F'><increment value='1'/></uInt32>",
               {{u(1), {0}, {}}, {u(2), {0}, {}}, {u(4), {1}, {0x84}}, {u(5), {0}, {}}}},
        OpCase{"IncrementOptional", "<uInt32 name='F' presence='optional'><increment/></uInt32>",
               {{absent, {0}, {}},
                {u(7), {1}, {0x88}},
                {u(8), {0}, {}},
                {absent, {1}, {0x80}},
                {absent, {0}, {}},
                {u(3), {1}, {0x84}}}},
        OpCase{"DeltaInt64", "<int64 name='F'><delta/></int64>",
               {{i(942755), {}, {0x39, 0x45, 0xa3}},
                {i(942750), {}, {0xfb}},
                {i(942745), {}, {0xfb}},
                {i(942745), {}, {0x80}}}},
        OpCase{"DeltaOptionalInitial", "<int32 name='F' presence='optional'><delta value='10'/></int32>",
               {{absent, {}, {0x80}}, {i(12), {}, {0x83}}, {i(9), {}, {0xfd}}, {absent, {}, {0x80}},
                {i(9), {}, {0x81}}}},
        OpCase{"DeltaDecimal", "<decimal name='F'><delta/></decimal>",
               {{dec(-2, 942755), {}, {0xfe, 0x39, 0x45, 0xa3}},
                {dec(-2, 942751), {}, {0x80, 0xfc}},
                {dec(-2, 942746), {}, {0x80, 0xfb}},
                {dec(-1, 94275), {}, {0x81, 0x4c, 0x1b, 0xa9}}}},
        OpCase{"DeltaString", "<string name='F'><delta/></string>",
               {{str("GEH6"), {}, {0x80, 0x47, 0x45, 0x48, 0xb6}},
                {str("GEM6"), {}, {0x82, 0x4d, 0xb6}},
                {str("ESM6"), {}, {0xfd, 0x45, 0xd3}},
                {str("RSESM6"), {}, {0xff, 0x52, 0xd3}}}},
        OpCase{"DeltaStringOptional", "<string name='F' presence='optional'><delta/></string>",
               {{str("AB"), {}, {0x81, 0x41, 0xc2}},  // nullable subtraction length 0 -> 0x81
                {absent, {}, {0x80}},
                {str("XAB"), {}, {0xff, 0xd8}}}},     // negative lengths are not shifted
        OpCase{"DeltaByteVector", "<byteVector name='F'><delta/></byteVector>",
               {{bytes({1, 2, 3}), {}, {0x80, 0x83, 1, 2, 3}}, {bytes({1, 2, 4}), {}, {0x81, 0x81, 4}}}},
        OpCase{"TailString", "<string name='F'><tail/></string>",
               {{str("GEH6"), {1}, {0x47, 0x45, 0x48, 0xb6}},
                {str("GEM6"), {1}, {0x4d, 0xb6}},
                {str("GEM6"), {0}, {}},
                {str("ABCDEF"), {1}, {0x41, 0x42, 0x43, 0x44, 0x45, 0xc6}}}},
        OpCase{"TailOptionalInitial", "<string name='F' presence='optional'><tail value='AB'/></string>",
               {{str("AB"), {0}, {}}, {str("AC"), {1}, {0xc3}}, {absent, {1}, {0x80}}, {str("AD"), {1}, {0xc4}}}},
        OpCase{"SplitDecimal", "<decimal name='F'><exponent><copy/></exponent><mantissa><delta/></mantissa></decimal>",
               {{dec(-2, 100), {1}, {0xfe, 0x00, 0xe4}},
                {dec(-2, 101), {0}, {0x81}},
                {dec(-3, 101), {1}, {0xfd, 0x80}}}},
        OpCase{"SplitDecimalOptional",
               "<decimal name='F' presence='optional'><exponent><copy/></exponent><mantissa><copy/></mantissa></decimal>",
               {{absent, {0}, {}},
                {dec(1, 5), {1, 1}, {0x82, 0x85}},
                {dec(1, 5), {0, 0}, {}},
                {absent, {1}, {0x80}},     // NULL exponent: no mantissa, no mantissa bit
                {dec(1, 5), {1, 0}, {0x82}}}},
        OpCase{"CopyByteVector", "<byteVector name='F'><copy/></byteVector>",
               {{bytes({1, 2, 3}), {1}, {0x83, 1, 2, 3}}, {bytes({1, 2, 3}), {0}, {}}}},
        OpCase{"CopyDecimal", "<decimal name='F' presence='optional'><copy value='1.5'/></decimal>",
               {{dec(-1, 15), {0}, {}}, {absent, {1}, {0x80}}, {absent, {0}, {}}, {dec(0, 2), {1}, {0x81, 0x82}}}},
        OpCase{"UnicodeNone", "<string name='F' charset='unicode'/>",
               {{str("\xe2\x82\xac"), {}, {0x83, 0xe2, 0x82, 0xac}}}},
        OpCase{"SequenceNoElementPmap", "<sequence name='S'><length name='N'/><uInt32 name='A'/></sequence>",
               {{seq({el({u(1)}), el({u(2)})}), {}, {0x82, 0x81, 0x82}}, {seq({}), {}, {0x80}}}},
        OpCase{"SequenceElementPmap", "<sequence name='S'><uInt32 name='A'><copy/></uInt32></sequence>",
               {{seq({el({u(1)}), el({u(1)})}), {}, {0x82, 0xc0, 0x81, 0x80}}}},
        OpCase{"SequenceOptionalCopyLength",
               "<sequence name='S' presence='optional'><length name='N'><copy/></length><uInt32 name='A'/></sequence>",
               {{absent, {0}, {}},
                {seq({el({u(5)})}), {1}, {0x82, 0x85}},
                {seq({el({u(6)})}), {0}, {0x86}},
                {seq({}), {1}, {0x81}},
                {absent, {1}, {0x80}}}},
        OpCase{"GroupOptional", "<group name='G' presence='optional'><uInt32 name='A'/></group>",
               {{absent, {0}, {}}, {grp({u(5)}), {1}, {0x85}}}},
        OpCase{"GroupOwnPmap", "<group name='G'><uInt32 name='A'><copy/></uInt32></group>",
               {{grp({u(5)}), {}, {0xc0, 0x85}}, {grp({u(5)}), {}, {0x80}}}}),
    [](const ::testing::TestParamInfo<OpCase>& p) { return std::string(p.param.name); });

// ---- every operator x presence x type -------------------------------------------

struct TypeSpec {
    const char* xml;      // element name and attributes
    FieldType type;
    std::vector<Value> values;  // distinct values; [1] = [0] + 1 for integers
    const char* initial;
    Value initial_value;
};

const TypeSpec kTypes[] = {
    {"uInt32", FieldType::UInt32, {u(7), u(8), u(UINT32_MAX), u(0)}, "3", u(3)},
    {"int32", FieldType::Int32, {i(-7), i(-6), i(INT32_MIN), i(INT32_MAX)}, "-3", i(-3)},
    {"uInt64", FieldType::UInt64, {u(1) , u(2), u(uint64_t{1} << 62), u(0)}, "3", u(3)},
    {"int64", FieldType::Int64, {i(-1), i(0), i(int64_t{1} << 61), i(-(int64_t{1} << 61))}, "-3", i(-3)},
    {"decimal", FieldType::Decimal, {dec(-2, 1050), dec(-2, 1051), dec(63, 1), dec(-63, -9)}, "1.5", dec(-1, 15)},
    {"string", FieldType::Ascii, {str("ABCD"), str("ABCE"), str("XYZW"), str("ABCD")}, "ABCD", str("ABCD")},
    {"string charset='unicode'", FieldType::Unicode, {str("\xc3\xa9t\xc3\xa9"), str("\xc3\xa9t\xc3\xa8"), str("zzzzz"), str("ab\xe2\x82\xac")}, "abcd", str("abcd")},
    {"byteVector", FieldType::Bytes, {bytes({1, 2, 3, 4}), bytes({1, 2, 3, 5}), bytes({9, 9, 9, 9}), bytes({0, 0, 0, 0})}, "0a0b0c0d", bytes({10, 11, 12, 13})},
};

bool applicable(Operator op, FieldType t) {
    const bool integer = t == FieldType::UInt32 || t == FieldType::Int32 ||
                         t == FieldType::UInt64 || t == FieldType::Int64;
    const bool stringish = t == FieldType::Ascii || t == FieldType::Unicode || t == FieldType::Bytes;
    if (op == Operator::Increment) return integer;
    if (op == Operator::Tail) return stringish;
    return true;
}

// For one operator/presence/type/initial value: a stream that walks the
// dictionary through undefined, assigned, empty and back, with a reset in the
// middle; the decoder must return exactly what the encoder was given.
void check_combo(const TypeSpec& t, Operator op, bool optional, bool with_initial) {
    std::string opx;
    if (op != Operator::None) {
        opx = std::string("<") + to_string(op);
        if (with_initial) opx += std::string(" value='") + t.initial + "'";
        opx += "/>";
    }
    const std::string xml = std::string("<") + t.xml + " name='F'" +
                            (optional ? " presence='optional'" : "") + ">" + opx + "</" +
                            std::string(t.xml).substr(0, std::string(t.xml).find(' ')) + ">";
    SCOPED_TRACE(xml);
    const TemplateSet set = one(xml);
    std::vector<Value> vals;
    if (op == Operator::Constant) {
        vals = {t.initial_value, t.initial_value};
        if (optional) vals = {t.initial_value, absent, absent, t.initial_value};
    } else {
        const Value& a = t.values[0];
        const Value& b = t.values[1];
        const Value& c = t.values[2];
        vals = {a, a, b, c, c, a, b, t.initial_value, t.initial_value};
        if (optional) vals = {absent, a, a, absent, absent, b, c, absent, t.initial_value, b, absent};
        if (op == Operator::Tail) {  // a tail never shortens the value: keep one length
            vals = {a, a, b, c, c, b};
            if (optional) vals = {absent, a, b, absent, absent, c, c, absent, a};
        }
    }
    for (const bool resets : {false, true}) {
        Encoder e(set);
        Decoder d(set);
        for (size_t k = 0; k < vals.size(); ++k) {
            if (resets && k == vals.size() / 2) {
                e.reset();
                d.reset();
            }
            const Record r = rec(1, {vals[k]});
            Buf wire;
            const auto res = e.encode(r, wire);
            ASSERT_TRUE(res.ok()) << "step " << k << ": " << res.error().message();
            const Decoded got = decode_one(d, wire);
            ASSERT_EQ(got.status, Decoder::Status::Ok) << "step " << k << ": " << d.error().message();
            EXPECT_EQ(got.used, wire.size());
            EXPECT_EQ(got.record, r) << "step " << k << " got " << to_string(got.record) << " bytes " << hex(wire);
        }
    }
}

TEST(FastOperators, EveryOperatorPresenceTypeAndDictionaryState) {
    const Operator ops[] = {Operator::None, Operator::Constant, Operator::Default, Operator::Copy,
                            Operator::Increment, Operator::Delta, Operator::Tail};
    int combos = 0;
    for (const TypeSpec& t : kTypes)
        for (const Operator op : ops) {
            if (!applicable(op, t.type)) continue;
            for (const bool optional : {false, true})
                for (const bool init : {false, true}) {
                    if (op == Operator::None && init) continue;
                    if (op == Operator::Constant && !init) continue;
                    if (op == Operator::Default && !optional && !init) continue;
                    check_combo(t, op, optional, init);
                    ++combos;
                }
        }
    EXPECT_EQ(combos, 148);
}

TEST(FastOperators, ImpliedValuesSendNoBytes) {
    // copy/increment/default/constant/tail with the value the decoder infers: only the pmap.
    const TemplateSet set = one(
        "<uInt32 name='C'><copy/></uInt32><uInt64 name='I'><increment/></uInt64>"
        "<int32 name='D'><default value='-1'/></int32><string name='K'><constant value='X'/></string>"
        "<string name='T'><tail/></string>");
    Encoder e(set);
    encode_one(e, rec(1, {u(5), u(10), i(3), str("X"), str("ab")}));
    EXPECT_EQ(hex(encode_one(e, rec(1, {u(5), u(11), i(-1), str("X"), str("ab")}))), "80");
}

// ---- dictionaries ---------------------------------------------------------------

TEST(FastDictionary, KeySharedBetweenFields) {
    const TemplateSet set = one("<uInt32 name='A'><copy key='k'/></uInt32><uInt32 name='B'><copy key='k'/></uInt32>");
    Encoder e(set);
    Decoder d(set);
    const std::vector<std::pair<Record, Buf>> steps = {
        {rec(1, {u(5), u(5)}), cat(pmap({1, 1, 0}), {0x81, 0x85})},
        {rec(1, {u(5), u(6)}), cat(pmap({0, 0, 1}), {0x86})},
        {rec(1, {u(6), u(6)}), pmap({0, 0, 0})},  // A's previous value is B's 6
    };
    for (const auto& [r, want] : steps) {
        EXPECT_EQ(hex(encode_one(e, r)), hex(want));
        EXPECT_EQ(decode_one(d, want).record, r);
    }
}

// Two templates with the same field; `shared` says whether the second sees the
// first's value in its dictionary entry.
void check_sharing(const std::string& xml, bool shared) {
    SCOPED_TRACE(xml);
    const TemplateSet set = parse_set(xml);
    Encoder e(set);
    Decoder d(set);
    const Record a = rec(1, {u(5)});
    const Record b = rec(2, {u(5)});
    const Buf wa = encode_one(e, a);
    const Buf wb = encode_one(e, b);
    EXPECT_EQ(hex(wb), hex(shared ? cat(pmap({1, 0}), {0x82}) : cat(pmap({1, 1}), {0x82, 0x85})));
    EXPECT_EQ(decode_one(d, wa).record, a);
    EXPECT_EQ(decode_one(d, wb).record, b);
}

TEST(FastDictionary, GlobalTemplateTypeAndUserDictionaries) {
    const auto two = [](const std::string& root, const std::string& t1, const std::string& t2) {
        return "<templates " + root + "><template name='A' id='1' " + t1 + "</template>" +
               "<template name='B' id='2' " + t2 + "</template></templates>";
    };
    const std::string x = "<uInt32 name='X'><copy/></uInt32>";
    check_sharing(two("", ">" + x, ">" + x), true);  // global by default
    check_sharing(two("dictionary='template'", ">" + x, ">" + x), false);
    check_sharing(two("", "dictionary='template'>" + x, ">" + x), false);
    check_sharing(two("dictionary='type'", "><typeRef name='Q'/>" + x, "><typeRef name='Q'/>" + x), true);
    check_sharing(two("dictionary='type'", "><typeRef name='Q'/>" + x, "><typeRef name='R'/>" + x), false);
    check_sharing(two("", "><uInt32 name='X'><copy dictionary='d1'/></uInt32>",
                      "><uInt32 name='X'><copy dictionary='d1'/></uInt32>"), true);
    check_sharing(two("", "><uInt32 name='X'><copy dictionary='d1'/></uInt32>",
                      "><uInt32 name='X'><copy dictionary='d2'/></uInt32>"), false);
    check_sharing(two("dictionary='template'", "><uInt32 name='X'><copy dictionary='global'/></uInt32>",
                      "><uInt32 name='X'><copy dictionary='global'/></uInt32>"), true);
}

TEST(FastDictionary, ResetMakesEntriesUndefined) {
    const TemplateSet set = one("<uInt32 name='C'><copy/></uInt32><uInt32 name='V'><copy value='9'/></uInt32>");
    Decoder d(set);
    ASSERT_EQ(decode_one(d, cat(pmap({1, 1, 1}), {0x81, 0x85, 0x86})).status, Decoder::Status::Ok);
    const Decoded implied = decode_one(d, pmap({0, 0, 0}));
    EXPECT_EQ(implied.record, rec(1, {u(5), u(6)}));
    EXPECT_NE(d.dump_dictionary(), "");
    d.reset();
    EXPECT_EQ(d.dump_dictionary(), "");
    // The template id is undefined too: D5 without it; with it, C is undefined (D5).
    EXPECT_EQ(decode_one(d, pmap({0, 0, 0})).status, Decoder::Status::Error);
    EXPECT_EQ(d.error().code, "D5");
    EXPECT_EQ(decode_one(d, cat(pmap({1, 0, 0}), {0x81})).status, Decoder::Status::Error);
    EXPECT_EQ(d.error().code, "D5");
    EXPECT_EQ(d.error().field, "C");
    const Decoded fresh = decode_one(d, cat(pmap({1, 1, 0}), {0x81, 0x87}));
    EXPECT_EQ(fresh.record, rec(1, {u(7), u(9)}));  // V back to its initial value
}

TEST(FastDictionary, TemplateResetAttribute) {
    for (const char* spelling : {"Y", "yes", "TRUE", "1", "y"}) {
        const TemplateSet set = one("<uInt32 name='C'><copy/></uInt32>", std::string("reset='") + spelling + "'");
        ASSERT_TRUE(set.find(1)->resets()) << spelling;
        Encoder e(set);
        Decoder d(set);
        const Record r = rec(1, {u(5)});
        const Buf w1 = encode_one(e, r);
        const Buf w2 = encode_one(e, r);
        EXPECT_EQ(hex(w2), hex(cat(pmap({0, 1}), {0x85})));  // sent again: the entry was reset
        EXPECT_EQ(decode_one(d, w1).record, r);
        EXPECT_EQ(decode_one(d, w2).record, r);
        EXPECT_EQ(decode_one(d, pmap({0, 0})).status, Decoder::Status::Error);
        EXPECT_EQ(d.error().code, "D5");
    }
    EXPECT_FALSE(one("<uInt32 name='C'/>", "reset='N'").find(1)->resets());
}

// ---- richer template set: random round trips ------------------------------------

const char* kRich = R"(<?xml version="1.0"?>
<templates xmlns="http://www.fixprotocol.org/ns/fast/td/1.1">
  <template name="Base" id="90">
    <uInt32 name="BaseSeq"><increment/></uInt32>
    <string name="BaseTag"><copy value="X"/></string>
  </template>
  <template name="AllTypes" id="100" dictionary="template">
    <uInt32 name="U32"/>
    <uInt32 name="U32o" presence="optional"/>
    <int32 name="I32"><copy/></int32>
    <int32 name="I32o" presence="optional"><copy value="-5"/></int32>
    <uInt64 name="U64"><increment/></uInt64>
    <uInt64 name="U64o" presence="optional"><increment value="7"/></uInt64>
    <int64 name="I64"><delta/></int64>
    <int64 name="I64o" presence="optional"><delta/></int64>
    <uInt64 name="U64d"><delta/></uInt64>
    <uInt32 name="Def"><default value="3"/></uInt32>
    <int64 name="Defo" presence="optional"><default/></int64>
    <uInt32 name="Const"><constant value="42"/></uInt32>
    <string name="Consto" presence="optional"><constant value="K"/></string>
    <decimal name="D"/>
    <decimal name="Do" presence="optional"/>
    <decimal name="Dc"><copy value="1.5"/></decimal>
    <decimal name="Ddo" presence="optional"><delta/></decimal>
    <decimal name="Dd"><default value="0"/></decimal>
    <decimal name="Ds"><exponent><copy value="-2"/></exponent><mantissa><delta/></mantissa></decimal>
    <decimal name="Dso" presence="optional"><exponent><default value="-4"/></exponent><mantissa><copy/></mantissa></decimal>
    <string name="A"/>
    <string name="Ao" presence="optional"/>
    <string name="Ac"><copy/></string>
    <string name="Ado" presence="optional"><delta value="abc"/></string>
    <string name="Ad"><delta/></string>
    <string name="At"><tail value="ABCD"/></string>
    <string name="Ato" presence="optional"><tail/></string>
    <string name="Uni" charset="unicode"/>
    <string name="Unio" charset="unicode" presence="optional"><copy/></string>
    <string name="Unid" charset="unicode"><delta/></string>
    <byteVector name="B"/>
    <byteVector name="Bo" presence="optional"><copy/></byteVector>
    <byteVector name="Bd"><delta/></byteVector>
    <byteVector name="Bt" presence="optional"><tail/></byteVector>
    <uInt32 name="Shared1"><copy key="shared"/></uInt32>
    <uInt32 name="Shared2"><increment key="shared"/></uInt32>
    <uInt64 name="Glob"><copy dictionary="global" key="g"/></uInt64>
  </template>
  <template name="Nested" id="101">
    <templateRef name="Base"/>
    <sequence name="Plain">
      <length name="NoPlain"/>
      <uInt32 name="P"/>
      <string name="Ps"/>
    </sequence>
    <sequence name="WithPmap" presence="optional">
      <length name="NoWithPmap"><copy/></length>
      <uInt32 name="Q"><copy/></uInt32>
      <decimal name="Qp"><delta/></decimal>
      <group name="QG" presence="optional"><int32 name="QGv"><increment/></int32></group>
      <sequence name="Inner" presence="optional">
        <length name="NoInner"><increment/></length>
        <string name="Is"><copy/></string>
      </sequence>
    </sequence>
    <group name="G">
      <uInt32 name="Gv"><copy/></uInt32>
      <group name="GG" presence="optional"><string name="GGs"/></group>
    </group>
    <group name="Go" presence="optional"><int64 name="Gov"/></group>
    <sequence name="ConstSeq" presence="optional">
      <length name="NoConst"><constant value="2"/></length>
      <uInt32 name="Cv"><constant value="9"/></uInt32>
    </sequence>
  </template>
  <template name="Resetting" id="102" reset="Y">
    <uInt32 name="R"><copy/></uInt32>
    <string name="Rs"><delta/></string>
    <uInt64 name="Glob"><copy dictionary="global" key="g"/></uInt64>
  </template>
  <template name="Dyn" id="103">
    <uInt32 name="Before"><copy/></uInt32>
    <templateRef/>
    <uInt32 name="After"/>
  </template>
  <template name="Typed1" id="104" dictionary="type">
    <typeRef name="Quote"/>
    <decimal name="Px"><delta/></decimal>
    <uInt32 name="Size"><copy/></uInt32>
  </template>
  <template name="Typed2" id="105" dictionary="type">
    <typeRef name="Quote"/>
    <decimal name="Px"><delta/></decimal>
    <uInt32 name="Size"><increment/></uInt32>
  </template>
</templates>
)";

// Like a feed: fields often repeat the previous message's value or count up.
Record mutate(const Template& t, const Record& prev, Record fresh, std::mt19937_64& rng) {
    for (size_t k = 0; k < fresh.fields.size(); ++k) {
        const FieldInfo& f = t.fields()[k];
        const unsigned dice = static_cast<unsigned>(rng() % 10);
        if (dice < 3 && f.op.op != Operator::Constant) {
            fresh.fields[k] = prev.fields[k];
        } else if (dice < 5 && f.op.op == Operator::Increment) {
            if (const auto* p = std::get_if<uint64_t>(&prev.fields[k]))
                if (*p < (f.type == FieldType::UInt32 ? UINT32_MAX : UINT64_MAX)) fresh.fields[k] = *p + 1;
            if (const auto* p = std::get_if<int64_t>(&prev.fields[k]))
                if (*p < (f.type == FieldType::Int32 ? INT32_MAX : INT64_MAX)) fresh.fields[k] = *p + 1;
        }
    }
    return fresh;
}

struct Trip {
    size_t records = 0, bytes = 0;
};

// Encodes `n` random records over every template of `set` and decodes each
// right away; `reset_every` > 0 resets both sides every that many records.
Trip round_trip(const TemplateSet& set, size_t n, uint64_t seed, RandomOptions o, size_t reset_every) {
    Trip trip;
    std::mt19937_64 rng(seed);
    o.templates = &set;
    Encoder e(set);
    Decoder d(set);
    std::vector<Record> last(set.size());
    std::vector<bool> have(set.size(), false);
    Buf wire;
    for (size_t k = 0; k < n; ++k) {
        if (reset_every && k % reset_every == 0) {
            e.reset();
            d.reset();
        }
        const size_t ti = static_cast<size_t>(rng() % set.size());
        const Template& t = *set.templates()[ti];
        Record r = random_record(t, rng, o);
        if (have[ti]) r = mutate(t, last[ti], std::move(r), rng);
        wire.clear();
        const auto res = e.encode(r, wire);
        if (!res) {
            ADD_FAILURE() << "record " << k << ": " << res.error().message() << "\n" << to_string(r);
            return trip;
        }
        size_t used = 0;
        const Decoder::Status st = d.decode(wire, used);
        if (st != Decoder::Status::Ok || used != wire.size()) {
            ADD_FAILURE() << "record " << k << ": " << d.error().message() << "\n" << to_string(r);
            return trip;
        }
        const Record got = to_record(d.message());
        if (!(got == r)) {
            ADD_FAILURE() << "record " << k << " differs\nsent " << to_string(r) << "\ngot  " << to_string(got);
            return trip;
        }
        last[ti] = std::move(r);
        have[ti] = true;
        trip.bytes += wire.size();
        ++trip.records;
    }
    return trip;
}

TemplateSet sse() {
    auto r = TemplateSet::load("testdata/mdfeed/sse.xml");
    if (!r) ADD_FAILURE() << r.error().message();
    return std::move(r).value();
}

TEST(FastRoundTrip, SseTemplates100k) {
    const TemplateSet set = sse();
    const Trip t = round_trip(set, 100000, 1, {}, 0);
    EXPECT_EQ(t.records, 100000u);
}

TEST(FastRoundTrip, RichTemplates100k) {
    const TemplateSet set = parse_set(kRich);
    const Trip t = round_trip(set, 100000, 2, {}, 0);
    EXPECT_EQ(t.records, 100000u);
}

TEST(FastRoundTrip, WithResetsAndWithoutExtremes) {
    const TemplateSet rich = parse_set(kRich);
    const TemplateSet s = sse();
    EXPECT_EQ(round_trip(rich, 20000, 3, {}, 7).records, 20000u);
    EXPECT_EQ(round_trip(s, 20000, 4, {}, 1).records, 20000u);
    RandomOptions calm;
    calm.extremes = false;
    calm.absent_probability = 0.5;
    EXPECT_EQ(round_trip(rich, 20000, 5, calm, 0).records, 20000u);
}

TEST(FastRoundTrip, LongSequencesAndStrings) {
    const TemplateSet book = parse_set(R"(<templates><template name="Book" id="1">
      <sequence name="Levels"><length name="N"><copy/></length>
        <uInt32 name="Px"><delta/></uInt32><string name="S"><copy/></string>
        <group name="G" presence="optional"><byteVector name="X"/></group>
      </sequence></template></templates>)");
    RandomOptions o;
    o.max_sequence_length = 3000;
    o.max_string_length = 300;
    EXPECT_EQ(round_trip(book, 100, 6, o, 0).records, 100u);
    o.max_sequence_length = 4;
    EXPECT_EQ(round_trip(parse_set(kRich), 2000, 7, o, 0).records, 2000u);
}

// Fuzz finding (fuzz_fast, heap-buffer-overflow in the dictionary journal):
// run() reserved one journal entry per instruction of its segment, but a
// sequence or group in the segment spends entries of its own (one run per
// element), so the fields after a long sequence wrote past the journal.
// Many copy fields after a sequence of many elements, round-tripped: under
// `make SANITIZE=1 test` the overflow aborted here.
TEST(FastRoundTrip, FieldsAfterALongSequenceFitTheJournal) {
    std::string xml = R"(<templates><template name="T" id="1">
      <sequence name="Levels"><length name="N"><copy/></length><uInt32 name="Px"><delta/></uInt32></sequence>)";
    for (int k = 0; k < 60; ++k) xml += "<uInt32 name=\"F" + std::to_string(k) + "\"><copy/></uInt32>";
    xml += "<group name=\"G\"><uInt32 name=\"GU\"><increment/></uInt32></group></template></templates>";
    const TemplateSet set = parse_set(xml);
    for (size_t levels : {0u, 1u, 37u, 97u, 98u, 200u, 1000u}) {
        std::vector<Record> els;
        for (size_t j = 0; j < levels; ++j) els.push_back(el({u(1000 + 3 * j)}));
        std::vector<Value> fields{seq(els)};
        for (int k = 0; k < 60; ++k) fields.push_back(u(static_cast<uint64_t>(k) * 11));
        fields.push_back(grp({u(5)}));
        const Record r = rec(1, fields);
        Encoder e(set);
        Decoder d(set);
        for (int msg = 0; msg < 3; ++msg) {  // later messages: copies and deltas from the dictionary
            const Buf wire = encode_one(e, r);
            size_t used = 0;
            ASSERT_EQ(d.decode(wire, used), Decoder::Status::Ok) << levels << ": " << d.error().message();
            EXPECT_EQ(used, wire.size());
            EXPECT_EQ(to_record(d.message()), r) << levels << " levels, message " << msg;
        }
    }
}

// Fuzz finding (fuzz_fast, stack overflow): a template whose dynamic
// templateRef may name itself nested as deep as the input was long. Now
// deeper than DecoderOptions::max_dynamic_depth is error "limit".
TEST(FastDecode, DynamicTemplateRefNestingIsBounded) {
    const TemplateSet set = parse_set(R"(<templates>
      <template name="Dyn" id="3"><uInt32 name="DU" id="30"/><templateRef/></template>
      <template name="Leaf" id="4"><uInt32 name="L" id="40"/></template></templates>)");
    // Each level: pmap (template id present), id 3, DU = 1; then a Leaf.
    auto nested = [](size_t levels) {
        Buf b;
        for (size_t k = 0; k < levels; ++k) b.insert(b.end(), {0xc0, 0x83, 0x81});
        b.insert(b.end(), {0xc0, 0x84, 0x81});
        return b;
    };
    for (size_t levels : {1u, 10u, 31u}) {
        Decoder d(set);
        const Buf wire = nested(levels);
        size_t used = 0;
        ASSERT_EQ(d.decode(wire, used), Decoder::Status::Ok) << levels << ": " << d.error().message();
        EXPECT_EQ(used, wire.size());
    }
    for (size_t levels : {33u, 1000u, 100000u}) {
        Decoder d(set);
        const Buf wire = nested(levels);
        size_t used = 99;
        ASSERT_EQ(d.decode(wire, used), Decoder::Status::Error) << levels;
        EXPECT_EQ(used, 0u);
        EXPECT_NE(d.error().message().find("max_dynamic_depth"), std::string::npos) << d.error().message();
    }
}

TEST(FastRoundTrip, StaticTemplateRefInlinesFields) {
    const TemplateSet set = parse_set(kRich);
    const Template* n = set.find("Nested");
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->field_index("BaseSeq"), 0);
    EXPECT_EQ(n->field_index("BaseTag"), 1);
    EXPECT_EQ(n->field_index("Plain"), 2);
    EXPECT_EQ(n->field_index("nope"), -1);
    EXPECT_EQ(set.find(90u)->name(), "Base");
    EXPECT_EQ(set.size(), 6u + 1u);
}

// ---- NeedMore: every prefix -----------------------------------------------------

TEST(FastNeedMore, EveryPrefixThenTheWholeMessage) {
    const TemplateSet set = parse_set(kRich);
    std::mt19937_64 rng(9);
    RandomOptions o;
    o.templates = &set;
    Encoder e(set);
    Decoder d(set);
    d.set_stream_offset(5000);
    size_t prefixes = 0;
    for (int k = 0; k < 300; ++k) {
        const Template& t = *set.templates()[rng() % set.size()];
        const Record r = random_record(t, rng, o);
        const Buf wire = encode_one(e, r);
        const std::string before = d.dump_dictionary();
        const uint64_t offset = d.stream_offset();
        for (size_t len = 0; len < wire.size(); ++len) {
            const Buf part(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(len));
            size_t used = 99;
            ASSERT_EQ(d.decode(part, used), Decoder::Status::NeedMore)
                << "message " << k << " prefix " << len << "/" << wire.size() << ": " << d.error().message();
            EXPECT_EQ(used, 0u);
            ASSERT_EQ(d.dump_dictionary(), before) << "message " << k << " prefix " << len;
            ++prefixes;
        }
        EXPECT_EQ(d.messages(), static_cast<uint64_t>(k));
        EXPECT_EQ(d.stream_offset(), offset);
        const Decoded got = decode_one(d, wire);
        ASSERT_EQ(got.status, Decoder::Status::Ok) << d.error().message();
        ASSERT_EQ(got.record, r);
        EXPECT_EQ(d.stream_offset(), offset + wire.size());
    }
    EXPECT_GT(prefixes, 3000u);
}

TEST(FastNeedMore, SseStreamInPieces) {
    // A stream fed in random chunks, the way a TCP reader would.
    const TemplateSet set = sse();
    std::mt19937_64 rng(10);
    Encoder e(set);
    Buf stream;
    std::vector<Record> sent;
    for (int k = 0; k < 2000; ++k) {
        sent.push_back(random_record(*set.templates()[rng() % set.size()], rng));
        ASSERT_TRUE(e.encode(sent.back(), stream).ok());
    }
    Decoder d(set);
    size_t have = 0, start = 0, n = 0;
    while (n < sent.size()) {
        have = std::min(stream.size(), have + static_cast<size_t>(rng() % 40));
        for (;;) {
            size_t used = 0;
            const auto st = d.decode(std::span(stream.data() + start, have - start), used);
            if (st == Decoder::Status::NeedMore) break;
            ASSERT_EQ(st, Decoder::Status::Ok) << d.error().message();
            ASSERT_EQ(to_record(d.message()), sent[n]) << "message " << n;
            start += used;
            ++n;
        }
    }
    EXPECT_EQ(start, stream.size());
}

// ---- errors ---------------------------------------------------------------------

struct ErrCase {
    const char* name;
    const char* fields;
    std::vector<Buf> messages;  // all but the last decode fine
    const char* code;
    const char* field;
    uint64_t offset_in_last;  // byte offset of the error inside the last message
};

class DecodeErrors : public ::testing::TestWithParam<ErrCase> {};

TEST_P(DecodeErrors, CodeIndexOffsetField) {
    const ErrCase& c = GetParam();
    const TemplateSet set = one(c.fields);
    Decoder d(set);
    d.set_stream_offset(1000);
    uint64_t at = 1000;
    for (size_t k = 0; k + 1 < c.messages.size(); ++k) {
        const Decoded ok = decode_one(d, c.messages[k]);
        ASSERT_EQ(ok.status, Decoder::Status::Ok) << d.error().message();
        at += ok.used;
    }
    const std::string before = d.dump_dictionary();
    size_t used = 7;
    ASSERT_EQ(d.decode(c.messages.back(), used), Decoder::Status::Error);
    EXPECT_EQ(used, 0u);
    const DecodeError& err = d.error();
    EXPECT_EQ(err.code, c.code) << err.message();
    EXPECT_EQ(err.field, c.field) << err.message();
    EXPECT_EQ(err.message_index, c.messages.size() - 1) << err.message();
    EXPECT_EQ(err.byte_offset, at + c.offset_in_last) << err.message();
    EXPECT_NE(err.message().find(std::string(c.code) + ":"), std::string::npos);
    EXPECT_EQ(d.dump_dictionary(), before);  // rolled back
    EXPECT_EQ(d.messages(), c.messages.size() - 1);
}

const Buf kHead{0xc0, 0x81};  // pmap (template id only), template id 1

INSTANTIATE_TEST_SUITE_P(
    Codes, DecodeErrors,
    ::testing::Values(
        ErrCase{"D2_uInt32", "<uInt32 name='F'/>", {cat(kHead, {0x10, 0x00, 0x00, 0x00, 0x80})}, "D2", "F", 2},
        ErrCase{"D2_int32", "<int32 name='F'/>", {cat(kHead, {0x08, 0x00, 0x00, 0x00, 0x80})}, "D2", "F", 2},
        ErrCase{"D2_uInt64", "<uInt64 name='F'/>", {cat(kHead, {0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x80})}, "D2", "F", 2},
        ErrCase{"D2_huge", "<uInt64 name='F'/>", {cat(kHead, Buf(30, 0x7f))}, "D2", "F", 2},
        ErrCase{"D2_length", "<string name='F' charset='unicode'/>", {cat(kHead, {0x10, 0x00, 0x00, 0x00, 0x80})}, "D2", "F", 2},
        ErrCase{"D4", "<uInt32 name='A'><copy key='k'/></uInt32><string name='B'><copy key='k'/></string>",
                {cat(pmap({1, 1, 0}), {0x81, 0x85})}, "D4", "B", 3},
        ErrCase{"D5", "<uInt32 name='F'><copy/></uInt32>", {cat(pmap({1, 0}), {0x81})}, "D5", "F", 2},
        ErrCase{"D5_increment", "<int64 name='F'><increment/></int64>", {cat(pmap({1, 0}), {0x81})}, "D5", "F", 2},
        ErrCase{"D5_tail", "<string name='F'><tail/></string>", {cat(pmap({1, 0}), {0x81})}, "D5", "F", 2},
        ErrCase{"D5_template_id", "<uInt32 name='F'/>", {{0x80, 0x81}}, "D5", "TemplateID", 1},
        ErrCase{"D6", "<uInt32 name='A' presence='optional'><copy key='k'/></uInt32><uInt32 name='B'><copy key='k'/></uInt32>",
                {cat(pmap({1, 1, 0}), {0x81, 0x80})}, "D6", "B", 3},
        ErrCase{"D6_delta", "<uInt32 name='A' presence='optional'><copy key='k'/></uInt32><uInt32 name='B'><delta key='k'/></uInt32>",
                {cat(pmap({1, 1}), {0x81, 0x80, 0x81})}, "D6", "B", 3},
        ErrCase{"D7", "<string name='F'><delta/></string>", {cat(kHead, {0x85, 0x80})}, "D7", "F", 2},
        ErrCase{"D7_front", "<string name='F'><delta value='ab'/></string>", {cat(kHead, {0xfc, 0x80})}, "D7", "F", 2},
        ErrCase{"D9", "<uInt32 name='F'/>", {{0xc0, 0xe3}}, "D9", "TemplateID", 1},
        ErrCase{"R1", "<decimal name='F'/>", {cat(kHead, {0x00, 0xc0, 0x81})}, "R1", "F", 2},
        ErrCase{"R1_delta", "<decimal name='F'><delta/></decimal>", {cat(kHead, {0xbf, 0x81}), {0x80, 0x81, 0x80}}, "R1", "F", 1},
        ErrCase{"R1_split", "<decimal name='F'><exponent><copy/></exponent><mantissa/></decimal>",
                {cat(pmap({1, 1}), {0x81, 0x7f, 0x80, 0x81})}, "R1", "F", 2},
        ErrCase{"R4_increment", "<uInt32 name='F'><increment/></uInt32>",
                {cat(pmap({1, 1}), {0x81, 0x0f, 0x7f, 0x7f, 0x7f, 0xff}), pmap({0, 0})}, "R4", "F", 1},
        ErrCase{"R4_delta", "<int32 name='F'><delta/></int32>", {cat(kHead, {0x08, 0x00, 0x00, 0x00, 0x80})}, "R4", "F", 2},
        ErrCase{"R4_mantissa", "<decimal name='F'><delta/></decimal>",
                {cat(kHead, {0x80, 0x00, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0xff}), {0x80, 0x80, 0x81}}, "R4", "F", 1},
        ErrCase{"R9", "<string name='F'/>", {cat(kHead, {0x00, 0x41, 0xc2})}, "R9", "F", 2},
        ErrCase{"Nested", "<sequence name='S'><uInt32 name='A'><copy/></uInt32></sequence>",
                {cat(kHead, {0x82, 0xc0, 0x81, 0x80}), {0x80, 0x82, 0xc0, 0x81, 0xc0, 0x10, 0x00, 0x00, 0x00, 0x80}}, "D2", "S[1].A", 5},
        ErrCase{"NestedGroup", "<group name='G'><uInt32 name='A'><copy/></uInt32></group>",
                {cat(kHead, {0x80})}, "D5", "G.A", 3}),
    [](const ::testing::TestParamInfo<ErrCase>& p) { return std::string(p.param.name); });

TEST(FastErrors, LimitsOnLengths) {
    const TemplateSet set = one("<byteVector name='B'/><sequence name='S'><length name='N'/><uInt32 name='A'><constant value='1'/></uInt32></sequence>");
    DecoderOptions o;
    o.max_string_length = 100;
    o.max_sequence_length = 10;
    Decoder d(set, o);
    EXPECT_EQ(decode_one(d, cat(kHead, {0x01, 0x80, 0x80})).status, Decoder::Status::Error);  // 128 bytes
    EXPECT_EQ(d.error().code, "limit");
    EXPECT_EQ(d.error().field, "B");
    EXPECT_EQ(decode_one(d, cat(kHead, {0x80, 0x8b})).status, Decoder::Status::Error);  // 11 elements
    EXPECT_EQ(d.error().code, "limit");
    EXPECT_EQ(d.error().field, "N");
    const Decoded ok = decode_one(d, cat(kHead, {0x80, 0x8a}));
    ASSERT_EQ(ok.status, Decoder::Status::Ok);
    EXPECT_EQ(std::get<Sequence>(ok.record.fields[1]).elements.size(), 10u);
    // A byte vector longer than the input so far is NeedMore, not an error.
    EXPECT_EQ(decode_one(d, cat(kHead, {0x85, 1, 2})).status, Decoder::Status::NeedMore);
}

TEST(FastNeedMore, MinimumElementSizeIsALowerBound) {
    // Each element is one byte: a dynamic reference with an implied template
    // id and no fields of its own. 40 of them fit in 40 bytes.
    const TemplateSet set = parse_set(
        "<templates><template name='T' id='1'><sequence name='S'><templateRef/></sequence></template>"
        "<template name='E' id='2'><uInt32 name='X' presence='optional'><constant value='1'/></uInt32></template></templates>");
    std::vector<Record> els(40, el({Value(Group(rec(2, {absent})))}));
    const Record r = rec(1, {seq(els)});
    Encoder e(set);
    const Buf wire = encode_one(e, r);
    EXPECT_EQ(wire.size(), 2u + 1u + 2u + 39u);  // pmap, tid | length | pmap, tid 2 | 39 pmaps
    Decoder d(set);
    const Decoded got = decode_one(d, wire);
    ASSERT_EQ(got.status, Decoder::Status::Ok) << d.error().message();
    EXPECT_EQ(got.record, r);
}

TEST(FastErrors, GarbageNeverCrashes) {
    const TemplateSet sets[] = {sse(), parse_set(kRich)};
    std::mt19937_64 rng(11);
    size_t ok = 0, more = 0, err = 0;
    for (const TemplateSet& set : sets) {
        Decoder d(set);
        for (int k = 0; k < 20000; ++k) {
            Buf junk(rng() % 64);
            for (uint8_t& b : junk) b = static_cast<uint8_t>(rng());
            if (k % 3 == 0 && junk.size() > 2) {  // a plausible head: pmap + known template id
                junk[0] = 0xc0 | static_cast<uint8_t>(rng() & 0x3f);
                const uint32_t id = set.templates()[rng() % set.size()]->id();
                junk[1] = static_cast<uint8_t>(id >> 7);
                junk[2] = static_cast<uint8_t>((id & 0x7f) | 0x80);
            }
            size_t off = 0;
            for (int n = 0; n < 8 && off < junk.size(); ++n) {
                size_t used = 0;
                const auto st = d.decode(std::span(junk).subspan(off), used);
                if (st == Decoder::Status::Ok) {
                    ASSERT_GT(used, 0u);
                    ASSERT_LE(off + used, junk.size());
                    std::string json;
                    append_json(d.message(), json);
                    (void)to_record(d.message());
                    off += used;
                    ++ok;
                } else {
                    st == Decoder::Status::NeedMore ? ++more : ++err;
                    ASSERT_FALSE(st == Decoder::Status::Error && d.error().code.empty());
                    break;
                }
            }
        }
    }
    EXPECT_GT(err, 1000u);
    EXPECT_GT(more, 1000u);
    EXPECT_GT(ok, 100u);
}

TEST(FastErrors, EncoderRejectsBadRecordsAndRollsBack) {
    const TemplateSet set = one("<uInt32 name='C'><copy/></uInt32><string name='S'/><decimal name='D' presence='optional'/>");
    Encoder e(set);
    Buf out{0xaa};
    struct Bad {
        Record r;
        const char* what;
    };
    const Bad bad[] = {
        {rec(1, {u(1), absent, absent}), "mandatory field absent"},
        {rec(1, {u(uint64_t{1} << 33), str("x"), absent}), "does not fit"},
        {rec(1, {str("x"), str("x"), absent}), "not an integer"},
        {rec(1, {u(1), str("\xc3\xa9"), absent}), "non-ASCII"},
        {rec(1, {u(1), str("x"), dec(64, 1)}), "R1"},
        {rec(1, {u(1), str("x")}), "fields"},
        {rec(7, {u(1), str("x"), absent}), "unknown template id"},
    };
    for (const Bad& b : bad) {
        const auto res = e.encode(b.r, out);
        ASSERT_FALSE(res.ok()) << to_string(b.r);
        EXPECT_NE(res.error().message().find(b.what), std::string::npos) << res.error().message();
        EXPECT_EQ(out, Buf{0xaa});
    }
    // Nothing above touched the dictionaries: C is still sent, with the template id.
    EXPECT_EQ(hex(encode_one(e, rec(1, {u(5), str("x"), absent}))), hex(cat(pmap({1, 1}), {0x81, 0x85, 0xf8, 0x80})));
}

// ---- malformed XML --------------------------------------------------------------

struct XmlCase {
    const char* name;
    const char* xml;
    const char* what;
    int line;
};

class MalformedXml : public ::testing::TestWithParam<XmlCase> {};

TEST_P(MalformedXml, ErrorNamesFileLineAndElement) {
    const XmlCase& c = GetParam();
    const auto r = TemplateSet::parse(c.xml, "bad.xml");
    ASSERT_FALSE(r.ok());
    const std::string m = r.error().message();
    EXPECT_NE(m.find("bad.xml"), std::string::npos) << m;
    EXPECT_NE(m.find(c.what), std::string::npos) << m;
    EXPECT_NE(m.find("line " + std::to_string(c.line) + ":"), std::string::npos) << m;
}

INSTANTIATE_TEST_SUITE_P(
    Static, MalformedXml,
    ::testing::Values(
        XmlCase{"NotWellFormed", "<templates>\n<template name='T' id='1'>\n</templates>", "XML", 2},
        XmlCase{"UnknownOperator", "<templates>\n<template name='T' id='1'>\n<uInt32 name='F'>\n<copyy/></uInt32></template></templates>", "unknown operator or element <copyy>", 4},
        XmlCase{"UnknownType", "<templates>\n<template name='T' id='1'>\n<float name='F'/></template></templates>", "unknown field type <float>", 3},
        XmlCase{"MissingId", "<templates>\n<template name='T'>\n<uInt32 name='F'/></template></templates>", "has no id", 2},
        XmlCase{"BadId", "<templates>\n<template name='T' id='x1'/></templates>", "bad template id", 2},
        XmlCase{"MissingName", "<templates>\n<template name='T' id='1'>\n\n<uInt32/></template></templates>", "field without name", 4},
        XmlCase{"FieldInsideField", "<templates><template name='T' id='1'>\n<uInt32 name='F'>\n<uInt32 name='G'/></uInt32></template></templates>", "<uInt32> in \"F\"", 3},
        XmlCase{"LengthInGroup", "<templates><template name='T' id='1'>\n<group name='G'>\n<length name='N'/></group></template></templates>", "unexpected <length>", 3},
        XmlCase{"OperatorOnTemplate", "<templates><template name='T' id='1'>\n<copy/></template></templates>", "unknown field type <copy>", 2},
        XmlCase{"TemplateInTemplate", "<templates><template name='T' id='1'>\n<template name='U' id='2'/></template></templates>", "unknown field type <template>", 2},
        XmlCase{"DuplicateId", "<templates><template name='T' id='1'/>\n<template name='U' id='1'/></templates>", "duplicate template id 1", 2},
        XmlCase{"DuplicateName", "<templates><template name='T' id='1'/>\n<template name='T' id='2'/></templates>", "duplicate template name", 2},
        XmlCase{"DuplicateField", "<templates>\n<template name='T' id='1'><uInt32 name='F'/>\n<uInt32 name='F'/></template></templates>", "duplicate field name \"F\"", 2},
        XmlCase{"ConstantWithoutValue", "<templates><template name='T' id='1'>\n<uInt32 name='F'>\n<constant/></uInt32></template></templates>", "constant without value", 3},
        XmlCase{"DefaultWithoutValue", "<templates><template name='T' id='1'>\n<uInt32 name='F'><default/></uInt32></template></templates>", "mandatory default without value", 2},
        XmlCase{"BadInitialValue", "<templates><template name='T' id='1'>\n<uInt32 name='F'><copy value='-1'/></uInt32></template></templates>", "bad initial value \"-1\"", 2},
        XmlCase{"BadInitialTooBig", "<templates><template name='T' id='1'>\n<uInt32 name='F'><copy value='4294967296'/></uInt32></template></templates>", "bad initial value", 2},
        XmlCase{"BadInitialDecimal", "<templates><template name='T' id='1'>\n<decimal name='F'><copy value='1.2.3'/></decimal></template></templates>", "bad initial value", 2},
        XmlCase{"BadInitialHex", "<templates><template name='T' id='1'>\n<byteVector name='F'><copy value='abc'/></byteVector></template></templates>", "bad initial value", 2},
        XmlCase{"NotApplicable", "<templates><template name='T' id='1'>\n<uInt32 name='F'><tail/></uInt32></template></templates>", "tail is not applicable to uInt32", 2},
        XmlCase{"IncrementOnString", "<templates><template name='T' id='1'>\n<string name='F'><increment/></string></template></templates>", "increment is not applicable", 2},
        XmlCase{"TwoOperators", "<templates><template name='T' id='1'><uInt32 name='F'><copy/>\n<delta/></uInt32></template></templates>", "more than one operator", 2},
        XmlCase{"BadPresence", "<templates><template name='T' id='1'>\n<uInt32 name='F' presence='maybe'/></template></templates>", "bad presence", 2},
        XmlCase{"BadCharset", "<templates><template name='T' id='1'>\n<string name='F' charset='latin1'/></template></templates>", "bad charset", 2},
        XmlCase{"BadReset", "<templates>\n<template name='T' id='1' reset='sometimes'/></templates>", "bad reset", 2},
        XmlCase{"UnknownRef", "<templates><template name='T' id='1'>\n<templateRef name='Nope'/></template></templates>", "unknown template \"Nope\"", 2},
        XmlCase{"RefCycle", "<templates>\n<template name='T' id='1'><templateRef name='U'/></template>\n<template name='U' id='2'><templateRef name='T'/></template></templates>", "cycle", 2},
        XmlCase{"WrongRoot", "<fast>\n</fast>", "root element must be <templates>", 1}),
    [](const ::testing::TestParamInfo<XmlCase>& p) { return std::string(p.param.name); });

TEST(FastTemplates, LoadMissingFileIsIoError) {
    const auto r = TemplateSet::load("/nonexistent/sse.xml");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind, ErrorKind::Io);
    EXPECT_NE(r.error().message().find("/nonexistent/sse.xml"), std::string::npos);
}

TEST(FastTemplates, SseFile) {
    const TemplateSet set = sse();
    ASSERT_EQ(set.size(), 3u);
    const Template* trade = set.find(3201);
    const Template* order = set.find(5801);
    ASSERT_TRUE(trade && order && set.find(3111));
    EXPECT_EQ(trade->name(), "Trade");
    EXPECT_EQ(order->name(), "Order");
    EXPECT_EQ(set.find("Snapshot")->id(), 3111u);
    for (const Template* t : {trade, order}) {
        const int k = t->field_index("SendTimeNs");
        ASSERT_GE(k, 0) << t->name();
        const FieldInfo& f = t->fields()[static_cast<size_t>(k)];
        EXPECT_TRUE(f.optional);
        EXPECT_EQ(f.type, FieldType::UInt64);
        EXPECT_EQ(f.op.op, Operator::None);
        for (const FieldInfo& g : t->fields()) EXPECT_NE(g.id, 0u) << g.name;
    }
    const FieldInfo& price = trade->fields()[static_cast<size_t>(trade->field_index("TradePrice"))];
    EXPECT_TRUE(price.split_decimal);
    EXPECT_EQ(price.mantissa.op, Operator::Delta);
    const FieldInfo& bids = set.find(3111)->fields()[static_cast<size_t>(set.find(3111)->field_index("BidLevels"))];
    EXPECT_EQ(bids.type, FieldType::Sequence);
    EXPECT_EQ(bids.length_name, "NoBidLevel");
    size_t n = 0;
    for (const Template* t : set) n += t->fields().size();
    EXPECT_GT(n, 30u);
}

TEST(FastTemplates, MakeRecordHasTheRightShape) {
    const TemplateSet set = parse_set(kRich);
    for (const Template* t : set) {
        if (t->name() == "Dyn") continue;  // a dynamic reference has no default
        const Record r = t->make_record();
        EXPECT_EQ(r.template_id, t->id());
        EXPECT_EQ(r.fields.size(), t->fields().size());
        Encoder e(set);
        Buf out;
        EXPECT_TRUE(e.encode(r, out).ok()) << t->name();
        Decoder d(set);
        EXPECT_EQ(decode_one(d, out).record, r) << t->name();
    }
}

// ---- views and JSON -------------------------------------------------------------

TEST(FastDecimal, PlainExactNotation) {
    const std::pair<Decimal, const char*> cases[] = {
        {{0, 26}, "26"},        {{-3, 12345}, "12.345"}, {{-2, -5}, "-0.05"}, {{2, 12}, "1200"},
        {{-2, 2600}, "26.00"},  {{0, 0}, "0"},           {{3, 0}, "0"},       {{-3, 0}, "0.000"},
        {{-1, INT64_MIN}, "-922337203685477580.8"},      {{-20, 1}, "0.00000000000000000001"},
        {{0, INT64_MAX}, "9223372036854775807"},         {{-5, 100000}, "1.00000"},
        {{1, -3}, "-30"},
    };
    for (const auto& [d, want] : cases) EXPECT_EQ(d.to_string(), want) << d.exponent << " " << d.mantissa;
}

const char* kJsonTemplates = R"(<templates>
  <template name="Quote" id="7">
    <uInt32 name="Seq"/>
    <int64 name="Delta"/>
    <decimal name="P1"/>
    <decimal name="P2"/>
    <decimal name="P3" presence="optional"/>
    <decimal name="Missing" presence="optional"/>
    <string name="Text"/>
    <string name="Uni" charset="unicode"/>
    <byteVector name="Raw"/>
    <uInt64 name="Big"/>
    <sequence name="Levels"><length name="NoLevels"/><uInt32 name="Px"/><string name="Tag" presence="optional"/></sequence>
    <group name="Extra"><int32 name="Flag"/></group>
    <templateRef/>
  </template>
  <template name="Tiny" id="8"><uInt32 name="X"/></template>
</templates>)";

TEST(FastJson, KnownMessage) {
    const TemplateSet set = parse_set(kJsonTemplates);
    const Record r = rec(7, {u(12), i(-9000000000), dec(0, 26), dec(-3, 12345), dec(-2, -5), absent,
                             str("q\"b\\s\x01\t\x7f"), str("caf\xc3\xa9 \xff!"), bytes({0x00, 0xab, 0x10}),
                             u(UINT64_MAX), seq({el({u(1), str("a")}), el({u(2), absent})}), grp({i(-1)}),
                             Value(Group(rec(8, {u(5)})))});
    Encoder e(set);
    Decoder d(set);
    const Decoded got = decode_one(d, encode_one(e, r));
    ASSERT_EQ(got.status, Decoder::Status::Ok) << d.error().message();
    EXPECT_EQ(got.record, r);
    std::string json = "{";
    append_json(d.message(), json);
    json += "}";
    EXPECT_EQ(json,
              R"({"template":7,"name":"Quote","fields":{"Seq":12,"Delta":-9000000000,"P1":"26","P2":"12.345",)"
              R"("P3":"-0.05","Text":"q\"b\\s\u0001\t\u007f","Uni":"café \ufffd!","Raw":"00ab10",)"
              R"("Big":18446744073709551615,"Levels":[{"Px":1,"Tag":"a"},{"Px":2}],"Extra":{"Flag":-1},)"
              R"("templateRef":{"template":8,"name":"Tiny","fields":{"X":5}}}})");
    // The accessors agree.
    const MessageView& m = d.message();
    EXPECT_EQ(m.template_id(), 7u);
    EXPECT_EQ(m.tmpl().name(), "Quote");
    EXPECT_EQ(m.uint_at(0), 12u);
    EXPECT_EQ(m.int_at(1), -9000000000);
    EXPECT_EQ(m.uint_at(1), std::nullopt);  // wrong type
    EXPECT_EQ(m.decimal_at(3)->to_string(), "12.345");
    EXPECT_FALSE(m.present(5));
    EXPECT_EQ(m.decimal_at(5), std::nullopt);
    EXPECT_EQ(m.string_at(6)->size(), 8u);
    EXPECT_EQ(m.bytes_at(8)->size(), 3u);
    EXPECT_EQ(m.int_at(9), std::nullopt);  // above INT64_MAX
    EXPECT_EQ(m.sequence_size(10), 2u);
    EXPECT_EQ(m.element(10, 1)->uint_at(0), 2u);
    EXPECT_EQ(m.element(10, 2), std::nullopt);
    EXPECT_EQ(m.group(11)->int_at(0), -1);
    EXPECT_EQ(m.dynamic(12)->template_id(), 8u);
    EXPECT_EQ(m.uint_at(99), std::nullopt);
    EXPECT_EQ(m.uint_at(-1), std::nullopt);
}

TEST(FastJson, NoAllocationOnceWarm) {
    const TemplateSet set = sse();
    std::mt19937_64 rng(12);
    Encoder e(set);
    Buf wire;
    const Template& t = *set.find(3111);
    ASSERT_TRUE(e.encode(random_record(t, rng), wire).ok());
    Decoder d(set);
    size_t used = 0;
    ASSERT_EQ(d.decode(wire, used), Decoder::Status::Ok);
    std::string json;
    json.reserve(1 << 16);
    const char* data = json.data();
    append_json(d.message(), json);
    EXPECT_EQ(json.data(), data);  // appended in place
    EXPECT_NE(json.find("\"template\":3111,\"name\":\"Snapshot\""), std::string::npos);
}

// ---- allocation -----------------------------------------------------------------

TEST(FastAllocation, NoneOnceWarm) {
    const uint64_t probe = g_allocations.load();
    ::operator delete(::operator new(16));  // a direct call: never elided
    if (g_allocations.load() == probe) GTEST_SKIP() << "operator new is replaced elsewhere";
    // Decode a stream once to warm the buffers up, then again from reset:
    // the second pass must not allocate at all (nor must append_json).
    const TemplateSet sets[] = {sse(), parse_set(kRich)};
    for (const TemplateSet& set : sets) {
        std::mt19937_64 rng(13);
        RandomOptions o;
        o.templates = &set;
        Encoder e(set);
        Buf stream;
        for (int k = 0; k < 2000; ++k)
            ASSERT_TRUE(e.encode(random_record(*set.templates()[rng() % set.size()], rng, o), stream).ok());
        Decoder d(set);
        std::string json;
        json.reserve(1 << 20);
        uint64_t before = 0;
        for (int pass = 0; pass < 2; ++pass) {
            d.reset();
            if (pass == 1) before = g_allocations.load();
            size_t off = 0, n = 0;
            while (off < stream.size()) {
                size_t used = 0;
                ASSERT_EQ(d.decode(std::span(stream).subspan(off), used), Decoder::Status::Ok);
                json.clear();
                append_json(d.message(), json);
                off += used;
                ++n;
            }
            EXPECT_EQ(n, 2000u);
        }
        EXPECT_EQ(g_allocations.load(), before);
    }
}

}  // namespace
}  // namespace etcpipe::test
