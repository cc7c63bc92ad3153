// FAST 1.1 (FIX Adapted for STreaming) codec for the market-data path.
//
// TemplateSet::load() reads a template XML file and compiles every template
// into an instruction plan: a flat vector of operations with resolved
// dictionary slots, presence-map use and types, so decoding does no string
// lookups and, after warm-up, no heap allocation per message. Decoder decodes
// one message at a time into a reusable MessageView; Encoder writes Records
// with the same operators, omitting what the dictionaries already hold.
//
// Supported: presence maps; the template identifier (copy operator, global
// dictionary); uInt32/int32/uInt64/int64, decimal (one operator, or separate
// <exponent>/<mantissa> operators), ASCII and unicode strings, byteVector;
// sequences (named <length> with its own operator), groups, static and
// dynamic <templateRef>; operators none, constant, default, copy, increment,
// delta, tail; the global, template, type and user-named dictionaries with
// `key`; <template reset="Y"> (yes/Y/true/1).
//
// Errors carry the spec's codes: D2 integer out of range, D4 dictionary type
// mismatch, D5/D6 mandatory field with undefined/empty previous value, D7
// subtraction length too large, D9 unknown template id, R1 decimal exponent
// out of -63..63, R4 increment/delta overflow, R9 overlong string, "limit"
// for a length above DecoderOptions. Overlong integers and presence maps are
// accepted. Running out of bytes is never an error: decode() says NeedMore
// and leaves the dictionaries exactly as before the message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.hpp"

namespace etcpipe::fast {

// ---- values ----------------------------------------------------------------

// value = mantissa * 10^exponent, exactly as on the wire (not normalised).
struct Decimal {
    int32_t exponent = 0;
    int64_t mantissa = 0;
    // Plain notation, exact: "26", "12.345", "-0.05", "1200" for (2,12), "26.00" for (-2,2600).
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const Decimal&, const Decimal&) = default;
};
// Appends d.to_string() without a temporary string.
void append_decimal(const Decimal& d, std::string& out);

struct Bytes {
    std::vector<uint8_t> data;
    friend bool operator==(const Bytes&, const Bytes&) = default;
};

struct Record;

// Elements of a sequence, each in the element's field order.
struct Sequence {
    std::vector<Record> elements;
};

// A boxed Record: the fields of a group, or a dynamically referenced message
// (then template_id says which template). A moved-from Group holds nothing:
// assign to it or destroy it.
class Group {
  public:
    Group();
    explicit Group(Record r);
    Group(const Group& other);
    Group(Group&& other) noexcept;
    Group& operator=(const Group& other);
    Group& operator=(Group&& other) noexcept;
    ~Group();

    Record& operator*() { return *r_; }
    const Record& operator*() const { return *r_; }
    Record* operator->() { return r_.get(); }
    const Record* operator->() const { return r_.get(); }

  private:
    std::unique_ptr<Record> r_;
};

// Field value. monostate: absent. Unsigned fields hold uint64_t, signed ones
// int64_t; ASCII and unicode strings std::string (unicode: UTF-8 bytes as sent).
using Value = std::variant<std::monostate, int64_t, uint64_t, Decimal, std::string, Bytes,
                           Sequence, Group>;

struct Record {
    uint32_t template_id = 0;   // 0 in sequence elements and groups
    std::vector<Value> fields;  // in the template's (or element's) top-level field order
};

bool operator==(const Record& a, const Record& b);
bool operator==(const Sequence& a, const Sequence& b);
bool operator==(const Group& a, const Group& b);
// One line, for test failure messages: {3201| 7u, -3, 12.5, "abc", 0x00ff, [..], {..}, -}
std::string to_string(const Record& r);
std::string to_string(const Value& v);

// ---- templates -------------------------------------------------------------

enum class FieldType : uint8_t {
    UInt32, Int32, UInt64, Int64, Decimal, Ascii, Unicode, Bytes, Sequence, Group,
    TemplateRef,  // dynamic <templateRef/>; static ones are inlined
};
enum class Operator : uint8_t { None, Constant, Default, Copy, Increment, Delta, Tail };

const char* to_string(FieldType t);
const char* to_string(Operator op);

struct OperatorSpec {
    Operator op = Operator::None;
    std::string dictionary;    // resolved: "global", "template:<name>", "type:<name>", "user:<name>"
    std::string key;           // resolved key: the `key` attribute, else the field's name
    bool has_initial = false;  // `value` attribute given
    Value initial;             // typed initial value
};

