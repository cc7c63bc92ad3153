// The capabilities a command needs, checked at its start so the error names
// exactly the missing ones (measured with setpriv on Linux 6.18: README,
// "Failure behaviour"). CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON.
#pragma once

#include <initializer_list>
#include <string>

#include "common/result.hpp"

namespace etcpipe {

enum class Cap : int { NetAdmin = 12, NetRaw = 13, SysAdmin = 21, Perfmon = 38, Bpf = 39 };

// Usage error (exit 2) naming each missing capability, or ok.
[[nodiscard]] Result<void> require_capabilities(const std::string& command, std::initializer_list<Cap> caps);

}  // namespace etcpipe
