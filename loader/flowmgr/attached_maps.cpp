#include "flowmgr/attached_maps.hpp"
#include "flowmgr/flowmgr_attach.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "common/log.hpp"
#include "common/prog_maps.hpp"
#include "common/xdp_attach.hpp"

namespace etcpipe::live {
namespace {

// Keeps `fd` (now owned by m) when `name` is one of the maps we use.
void take(Maps& m, int fd, const char* name) {
    m.owned.emplace_back(fd);
    if (!std::strcmp(name, ETC_MAP_COUNTERS)) m.counters = fd;
    if (!std::strcmp(name, ETC_MAP_XSKS)) m.xsks = fd;
    if (!std::strcmp(name, ETC_MAP_RINGBUF)) m.ringbuf = fd;
    if (!std::strcmp(name, ETC_MAP_RUN_STATS)) m.run_stats = fd;
}

// The pins (`ip link` pins by name, `etcpipe load -p` under its path).
Result<void> take_pinned(Maps& m, const std::string& pin_path) {
    for (const char* name : {ETC_MAP_COUNTERS, ETC_MAP_XSKS, ETC_MAP_RINGBUF, ETC_MAP_RUN_STATS}) {
        const std::string path = pin_path + "/" + name;
        int fd = bpf_obj_get(path.c_str());
        if (fd < 0) {
            if (!std::strcmp(name, ETC_MAP_RUN_STATS)) continue;  // optional
            return make_error(ErrorKind::Bpf, errno, path, "open pinned map",
                              "is the FlowManager pinned there? (`ip link` pins under "
                              "/sys/fs/bpf/xdp/globals)");
        }
        take(m, fd, name);
    }
    return {};
}

// The program's own maps, found through its map ids.
Result<void> take_program_maps(Maps& m, const std::string& iface) {
    auto r = for_each_program_map(m.prog_fd, [&](int fd, const bpf_map_info& mi) {
        const int kept = fcntl(fd, F_DUPFD_CLOEXEC, 0);  // the walk closes its own
        if (kept >= 0) take(m, kept, mi.name);
    });
    if (!r) return make_error(ErrorKind::Bpf, r.error().code, iface, "read the attached program's maps");
    // An unreferenced map is not among the program's maps until bound;
    // `ip link` pins it by name, so look there too.
    if (m.run_stats < 0) {
        int fd = bpf_obj_get("/sys/fs/bpf/xdp/globals/" ETC_MAP_RUN_STATS);
        if (fd >= 0) take(m, fd, ETC_MAP_RUN_STATS);
    }
    return {};
}

// The config it was built with; nullopt when it cannot be read.
std::optional<etc_flowmgr_config> read_config(int prog_fd) {
    std::optional<etc_flowmgr_config> config;
    (void)for_each_program_map(prog_fd, [&](int fd, const bpf_map_info& mi) {
        const std::string name = mi.name;
        if (name.size() > 7 && name.ends_with(".rodata")) config = read_rodata_config(fd, mi);
    });
    return config;
}

}  // namespace

Result<Maps> maps_of_attached(const std::string& iface, const std::string& pin_path) {
    const ProgramKind kind = flowmgr_program_kind();
    auto st = xdp_status(iface, {kind});
    if (!st) return st.error();
    const ProgramStatus* fm = nullptr;
    for (const auto& i : *st)
        for (const auto& p : i.programs)
            if (kind.owns(p.name) && !fm) fm = &p;
    if (!fm)
        return Error{ErrorKind::Usage, ENOENT, iface, "find an attached FlowManager",
                     "no xdp_flowmgr program is attached",
                     "attach one first: `etcpipe load " + iface +
                         " --pin-path DIR` or `ip link set dev " + iface +
                         " xdp obj bpf/flowmgr.bpf.o sec xdp`; or drop --attach-existing"};
    Maps m;
    m.prog_id = fm->id;
    m.owned.emplace_back(bpf_prog_get_fd_by_id(fm->id));
    m.prog_fd = m.owned.back().get();
    if (m.prog_fd < 0) return make_error(ErrorKind::Bpf, errno, iface, "open the attached program");
    if (auto cfg = read_config(m.prog_fd)) m.config = *cfg;

    auto found = pin_path.empty() ? take_program_maps(m, iface) : take_pinned(m, pin_path);
    if (!found) return found.error();
    if (m.counters < 0 || m.xsks < 0 || m.ringbuf < 0)
        return Error{ErrorKind::Bpf, ENOENT, iface, "find the FlowManager's maps",
                     "counters, XSKMAP or ring buffer missing", "give --pin-path where they are pinned"};
    return m;
}

Maps maps_of_own(const FlowManager& fm, uint32_t prog_id, const FlowMgrOptions& fo) {
    Maps m;
    m.prog_id = prog_id;
    m.prog_fd = fm.prog_fd();
    m.counters = fm.map_fd(ETC_MAP_COUNTERS);
    m.xsks = fm.map_fd(ETC_MAP_XSKS);
    m.ringbuf = fm.map_fd(ETC_MAP_RINGBUF);
    m.run_stats = fm.map_fd(ETC_MAP_RUN_STATS);
    m.config.delivery = static_cast<uint8_t>(fo.delivery);
    m.config.max_pkts = fo.max_pkts;
    return m;
}

void bind_run_stats(const Maps& m) {
    if (m.run_stats < 0 || m.prog_fd < 0) return;
    if (bpf_prog_bind_map(m.prog_fd, m.run_stats, nullptr))
        ETC_DEBUG("bind %s: %s", ETC_MAP_RUN_STATS, std::strerror(errno));
}

void write_run_stats(const Maps& m, const etc_run_stats& st) {
    if (m.run_stats < 0) return;
    uint32_t zero = 0;
    (void)bpf_map_update_elem(m.run_stats, &zero, &st, BPF_ANY);
}

}  // namespace etcpipe::live
