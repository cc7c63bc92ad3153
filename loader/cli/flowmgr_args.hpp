// The FlowManager's options as `load`, `replay` and `run` take them.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "flowmgr/flowmgr.hpp"

namespace etcpipe::cli {

// FlowManager options as typed on the command line; converted (and
// validated) by to_options().
struct FlowMgrArgs {
    uint32_t packets = ETC_DEFAULT_MAX_PKTS;
    uint32_t flows = ETC_DEFAULT_FLOWS;
    uint32_t idle = ETC_DEFAULT_IDLE_SEC;
    uint32_t snap = ETC_DEFAULT_SNAP;
    uint32_t ringbuf_kib = 4096;
    etc_delivery delivery = ETC_DELIVERY_TAP;
    bool drop_unselected = false;
    bool count_all = false;
    bool meta_all = false;
    std::string protocols, ports;
    std::vector<std::string> allow, deny;
    std::string pin_path;

    [[nodiscard]] Result<FlowMgrOptions> to_options() const;
};

// Adds them to `cmd`, in the "FlowManager" group of its help.
void add_flowmgr_options(CLI::App* cmd, FlowMgrArgs& a);

}  // namespace etcpipe::cli
