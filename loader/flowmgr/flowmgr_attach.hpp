// The FlowManager on a real interface: attach through libxdp, and what
// `etcpipe status` / `unload` know of it (its ProgramKind).
#pragma once

#include <string>

#include "common/result.hpp"
#include "common/xdp_attach.hpp"
#include "flowmgr/flowmgr.hpp"

namespace etcpipe {

// Opens the FlowManager with `opts`, lets libxdp load and attach it.
[[nodiscard]] Result<AttachResult> attach_flowmgr(const std::string& iface, XdpMode mode,
                                                  const FlowMgrOptions& opts);

// Program names, pinned maps and the status printer (config, filters, flow
// table, counters, and the `etcpipe run` reading it).
[[nodiscard]] ProgramKind flowmgr_program_kind();

}  // namespace etcpipe
