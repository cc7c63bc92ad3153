// Attaching the FlowManager to interfaces through libxdp (so other XDP
// programs keep working beside it), detaching it, and reporting what is
// attached where with the counters of every FlowManager found. Attachments
// are persistent: they outlive the process until `etcpipe unload`.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "etcpipe/anova.h"
#include "flowmgr/flowmgr.hpp"
#include "common/result.hpp"

struct bpf_object;

namespace etcpipe {

enum class XdpMode { Native, Skb, Hw, Unspecified };

[[nodiscard]] const char* xdp_mode_name(XdpMode mode);

// The FlowManager under either of its program names (xdp.frags, or the
// section-"xdp" twin that `ip link` loads).
[[nodiscard]] bool is_flowmgr_program(const char* name);

// Interface index of `name`; ENODEV with a hint when there is none.
[[nodiscard]] Result<int> interface_index(const std::string& name);

// Mounts bpffs at /sys/fs/bpf when nothing is mounted there (libxdp keeps
// its dispatcher state there). Returns the mount point.
[[nodiscard]] Result<std::string> ensure_bpffs();

struct AttachResult {
    uint32_t prog_id = 0;
    XdpMode mode = XdpMode::Native;
    bool multiprog = false;  // attached through libxdp's dispatcher (false: alone)
};

// Runs after the object is loaded (e.g. to write a config map); for
// libxdp attachments that is right after the attach.
using AfterLoad = std::function<Result<void>()>;

// Attaches program `prog_name` of the opened (not yet loaded) `obj`: through
// libxdp for native/skb/unspecified, as a device offload for hw.
[[nodiscard]] Result<AttachResult> attach_object(const std::string& iface, XdpMode mode,
                                                 bpf_object* obj, const char* prog_name,
                                                 const AfterLoad& after_load);

// Opens the FlowManager with `opts`, lets libxdp load and attach it.
[[nodiscard]] Result<AttachResult> attach_flowmgr(const std::string& iface, XdpMode mode,
                                                  const FlowMgrOptions& opts);

struct DetachOptions {
    bool all = false;               // every XDP program on the interface
    std::optional<uint32_t> id;     // only this program id
    std::string pin_path;           // remove our pinned maps from here afterwards
};

// Detaches FlowManager programs (or what DetachOptions selects). Returns how
// many programs were detached.
[[nodiscard]] Result<int> detach(const std::string& iface, const DetachOptions& opts);

struct ProgramStatus {
    std::string name;
    uint32_t id = 0;
    unsigned priority = 0;
    std::string tag;
    bool flowmgr = false;
    // FlowManager only:
    std::optional<Counters> counters;
    std::optional<etc_flowmgr_config> config;
    size_t flows = 0;
    uint32_t flow_capacity = 0;
    // FlowManager with an `etcpipe run` reading it (ETC_MAP_RUN_STATS).
    std::optional<etc_run_stats> run;
    // ANOVA only: its config map.
    std::optional<anova_config> anova;
};

struct InterfaceStatus {
    std::string name;
    int ifindex = 0;
    std::string mode;        // "native", "skb", "hw", ""
    bool multiprog = false;  // libxdp dispatcher present
    std::vector<ProgramStatus> programs;
};

// Every interface with XDP programs (or just `iface`, attached or not).
[[nodiscard]] Result<std::vector<InterfaceStatus>> xdp_status(const std::string& iface);

}  // namespace etcpipe
