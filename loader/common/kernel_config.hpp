// The running kernel's build configuration, read the way libbpf reads it for
// __kconfig externs (/boot/config-$(uname -r), else /proc/config.gz), for
// loaders that pass a value through rodata instead: libbpf fails to load
// an object with CONFIG_* externs where it can read neither file (its own
// selftests expect that), and a rodata value lets the loader fall back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace etcpipe {

// The value of `name` (e.g. "CONFIG_HZ") as an unsigned number; nullopt when
// no configuration can be read, the name is absent, or it is not a number.
// The configuration is read once per process.
[[nodiscard]] std::optional<uint64_t> kernel_config_number(const std::string& name);

// Nanoseconds per jiffy, 1e9 / CONFIG_HZ (truncated), 0 when the tick rate
// is unknown: what a program counting bpf_jiffies64 multiplies by.
[[nodiscard]] uint64_t kernel_ns_per_tick();

}  // namespace etcpipe
