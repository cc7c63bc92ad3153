// NFP checker, the map rules: array and hash maps only, no flags, small
// keys and values, no global data.
#include <bpf/libbpf.h>

#include <cstdio>

#include "nfp/checker_internal.hpp"

namespace etcpipe::nfp::checker {

void check_maps(bpf_object* obj, Sink& sink) {
    bpf_map* m = nullptr;
    bpf_object__for_each_map(m, obj) {
        const std::string name = bpf_map__name(m);
        if (bpf_map__is_internal(m)) {
            sink.add("", -1, "global-data",
                     "map '" + name + "' holds global variables (.data/.rodata/.bss/.kconfig)",
                     "the NFP has no global data: use #define constants or a one-entry ARRAY map",
                     false, name);
            continue;
        }
        // The type comes from the object as written: any 32-bit number, so
        // it is held as one (an enum variable outside the enumerators is UB)
        // and named only when libbpf knows it.
        const auto type = static_cast<uint32_t>(bpf_map__type(m));
        if (type != BPF_MAP_TYPE_ARRAY && type != BPF_MAP_TYPE_HASH) {
            const char* tn = type <= BPF_MAP_TYPE_USER_RINGBUF
                                 ? libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type))
                                 : nullptr;
            sink.add("", -1, "map-type",
                     "map '" + name + "' is a " + (tn ? tn : "unknown (" + std::to_string(type) + ")") +
                         " map; the NFP offloads only array and hash maps",
                     "use BPF_MAP_TYPE_ARRAY or BPF_MAP_TYPE_HASH (no per-CPU, LRU, LPM, "
                     "ring buffer or XSK maps)",
                     false, name);
        }
        if (const uint32_t fl = bpf_map__map_flags(m); fl != 0) {
            sink.add("", -1, "map-flags",
                     "map '" + name + "' has map_flags 0x" + [&] {
                         char b[16];
                         std::snprintf(b, sizeof b, "%x", fl);
                         return std::string(b);
                     }() + "; the NFP needs 0",
                     "drop BPF_F_NO_PREALLOC/BPF_F_RDONLY_PROG/... from the map definition",
                     false, name);
        }
        const uint32_t k = bpf_map__key_size(m);
        const uint32_t v = bpf_map__value_size(m);
        const uint32_t entry = ((k + 7) & ~7U) + ((v + 7) & ~7U);
        if (k > kMapKeyMax || v > kMapValueMax || entry > kMapEntryMax) {
            sink.add("", -1, "map-size",
                     "map '" + name + "' has key " + std::to_string(k) + " B, value " +
                         std::to_string(v) + " B (8-rounded sum " + std::to_string(entry) +
                         " B); the NFP allows ≤ 56 B each and ≤ 64 B together",
                     "shrink the key/value or split the value over several maps", false, name);
        }
    }
}

}  // namespace etcpipe::nfp::checker
