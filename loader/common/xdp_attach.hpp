// Attaching XDP programs to interfaces through libxdp (so other XDP
// programs keep working beside them), detaching them, and reporting what is
// attached where. Attachments are persistent: they outlive the process until
// `etcpipe unload`. Nothing here knows an application: each one describes
// its programs with a ProgramKind (its program names, pinned maps, and how
// to show its state), and the CLI passes the list.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

struct bpf_object;

namespace etcpipe {

enum class XdpMode { Native, Skb, Hw, Unspecified };

[[nodiscard]] const char* xdp_mode_name(XdpMode mode);

// What an application tells the shared status and unload code about its
// XDP programs.
struct ProgramKind {
    std::string application;              // e.g. "FlowManager"
    std::vector<std::string> prog_names;  // the XDP program names it owns
    std::vector<std::string> pinned_maps; // map names it pins (removed by unload -p)
    // Writes the program's own state (config, counters…) as indented lines,
    // read from its maps; all_counters lists zero counters too.
    std::function<void(int prog_fd, bool all_counters, std::FILE* out)> describe;

    [[nodiscard]] bool owns(const std::string& prog_name) const;
};

// The kind among `kinds` that owns `prog_name`; nullptr if none.
[[nodiscard]] const ProgramKind* kind_of(const std::vector<ProgramKind>& kinds,
                                         const std::string& prog_name);

// Interface index of `name`; ENODEV with a hint when there is none.
[[nodiscard]] Result<int> interface_index(const std::string& name);

// Mounts bpffs at /sys/fs/bpf when nothing is mounted there (libxdp keeps
// its dispatcher state there). Returns the mount point.
[[nodiscard]] Result<std::string> ensure_bpffs();

// A directory for pinned maps (-p): it must be on a bpffs mount, or not
// exist yet in a directory that is (libbpf creates that last level). Checked
// before loading, so the error names the real cause (libbpf's own would be
// ENOENT or EINVAL from deep inside the attach).
[[nodiscard]] Result<void> check_pin_dir(const std::string& dir);

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

struct DetachOptions {
    bool all = false;               // every XDP program on the interface
    std::optional<uint32_t> id;     // only this program id
    std::string pin_path;           // remove the kinds' pinned maps from here afterwards
    std::vector<ProgramKind> kinds; // whose programs "ours" means (without all/id)
};

// Detaches the programs of DetachOptions::kinds (or what all/id select).
// Returns how many programs were detached.
[[nodiscard]] Result<int> detach(const std::string& iface, const DetachOptions& opts);

struct ProgramStatus {
    std::string name;
    uint32_t id = 0;
    unsigned priority = 0;
    std::string tag;
    std::string application;  // the owning ProgramKind's; empty: not ours
    std::string details;      // what its kind's describe() wrote
};

struct InterfaceStatus {
    std::string name;
    int ifindex = 0;
    std::string mode;        // "native", "skb", "hw", ""
    bool multiprog = false;  // libxdp dispatcher present
    std::vector<ProgramStatus> programs;
};

// Every interface with XDP programs (or just `iface`, attached or not);
// programs of `kinds` are described by their kind.
[[nodiscard]] Result<std::vector<InterfaceStatus>> xdp_status(const std::string& iface,
                                                              const std::vector<ProgramKind>& kinds,
                                                              bool all_counters = false);

}  // namespace etcpipe
