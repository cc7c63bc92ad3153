// Attaching the ANOVA program to an interface: native/skb through libxdp,
// or offloaded to an NFP SmartNIC (hw), with its one-entry config map written
// after load.
#pragma once

#include <string>

#include "anova/anova.hpp"
#include "common/xdp_attach.hpp"

namespace etcpipe::anova {

[[nodiscard]] Result<AttachResult> attach(const std::string& iface, XdpMode mode,
                                          const ProgramOptions& opts);

}  // namespace etcpipe::anova
