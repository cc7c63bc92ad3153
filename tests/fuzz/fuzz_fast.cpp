// libFuzzer target: the FAST decoder on arbitrary bytes, with the shipped
// SSE templates and a template set that uses every type and operator.
// Properties checked (a violation aborts, so the fuzzer keeps the input):
//   - decode() never crashes, never reads out of bounds (ASan), and on
//     NeedMore/Error consumes nothing;
//   - a message decoded from fresh dictionaries, encoded again from fresh
//     dictionaries, decodes to the same record.
// `make test` runs it for a bounded time, `make fuzz` for longer.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "mdfeed/fast.hpp"

namespace {

using etcpipe::fast::Decoder;
using etcpipe::fast::Encoder;
using etcpipe::fast::TemplateSet;

constexpr const char* kAllTypes = R"(<?xml version="1.0"?>
<templates xmlns="http://www.fixprotocol.org/ns/fast/td/1.1">
  <template name="All" id="1">
    <uInt32 name="U32" id="1"><copy/></uInt32>
    <int32 name="I32" id="2" presence="optional"><delta/></int32>
    <uInt64 name="U64" id="3"><increment value="7"/></uInt64>
    <int64 name="I64" id="4" presence="optional"><default value="-5"/></int64>
    <decimal name="Px" id="5"><delta/></decimal>
    <decimal name="Px2" id="6" presence="optional"><exponent><copy value="-2"/></exponent><mantissa><delta/></mantissa></decimal>
    <string name="S" id="7"><tail/></string>
    <string name="S2" id="8" presence="optional"><delta/></string>
    <string name="U" id="9" charset="unicode" presence="optional"><copy/></string>
    <byteVector name="B" id="10" presence="optional"/>
    <string name="K" id="11"><constant value="X"/></string>
    <sequence name="Levels" presence="optional">
      <length name="NoLevels" id="12"><copy/></length>
      <decimal name="LvPx" id="13"><delta/></decimal>
      <uInt64 name="LvQty" id="14" presence="optional"><copy/></uInt64>
    </sequence>
    <group name="G" presence="optional">
      <uInt32 name="GU" id="15"><increment/></uInt32>
      <string name="GS" id="16" presence="optional"/>
    </group>
    <templateRef name="Tail"/>
  </template>
  <template name="Tail" id="2" reset="Y">
    <uInt32 name="TU" id="20" presence="optional"><copy dictionary="global" key="shared"/></uInt32>
  </template>
  <template name="Dyn" id="3">
    <uInt32 name="DU" id="30"/>
    <templateRef/>
  </template>
</templates>
)";

struct Sets {
    std::optional<TemplateSet> sse, all;
};

Sets& sets() {
    static Sets s = [] {
        Sets x;
        auto a = TemplateSet::parse(kAllTypes, "fuzz_fast:all-types");
        if (!a) {
            std::fprintf(stderr, "fuzz_fast: %s\n", a.error().message().c_str());
            std::abort();
        }
        x.all.emplace(std::move(*a));
        auto s2 = TemplateSet::load("testdata/mdfeed/sse.xml");
        if (!s2) {
            std::fprintf(stderr, "fuzz_fast: %s (run from the repository root)\n",
                         s2.error().message().c_str());
            std::abort();
        }
        x.sse.emplace(std::move(*s2));
        return x;
    }();
    return s;
}

void check_round_trip(const TemplateSet& set, const etcpipe::fast::Record& rec) {
    Encoder enc(set);
    std::vector<uint8_t> bytes;
    if (!enc.encode(rec, bytes)) return;  // e.g. a dynamic reference the encoder refuses
    Decoder dec(set);
    size_t used = 0;
    if (dec.decode(bytes, used) != Decoder::Status::Ok || used != bytes.size() ||
        !(etcpipe::fast::to_record(dec.message()) == rec)) {
        std::fprintf(stderr, "round trip failed: %s\n", etcpipe::fast::to_string(rec).c_str());
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const TemplateSet& set = (data[0] & 1) ? *sets().all : *sets().sse;
    const bool reset_each = data[0] & 2;
    std::span<const uint8_t> in(data + 1, size - 1);
    Decoder dec(set);
    bool first = true;
    while (!in.empty()) {
        size_t used = 12345;
        const auto st = dec.decode(in, used);
        if (st != Decoder::Status::Ok) {
            if (used != 0) std::abort();
            break;
        }
        if (used == 0 || used > in.size()) std::abort();
        if (first) check_round_trip(set, etcpipe::fast::to_record(dec.message()));
        std::string json;
        etcpipe::fast::append_json(dec.message(), json);
        first = reset_each;
        if (reset_each) dec.reset();
        in = in.subspan(used);
    }
    return 0;
}
