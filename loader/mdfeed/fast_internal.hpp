// Internals shared by the FAST template compiler, decoder and encoder: the
// instruction plan, the decoded-message store and the dictionaries with their
// undo journal (the wire primitives are in fast_wire.hpp). Not public API.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
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

// Compiles a template's fields into `plan`; dictionary entries are looked up
// in (and added to) `slots` by "<scope>\x1f<key>", named in `slot_names`.
void compile_plan(const std::vector<FieldInfo>& fields,
                  std::unordered_map<std::string, int32_t>& slots,
                  std::vector<std::string>& slot_names, Plan& plan);

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

// What the journal saves and restores (32 bytes).
struct SlotHeader {
    int64_t i = 0;       // integer, decimal exponent
    int64_t m = 0;       // decimal mantissa
    uint64_t gen = 0;    // valid while == Dictionary::gen_ (reset bumps gen_)
    uint8_t state = kUndefined;
    uint8_t type = 0;
    uint8_t buf = 0;     // which of s[] holds the string value
    uint32_t slot = 0;   // journal entries: which entry
};

// memcpy for the short strings of market data without a library call.
[[gnu::always_inline]] inline void copy_small(char* d, const char* s, size_t n) {
    if (n >= 8) {
        std::memcpy(d, s, n);
    } else if (n >= 4) {
        std::memcpy(d, s, 4);
        std::memcpy(d + n - 4, s + n - 4, 4);
    } else if (n > 0) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

// A dictionary string value: grow-only storage, inline copies.
class DictStr {
  public:
    [[nodiscard]] const char* data() const { return buf_.data(); }
    [[nodiscard]] size_t size() const { return n_; }
    operator std::string_view() const { return {buf_.data(), n_}; }  // NOLINT: implicit by design
    void assign(const char* p, size_t n) {
        if (n > buf_.size()) [[unlikely]]
            grow(n);
        copy_small(buf_.data(), p, n);
        n_ = n;
    }
    void assign(std::string_view v) { assign(v.data(), v.size()); }
    // Replaces [pos, pos+len) with p[0..n); p must not point into this string.
    void replace(size_t pos, size_t len, const char* p, size_t n) {
        const size_t total = n_ - len + n;
        if (total > buf_.size()) [[unlikely]]
            grow(total);
        if (len != n) std::memmove(buf_.data() + pos + n, buf_.data() + pos + len, n_ - pos - len);
        copy_small(buf_.data() + pos, p, n);
        n_ = total;
    }

  private:
    [[gnu::noinline]] void grow(size_t n) { buf_.resize(std::max(n, 2 * buf_.size()) + 8); }
    std::vector<char> buf_;
    size_t n_ = 0;
};

struct Slot {
    SlotHeader h;
    uint64_t epoch = 0;  // attempt whose first string write switched buffers
    DictStr s[2];
};

// Entries with an undo journal: every write saves the entry's header first
// (rollback() restores them newest first), and the first string write of an
// attempt switches to the entry's other buffer, so the old string survives.
// rollback() thus restores exactly the state at begin(); commit is free.
// reset() is O(1): entries of an older generation read as undefined.
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
        for (size_t k = jn_; k-- > 0;) slots_[journal_[k].slot].h = journal_[k];
        jn_ = 0;
        gen_ = saved_gen_;
    }
    void reset() { ++gen_; }
    // Room for k more journal entries (call before running k instructions).
    void reserve(size_t k) {
        if (jcap_ - jn_ < k) [[unlikely]]
            grow(k);
    }

    [[nodiscard]] uint8_t state(int32_t k) const {
        const SlotHeader& h = slots_[static_cast<size_t>(k)].h;
        return h.gen == gen_ ? h.state : kUndefined;
    }
    [[nodiscard]] const SlotHeader& header(int32_t k) const {
        return slots_[static_cast<size_t>(k)].h;
    }
    [[nodiscard]] const DictStr& str(int32_t k) const {
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
    DictStr& write_str(int32_t k, uint8_t type, bool keep) {
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
    // Unchecked: run() reserves one entry per instruction of a segment
    // before running it, and no instruction writes more than one entry.
    void push(int32_t k, const SlotHeader& h) {
        SlotHeader& e = journal_.data()[jn_++];
        e = h;
        e.slot = static_cast<uint32_t>(k);
    }
    [[gnu::noinline]] void grow(size_t k) {
        journal_.resize(2 * (jn_ + k) + 16);
        jcap_ = journal_.size();
    }
    Slot& touch(int32_t k, bool keep) {
        Slot& s = slots_[static_cast<size_t>(k)];
        if (s.epoch != epoch_) {
            push(k, s.h);
            s.epoch = epoch_;
            const uint8_t old = s.h.buf;
            s.h.buf ^= 1;
            if (keep) s.s[s.h.buf].assign(s.s[old].data(), s.s[old].size());
        }
        return s;
    }
    void mark(SlotHeader& h, uint8_t state, uint8_t type) const {
        h.gen = gen_;
        h.state = state;
        h.type = type;
    }

    std::vector<Slot> slots_;
    std::vector<SlotHeader> journal_;  // used up to jn_, kept sized
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

}  // namespace etcpipe::fast::detail
