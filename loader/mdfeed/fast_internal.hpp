// Internals shared by the FAST template compiler, decoder and encoder: the
// instruction plan, the decoded-message store, the dictionaries with their
// undo journal, and the stop-bit writers. Not part of the public API.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "mdfeed/fast.hpp"

namespace etcpipe::fast::detail {

__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

// ---- plan ------------------------------------------------------------------

enum class Kind : uint8_t {
    Int,      // integer field; `num` says which
    Dec,      // decimal with one operator
    DecExp,   // exponent of a split decimal (int32 rules; sets presence)
    DecMant,  // mantissa of a split decimal (int64; skipped when the exponent is NULL)
    Str,      // ASCII, unicode or byte vector; `str` says which
    Group,
    Seq,
    DynRef,
};
enum class Num : uint8_t { U32, I32, U64, I64 };
enum class StrKind : uint8_t { Ascii, Unicode, Bytes };

// Dictionary entry types, for D4.
enum SlotType : uint8_t { kSlotU32, kSlotI32, kSlotU64, kSlotI64, kSlotDec, kSlotAscii,
                          kSlotUnicode, kSlotBytes };

// One opcode per (kind, number/string kind, operator), so the decoder
// dispatches each field with a single switch.
constexpr uint8_t kOps = 7;
constexpr uint8_t code_int(Num n, Operator op) {
    return static_cast<uint8_t>(static_cast<uint8_t>(n) * kOps + static_cast<uint8_t>(op));
}
constexpr uint8_t code_exp(Operator op) { return static_cast<uint8_t>(28 + static_cast<uint8_t>(op)); }
constexpr uint8_t code_mant(Operator op) { return static_cast<uint8_t>(35 + static_cast<uint8_t>(op)); }
constexpr uint8_t code_dec(Operator op) { return static_cast<uint8_t>(42 + static_cast<uint8_t>(op)); }
constexpr uint8_t code_str(StrKind k, Operator op) {
    return static_cast<uint8_t>(49 + static_cast<uint8_t>(k) * kOps + static_cast<uint8_t>(op));
}
constexpr uint8_t kCodeGroup = 70, kCodeSeq = 71, kCodeDynRef = 72;

struct Instr {
    uint8_t code = 0;  // see code_*()
    Kind kind = Kind::Int;
    Num num = Num::U32;
    StrKind str = StrKind::Ascii;
    Operator op = Operator::None;
    bool optional = false;
    bool nullable = false;
    bool has_init = false;
    bool body_pmap = false;  // group / sequence element has its own presence map
    uint8_t slot_type = kSlotU32;
    uint32_t cell = 0;       // field index in the segment
    int32_t slot = -1;       // dictionary entry, -1 when the operator uses none
    int64_t init_i = 0;      // integer initial value (uint64 bits), decimal mantissa
    int32_t init_exp = 0;    // decimal exponent
    std::string init_s;      // string / byte vector initial value
    uint32_t body_begin = 0, body_end = 0;  // group / element instructions
    uint32_t body_cells = 0;                // fields per group / element
    uint32_t len_instr = 0;                 // sequence: its length instruction
    uint32_t min_bytes = 0;                 // sequence element: bytes it needs at least
    const std::string* name = nullptr;      // for errors
    const FieldInfo* field = nullptr;
};

struct Plan {
    std::vector<Instr> instrs;
    uint32_t body_begin = 0, body_end = 0;  // the message's top-level instructions
    uint32_t cells = 0;                     // top-level fields
    uint32_t depth = 1;                     // nesting of segments with own buffers
};

struct SetImpl {
    std::string source;
    std::vector<std::unique_ptr<Template>> owned;
    std::vector<const Template*> all;
    std::unordered_map<uint32_t, const Template*> by_id;
    std::unordered_map<std::string, const Template*> by_name;
    std::vector<std::string> slot_names;  // "global\x1fKey" per dictionary entry
    uint32_t max_depth = 1;
    [[nodiscard]] const Template* find(uint32_t id) const {
        auto it = by_id.find(id);
        return it == by_id.end() ? nullptr : it->second;
    }
};

// ---- decoded message -------------------------------------------------------

struct Cell {
    int64_t v = 0;     // integer (uint64 bits), mantissa, arena offset, child block
    int32_t exp = 0;   // decimal exponent
    uint32_t n = 0;    // string length, sequence length, dynamic template id
    uint8_t present = 0;
};

struct Store {
    std::vector<Cell> cells;  // message fields at 0.., nested blocks after them (grow only)
    size_t used = 0;          // cells of the current message
    std::vector<char> arena;  // string and byte vector bytes (grow only)
    size_t arena_used = 0;
    const SetImpl* set = nullptr;
};

// ---- dictionaries ----------------------------------------------------------

inline constexpr uint8_t kUndefined = 0, kEmpty = 1, kAssigned = 2;

struct SlotHeader {
    uint64_t gen = 0;    // valid while == Dictionary::gen_ (reset bumps gen_)
    uint64_t epoch = 0;  // attempt that last journaled this entry
    int64_t i = 0;       // integer, decimal exponent
    int64_t m = 0;       // decimal mantissa
    uint8_t state = kUndefined;
    uint8_t type = 0;
    uint8_t buf = 0;     // which of s[] holds the string value
};

struct Slot {
    SlotHeader h;
    std::string s[2];
};

// Entries with an undo journal: the first write of an attempt saves the
// header and switches strings to the other buffer, so rollback() restores
// exactly the state before begin(); commit is free.
class Dictionary {
  public:
    void init(size_t n) {
        slots_.assign(n, Slot{});
        journal_.resize(n + 16);
        jcap_ = journal_.size();
    }
    void begin() {
        ++epoch_;
        jn_ = 0;
        saved_gen_ = gen_;
    }
    void rollback() {
        for (size_t k = jn_; k-- > 0;) slots_[journal_[k].slot].h = journal_[k].h;
        jn_ = 0;
        gen_ = saved_gen_;
    }
    void reset() { ++gen_; }