struct FieldInfo {
    std::string name;
    uint32_t id = 0;  // the `id` attribute (tag), 0 if none
    FieldType type = FieldType::UInt32;
    bool optional = false;
    OperatorSpec op;                  // decimals: the single-field operator
    bool split_decimal = false;       // decimal with separate <exponent>/<mantissa>
    OperatorSpec exponent, mantissa;  // when split_decimal
    std::string length_name;          // sequences: the length field
    uint32_t length_id = 0;
    OperatorSpec length;
    std::vector<FieldInfo> children;  // group fields, sequence element fields
    int line = 0;                     // in the template file

    // Optional fields use the nullable representation unless they are constant.
    [[nodiscard]] bool nullable() const { return optional && op.op != Operator::Constant; }
};

namespace detail {
struct Plan;
struct SetImpl;
struct Store;
struct Cell;
class DecoderState;
class EncoderState;
struct Builder;
}  // namespace detail

class Template {
  public:
    Template();
    ~Template();
    Template(const Template&) = delete;
    Template& operator=(const Template&) = delete;

    [[nodiscard]] uint32_t id() const { return id_; }
    [[nodiscard]] const std::string& name() const { return name_; }
    // reset="Y": every dictionary is reset before each message of this template
    // (the template identifier's entry excepted).
    [[nodiscard]] bool resets() const { return reset_; }
    // Index among the top-level fields, -1 if absent.
    [[nodiscard]] int field_index(std::string_view name) const;
    [[nodiscard]] const std::vector<FieldInfo>& fields() const { return fields_; }
    // Right shape: optional fields absent, mandatory ones at their initial value
    // (else 0, "", empty sequence, group of defaults); template_id set.
    [[nodiscard]] Record make_record() const;

    [[nodiscard]] const detail::Plan& plan() const { return *plan_; }

  private:
    friend struct detail::Builder;
    uint32_t id_ = 0;
    std::string name_;
    bool reset_ = false;
    std::vector<FieldInfo> fields_;
    std::unique_ptr<detail::Plan> plan_;
};

// Element (group, sequence element) record with the right shape.
Record make_record(const std::vector<FieldInfo>& fields);

// Immutable once loaded; copies share it. Template pointers stay valid while
// any copy lives.
class TemplateSet {
  public:
    // Errors (ErrorKind::Data) name the file, the line and the element.
    static Result<TemplateSet> load(const std::string& path);
    static Result<TemplateSet> parse(std::string_view xml, const std::string& source_name);

    [[nodiscard]] const Template* find(uint32_t id) const;
    [[nodiscard]] const Template* find(std::string_view name) const;
    [[nodiscard]] size_t size() const;
    // In file order.
    [[nodiscard]] std::span<const Template* const> templates() const;
    [[nodiscard]] auto begin() const { return templates().begin(); }
    [[nodiscard]] auto end() const { return templates().end(); }

    [[nodiscard]] const detail::SetImpl& impl() const { return *impl_; }

  private:
    std::shared_ptr<const detail::SetImpl> impl_;
};

// ---- decoding --------------------------------------------------------------

struct DecodeError {
    std::string code;  // "D2","D4","D5","D6","D7","D9","R1","R4","R9","limit"
    uint64_t message_index = 0;
    uint64_t byte_offset = 0;  // stream offset of the field's first byte
    std::string field;         // "TradePrice", "NoBidLevel", "BidLevels[2].Price"
    std::string what;
    // "message 12 at byte 345, field TradePrice: D5: ..."
    [[nodiscard]] std::string message() const;
};

class MessageView;

// The fields of one segment (message, group, sequence element) of a decoded
// message. Accessors take top-level field indices of the segment; a wrong
// index or type gives nullopt. Valid until the next decode().
class SegmentView {
  public:
    [[nodiscard]] size_t size() const { return fields_ ? fields_->size() : 0; }
    [[nodiscard]] const std::vector<FieldInfo>& fields() const { return *fields_; }
    [[nodiscard]] bool present(int i) const;
    [[nodiscard]] std::optional<uint64_t> uint_at(int i) const;  // uInt32, uInt64
    [[nodiscard]] std::optional<int64_t> int_at(int i) const;    // any integer that fits int64
    [[nodiscard]] std::optional<Decimal> decimal_at(int i) const;
    [[nodiscard]] std::optional<std::string_view> string_at(int i) const;  // ASCII, unicode
    [[nodiscard]] std::optional<std::span<const uint8_t>> bytes_at(int i) const;
    [[nodiscard]] size_t sequence_size(int i) const;  // 0 when absent
    [[nodiscard]] std::optional<SegmentView> element(int i, size_t k) const;
    [[nodiscard]] std::optional<SegmentView> group(int i) const;
    [[nodiscard]] std::optional<MessageView> dynamic(int i) const;  // dynamic templateRef

