// NFP checker, 1b. the .BTF section, checked before libbpf sees it.
// libbpf 1.1 (Debian 12) parses the layout of .BTF but trusts what the types
// say: a map definition member whose type id is past the last type makes
// skip_mods_and_typedefs() dereference NULL (a SEGV inside
// bpf_object__open_mem), a name offset past the string section hands NULL to
// strcmp(), and a typedef that names itself loops forever. libbpf 1.3 added
// most of these checks (btf_sanity_check()); this is that validation, plus
// the loop check, so that a corrupt object is a Data error here instead of a
// crash or a hang there.
#include <linux/btf.h>

#include <cstring>

#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp::checker {
namespace {

struct Type {
    uint32_t name_off = 0;
    uint32_t kind = 0;
    uint32_t vlen = 0;
    uint32_t type = 0;  // size_type: the referenced type for the kinds that have one
    size_t extra = 0;   // byte offset of the kind-specific data in the type section
};

uint32_t u32_at(std::span<const uint8_t> b, size_t off) {
    uint32_t v = 0;
    std::memcpy(&v, b.data() + off, sizeof v);  // little-endian objects only
    return v;
}

// Bytes after the common 12-byte struct btf_type, by kind; nullopt: no such kind.
std::optional<size_t> extra_size(uint32_t kind, uint32_t vlen) {
    switch (kind) {
        case BTF_KIND_INT:
        case BTF_KIND_VAR:
        case BTF_KIND_DECL_TAG: return 4;
        case BTF_KIND_PTR:
        case BTF_KIND_FWD:
        case BTF_KIND_TYPEDEF:
        case BTF_KIND_VOLATILE:
        case BTF_KIND_CONST:
        case BTF_KIND_RESTRICT:
        case BTF_KIND_FUNC:
        case BTF_KIND_FLOAT:
        case BTF_KIND_TYPE_TAG: return 0;
        case BTF_KIND_ARRAY: return sizeof(btf_array);
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION: return size_t{vlen} * sizeof(btf_member);
        case BTF_KIND_ENUM: return size_t{vlen} * sizeof(btf_enum);
        case BTF_KIND_ENUM64: return size_t{vlen} * sizeof(btf_enum64);
        case BTF_KIND_FUNC_PROTO: return size_t{vlen} * sizeof(btf_param);
        case BTF_KIND_DATASEC: return size_t{vlen} * sizeof(btf_var_secinfo);
        default: return std::nullopt;
    }
}

// Kinds whose `type` field names another type.
bool refers(uint32_t kind) {
    switch (kind) {
        case BTF_KIND_PTR:
        case BTF_KIND_TYPEDEF:
        case BTF_KIND_VOLATILE:
        case BTF_KIND_CONST:
        case BTF_KIND_RESTRICT:
        case BTF_KIND_FUNC:
        case BTF_KIND_FUNC_PROTO:  // return type
        case BTF_KIND_VAR:
        case BTF_KIND_DECL_TAG:
        case BTF_KIND_TYPE_TAG: return true;
        default: return false;
    }
}

// The links a type resolves through without a pointer in between (modifiers,
// typedefs, array elements): these must end, for libbpf follows them unbounded.
std::optional<uint32_t> alias_of(const Type& t, std::span<const uint8_t> types) {
    switch (t.kind) {
        case BTF_KIND_TYPEDEF:
        case BTF_KIND_VOLATILE:
        case BTF_KIND_CONST:
        case BTF_KIND_RESTRICT:
        case BTF_KIND_TYPE_TAG: return t.type;
        case BTF_KIND_ARRAY: return u32_at(types, t.extra);  // btf_array.type
        default: return std::nullopt;
    }
}

}  // namespace