    [[nodiscard]] uint8_t state(int32_t k) const {
        const SlotHeader& h = slots_[static_cast<size_t>(k)].h;
        return h.gen == gen_ ? h.state : kUndefined;
    }
    [[nodiscard]] const SlotHeader& header(int32_t k) const {
        return slots_[static_cast<size_t>(k)].h;
    }
    [[nodiscard]] const std::string& str(int32_t k) const {
        const Slot& s = slots_[static_cast<size_t>(k)];
        return s.s[s.h.buf];
    }
    // Integer-like writes journal every time (rollback runs backwards, so
    // repeated entries are harmless); only string writes need first-write
    // detection, to switch buffers once.
    void set_int(int32_t k, uint8_t type, int64_t v) {
        SlotHeader& h = save(k);
        h.i = v;
        mark(h, kAssigned, type);
    }
    void set_dec(int32_t k, int32_t exp, int64_t mant) {
        SlotHeader& h = save(k);
        h.i = exp;
        h.m = mant;
        mark(h, kAssigned, kSlotDec);
    }
    void set_empty(int32_t k) {
        SlotHeader& h = save(k);
        mark(h, kEmpty, h.type);
    }
    // The string buffer to write the new value into; `keep`: it starts as the
    // current value (for in-place delta/tail), else its content is unspecified.
    std::string& write_str(int32_t k, uint8_t type, bool keep) {
        Slot& s = touch(k, keep);
        mark(s.h, kAssigned, type);
        return s.s[s.h.buf];
    }
    [[nodiscard]] size_t size() const { return slots_.size(); }

  private:
    SlotHeader& save(int32_t k) {
        SlotHeader& h = slots_[static_cast<size_t>(k)].h;
        push(k, h);
        return h;
    }
    void push(int32_t k, const SlotHeader& h) {
        if (jn_ == jcap_) [[unlikely]]
            grow();
        Saved& e = journal_.data()[jn_++];
        e.slot = static_cast<uint32_t>(k);
        e.h = h;
    }
    [[gnu::noinline]] void grow() {
        journal_.resize(2 * jn_ + 16);
        jcap_ = journal_.size();
    }
    Slot& touch(int32_t k, bool keep) {
        Slot& s = slots_[static_cast<size_t>(k)];
        if (s.h.epoch != epoch_) {
            push(k, s.h);
            s.h.epoch = epoch_;
            const uint8_t old = s.h.buf;
            s.h.buf ^= 1;
            if (keep) s.s[s.h.buf].assign(s.s[old]);
        }
        return s;
    }
    void mark(SlotHeader& h, uint8_t state, uint8_t type) const {
        h.gen = gen_;
        h.state = state;
        h.type = type;
    }

    struct Saved {
        uint32_t slot;
        SlotHeader h;
    };
    std::vector<Slot> slots_;
    std::vector<Saved> journal_;  // used up to jn_, kept sized
    size_t jn_ = 0;
    size_t jcap_ = 0;
    uint64_t gen_ = 1;
    uint64_t saved_gen_ = 1;
    uint64_t epoch_ = 0;
};

// ---- helpers ---------------------------------------------------------------

[[nodiscard]] inline bool is_unsigned(Num n) { return n == Num::U32 || n == Num::U64; }
[[nodiscard]] inline i128 num_min(Num n) {
    switch (n) {
        case Num::I32: return INT32_MIN;
        case Num::I64: return INT64_MIN;
        default: return 0;
    }
}
[[nodiscard]] inline i128 num_max(Num n) {
    switch (n) {
        case Num::U32: return UINT32_MAX;
        case Num::I32: return INT32_MAX;
        case Num::U64: return static_cast<i128>(UINT64_MAX);
        default: return INT64_MAX;
    }
}
[[nodiscard]] inline uint8_t slot_type_of(Num n) {
    switch (n) {
        case Num::U32: return kSlotU32;
        case Num::I32: return kSlotI32;
        case Num::U64: return kSlotU64;
        default: return kSlotI64;
    }
}
// An integer cell/dictionary value (uint64 bits for unsigned types) as i128.
[[nodiscard]] inline i128 widen(Num n, int64_t bits) {
    return is_unsigned(n) ? static_cast<i128>(static_cast<uint64_t>(bits)) : static_cast<i128>(bits);
}
[[nodiscard]] inline bool uses_pmap(Operator op, bool optional) {
    switch (op) {
        case Operator::None:
        case Operator::Delta: return false;
        case Operator::Constant: return optional;
        default: return true;
    }
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
