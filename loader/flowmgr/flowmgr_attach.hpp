// The FlowManager on a real interface: attach through libxdp, and what
// `etcpipe status` / `unload` know of it (its ProgramKind).
#pragma once

#include <optional>
#include <string>

#include "common/result.hpp"
#include "common/xdp_attach.hpp"
#include "etcpipe/flowmgr.h"
#include "flowmgr/flowmgr.hpp"

struct bpf_map_info;

namespace etcpipe {

// Opens the FlowManager with `opts`, lets libxdp load and attach it.
[[nodiscard]] Result<AttachResult> attach_flowmgr(const std::string& iface, XdpMode mode,
                                                  const FlowMgrOptions& opts);

// Program names, pinned maps and the status printer (config, filters, flow
// table, counters, and the `etcpipe run` reading it).
[[nodiscard]] ProgramKind flowmgr_program_kind();

// The config a loaded FlowManager was built with, read from its .rodata
// map (map_fd, mi: that map, as for_each_program_map hands it over).
[[nodiscard]] std::optional<etc_flowmgr_config> read_rodata_config(int map_fd, const bpf_map_info& mi);

}  // namespace etcpipe