std::optional<std::string> btf_defect(std::span<const uint8_t> btf) {
    btf_header h{};
    if (btf.size() < sizeof h) return "shorter than its header";
    std::memcpy(&h, btf.data(), sizeof h);
    if (h.magic != BTF_MAGIC) return "bad magic (not little-endian BTF)";
    if (h.hdr_len < sizeof h || h.hdr_len > btf.size()) return "bad header length";
    const uint64_t meta = btf.size() - h.hdr_len;
    if (uint64_t{h.str_off} + h.str_len > meta || uint64_t{h.type_off} + h.type_len > h.str_off ||
        h.type_off % 4 != 0)
        return "type or string section out of bounds";
    const auto types = btf.subspan(h.hdr_len + h.type_off, h.type_len);
    const auto strs = btf.subspan(h.hdr_len + h.str_off, h.str_len);
    if (strs.empty() || strs.front() != 0 || strs.back() != 0)
        return "string section not NUL-delimited";
    auto bad_str = [&](uint32_t off) { return off >= strs.size(); };

    std::vector<Type> ts(1);  // id 0: void
    for (size_t o = 0; o < types.size();) {
        if (types.size() - o < sizeof(btf_type)) return "type section ends inside a type";
        Type t;
        t.name_off = u32_at(types, o);
        const uint32_t info = u32_at(types, o + 4);
        t.kind = BTF_INFO_KIND(info);
        t.vlen = BTF_INFO_VLEN(info);
        t.type = u32_at(types, o + 8);
        t.extra = o + sizeof(btf_type);
        const auto extra = extra_size(t.kind, t.vlen);
        const std::string id = "type " + std::to_string(ts.size());
        if (!extra) return id + ": unknown kind " + std::to_string(t.kind);
        if (types.size() - t.extra < *extra) return id + ": extends past the type section";
        if (bad_str(t.name_off)) return id + ": name offset past the string section";
        ts.push_back(t);
        o = t.extra + *extra;
    }
    const auto n = static_cast<uint32_t>(ts.size());
    auto bad_id = [&](uint32_t tid) { return tid >= n; };

    for (uint32_t i = 1; i < n; ++i) {
        const Type& t = ts[i];
        const std::string id = "type " + std::to_string(i);
        if (refers(t.kind) && bad_id(t.type)) return id + ": refers to type " + std::to_string(t.type) + " of " + std::to_string(n);
        if (t.kind == BTF_KIND_FUNC && ts[t.type].kind != BTF_KIND_FUNC_PROTO)
            return id + ": function whose type is not a prototype";
        for (uint32_t k = 0; k < t.vlen; ++k) {
            switch (t.kind) {
                case BTF_KIND_STRUCT:
                case BTF_KIND_UNION: {
                    const size_t m = t.extra + size_t{k} * sizeof(btf_member);
                    if (bad_str(u32_at(types, m)) || bad_id(u32_at(types, m + 4)))
                        return id + ": member " + std::to_string(k) + " out of range";
                    break;
                }
                case BTF_KIND_ENUM:
                case BTF_KIND_ENUM64: {
                    const size_t esz = t.kind == BTF_KIND_ENUM ? sizeof(btf_enum) : sizeof(btf_enum64);
                    if (bad_str(u32_at(types, t.extra + size_t{k} * esz)))
                        return id + ": enumerator " + std::to_string(k) + " name out of range";
                    break;
                }
                case BTF_KIND_FUNC_PROTO: {
                    const size_t p = t.extra + size_t{k} * sizeof(btf_param);
                    if (bad_str(u32_at(types, p)) || bad_id(u32_at(types, p + 4)))
                        return id + ": parameter " + std::to_string(k) + " out of range";
                    break;
                }
                case BTF_KIND_DATASEC:
                    if (bad_id(u32_at(types, t.extra + size_t{k} * sizeof(btf_var_secinfo))))
                        return id + ": variable " + std::to_string(k) + " out of range";
                    break;
                default: break;
            }
        }
        if (t.kind == BTF_KIND_ARRAY &&
            (bad_id(u32_at(types, t.extra)) || bad_id(u32_at(types, t.extra + 4))))
            return id + ": array element or index type out of range";
    }

    // Alias chains end: each type is followed once (0 new, 1 on the chain, 2 ends).
    std::vector<uint8_t> state(n, 0);
    state[0] = 2;
    std::vector<uint32_t> chain;
    for (uint32_t i = 1; i < n; ++i) {
        chain.clear();
        uint32_t cur = i;
        while (state[cur] == 0) {
            state[cur] = 1;
            chain.push_back(cur);
            const auto next = alias_of(ts[cur], types);
            if (!next) break;
            cur = *next;
        }
        if (state[cur] == 1 && alias_of(ts[cur], types))
            return "type " + std::to_string(cur) + ": typedef/modifier/array loop";
        for (uint32_t c : chain) state[c] = 2;
    }
    return std::nullopt;
}

}  // namespace etcpipe::nfp::checker