  protected:
    friend class detail::DecoderState;
    [[nodiscard]] const detail::Cell* cell(int i) const;
    const detail::Store* store_ = nullptr;
    const std::vector<FieldInfo>* fields_ = nullptr;
    uint32_t base_ = 0;
};

class MessageView : public SegmentView {
  public:
    [[nodiscard]] uint32_t template_id() const { return tmpl_ ? tmpl_->id() : 0; }
    [[nodiscard]] const Template& tmpl() const { return *tmpl_; }

  private:
    friend class SegmentView;
    friend class detail::DecoderState;
    const Template* tmpl_ = nullptr;
};

struct DecoderOptions {
    size_t max_sequence_length = size_t{1} << 20;  // longer: error "limit"
    size_t max_string_length = size_t{1} << 20;    // strings, byte vectors
    // Dynamic templateRefs inside dynamic templateRefs: a template that
    // refers to any template can nest itself as deep as the input is long
    // (a stack overflow, found by fuzz_fast); deeper is error "limit".
    size_t max_dynamic_depth = 32;
};

class Decoder {
  public:
    explicit Decoder(const TemplateSet& set, DecoderOptions options = {});  // set outlives it
    ~Decoder();
    Decoder(const Decoder&) = delete;
    Decoder& operator=(const Decoder&) = delete;

    enum class Status { Ok, NeedMore, Error };
    // Decodes exactly one message starting at in[0]. Ok: `consumed` bytes were
    // used and message() is valid. NeedMore/Error: consumed = 0 and the
    // dictionaries are as before the call.
    Status decode(std::span<const uint8_t> in, size_t& consumed);
    [[nodiscard]] const MessageView& message() const;
    [[nodiscard]] const DecodeError& error() const;
    void reset();  // every dictionary entry (and the template id) to undefined
    void set_stream_offset(uint64_t offset_of_in0);
    [[nodiscard]] uint64_t stream_offset() const;
    [[nodiscard]] uint64_t messages() const;  // decoded so far (the message index in errors)
    // Every dictionary entry that is not undefined, one per line, for tests.
    [[nodiscard]] std::string dump_dictionary() const;

  private:
    std::unique_ptr<detail::DecoderState> s_;
};

// "\"template\":3201,\"name\":\"Trade\",\"fields\":{...}" without outer braces.
// Integers as JSON numbers, decimals as strings (Decimal::to_string), strings
// escaped (controls as \u00XX; invalid UTF-8 in unicode strings as \ufffd),
// byte vectors as lowercase hex strings, absent fields left out, sequences as
// arrays of objects, groups as objects, dynamic references as objects with
// their own "template"/"name"/"fields". Allocates only by growing `out`.
void append_json(const MessageView& m, std::string& out);
void append_json(const SegmentView& s, std::string& out);  // just the {...} of the fields

Record to_record(const MessageView& m);

// ---- encoding --------------------------------------------------------------

class Encoder {
  public:
    explicit Encoder(const TemplateSet& set);  // set outlives it
    ~Encoder();
    Encoder(const Encoder&) = delete;
    Encoder& operator=(const Encoder&) = delete;

    // Appends one message. On error `out` and the dictionaries are unchanged.
    Result<void> encode(const Record& r, std::vector<uint8_t>& out);
    void reset();

  private:
    std::unique_ptr<detail::EncoderState> s_;
};

// ---- random records --------------------------------------------------------

struct RandomOptions {
    double absent_probability = 0.1;
    size_t max_sequence_length = 8;
    size_t max_string_length = 24;
    bool extremes = true;  // max/min integers, empty strings, NULLs
    // Dynamic templateRef fields pick from these templates (those without
    // dynamic references themselves); without a set they stay absent.
    const TemplateSet* templates = nullptr;
};

// Values valid for each field: constants kept (sequence lengths too),
// exponents in -63..63, strings under tail operators of one fixed length (a
// tail can never shorten a value), and delta-coded 64-bit values (int64 and
// mantissas within +-2^62, uInt64 below 2^63) so every difference fits the
// int64 delta.
Record random_record(const Template& t, std::mt19937_64& rng, const RandomOptions& o = {});

// ---- inline definitions ----------------------------------------------------

inline Group::Group() : r_(std::make_unique<Record>()) {}
inline Group::Group(Record r) : r_(std::make_unique<Record>(std::move(r))) {}
inline Group::Group(const Group& other)
    : r_(other.r_ ? std::make_unique<Record>(*other.r_) : nullptr) {}
inline Group::Group(Group&& other) noexcept = default;
inline Group& Group::operator=(const Group& other) {
    if (this != &other) r_ = other.r_ ? std::make_unique<Record>(*other.r_) : nullptr;
    return *this;
}
inline Group& Group::operator=(Group&& other) noexcept = default;
inline Group::~Group() = default;

}  // namespace etcpipe::fast
