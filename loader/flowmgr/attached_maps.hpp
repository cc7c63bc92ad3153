// The FlowManager maps `etcpipe run` uses (counters, XSKMAP, ring buffer,
// run stats): from the program we attached, or found on one already
// attached (through its pins or its map ids).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "etcpipe/flowmgr.h"
#include "flowmgr/flowmgr.hpp"

namespace etcpipe::live {

struct Maps {
    int prog_fd = -1;
    int counters = -1, xsks = -1, ringbuf = -1, run_stats = -1;
    std::vector<UniqueFd> owned;  // fds opened here (attach_existing)
    etc_flowmgr_config config{};
    uint32_t prog_id = 0;
};

// The maps of the first FlowManager attached to `iface`: the pins under
// `pin_path` when given, else the program's own maps.
[[nodiscard]] Result<Maps> maps_of_attached(const std::string& iface, const std::string& pin_path);

// The maps of the program we loaded (`fo`: the options it was opened with).
[[nodiscard]] Maps maps_of_own(const FlowManager& fm, uint32_t prog_id, const FlowMgrOptions& fo);

// Binds the run-stats map to the program, so `etcpipe status` finds it
// among the program's maps (it is unreferenced by the program's code).
void bind_run_stats(const Maps& m);

// Publishes the user-space counters in the run-stats map, if there is one.
void write_run_stats(const Maps& m, const etc_run_stats& st);

}  // namespace etcpipe::live
