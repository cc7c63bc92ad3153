#include "common/xdp_attach.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/log.hpp"

namespace etcpipe {
namespace {

constexpr const char* kBpffs = "/sys/fs/bpf";

xdp_attach_mode to_libxdp(XdpMode m) {
    switch (m) {
        case XdpMode::Native: return XDP_MODE_NATIVE;
        case XdpMode::Skb: return XDP_MODE_SKB;
        case XdpMode::Hw: return XDP_MODE_HW;
        case XdpMode::Unspecified: return XDP_MODE_UNSPEC;
    }
    return XDP_MODE_UNSPEC;
}

const char* libxdp_mode_name(xdp_attach_mode m) {
    switch (m) {
        case XDP_MODE_NATIVE: return "native";
        case XDP_MODE_SKB: return "skb";
        case XDP_MODE_HW: return "hw";
        case XDP_MODE_UNSPEC: return "";
    }
    return "";
}

// libxdp returns negative errno values, or its own codes above 4095 that
// only libxdp_strerror can describe.
Error xdp_error(int err, const std::string& iface, std::string operation, std::string hint) {
    err = err < 0 ? -err : err;
    if (err > 4095) {
        char buf[256];
        libxdp_strerror(-err, buf, sizeof(buf));
        return Error{ErrorKind::Bpf, 0, iface, std::move(operation), buf, std::move(hint)};
    }
    return make_error(ErrorKind::Bpf, err, iface, std::move(operation), {}, std::move(hint));
}

std::string attach_hint(int err, XdpMode mode) {
    switch (err < 0 ? -err : err) {
        case EPERM:
        case EACCES: return "attaching XDP needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (run as root)";
        case EOPNOTSUPP:
            return mode == XdpMode::Native ? "the driver has no native XDP support; try skb mode (load: --mode skb, run: --xdp-mode skb)"
                                           : "the driver does not support this XDP mode";
        case EEXIST:
        case EBUSY:
            return "another XDP program is attached in another mode or outside libxdp; "
                   "see `etcpipe status IFACE`, remove it with `etcpipe unload IFACE --all`";
        case ENODEV: return "no such interface; see `ip link`";
        case ENOENT:
            // Seen on a machine with libxdp.so but without its BPF objects.
            return "libxdp could not find its dispatcher object (xdp-dispatcher.o): install "
                   "libxdp1 or point LIBXDP_OBJECT_PATH at the directory that holds it";
        case EINVAL:
            return "the driver refused the program (MTU above a page needs multi-buffer "
                   "support); run with -vv for libbpf/libxdp's log, or try --mode skb";
        default: return "run with -vv for libbpf/libxdp's log";
    }
}


struct MultiprogCloser {
    void operator()(xdp_multiprog* mp) const { xdp_multiprog__close(mp); }
};
using Multiprog = std::unique_ptr<xdp_multiprog, MultiprogCloser>;

struct ProgramCloser {
    void operator()(xdp_program* p) const { xdp_program__close(p); }
};
using Program = std::unique_ptr<xdp_program, ProgramCloser>;

// nullptr when nothing is attached.
Result<Multiprog> multiprog_of(const std::string& iface, int ifindex) {
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    long err = libxdp_get_error(mp);
    if (err == -ENOENT) return Multiprog{};
    if (err) return xdp_error(static_cast<int>(err), iface, "query XDP programs", attach_hint(static_cast<int>(err), XdpMode::Native));
    return Multiprog{mp};
}

std::vector<xdp_program*> programs_of(xdp_multiprog* mp) {
    std::vector<xdp_program*> progs;
    if (!mp) return progs;
    if (xdp_multiprog__is_legacy(mp)) {
        if (xdp_program* p = xdp_multiprog__main_prog(mp)) progs.push_back(p);
    } else {
        for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p;
             p = xdp_multiprog__next_prog(p, mp))
            progs.push_back(p);
    }
    return progs;
}

std::string tag_hex(const xdp_program* p) {
    const unsigned char* tag = xdp_program__tag(p);
    std::string s;
    char b[3];
    for (int i = 0; tag && i < 8; ++i) {
        std::snprintf(b, sizeof(b), "%02x", tag[i]);
        s += b;
    }
    return s;
}

// What the program's kind writes about it, captured as text.
std::string describe_program(const ProgramKind& kind, int prog_fd, bool all_counters) {
    char* buf = nullptr;
    size_t len = 0;
    std::FILE* out = open_memstream(&buf, &len);
    if (!out) return {};
    kind.describe(prog_fd, all_counters, out);
    std::fclose(out);
    std::string text(buf, len);
    std::free(buf);
    return text;
}

// "xdp_flowmgr, xdp_anova": the program names of every kind.
std::string program_names(const std::vector<ProgramKind>& kinds) {
    std::string names;
    for (const auto& k : kinds)
        for (const auto& n : k.prog_names) {
            if (!names.empty()) names += ", ";
            names += n;
        }
    return names;
}

}  // namespace

bool ProgramKind::owns(const std::string& prog_name) const {
    return std::find(prog_names.begin(), prog_names.end(), prog_name) != prog_names.end();
}

const ProgramKind* kind_of(const std::vector<ProgramKind>& kinds, const std::string& prog_name) {
    for (const auto& k : kinds)
        if (k.owns(prog_name)) return &k;
    return nullptr;
}

const char* xdp_mode_name(XdpMode m) {
    switch (m) {
        case XdpMode::Native: return "native";
        case XdpMode::Skb: return "skb";
        case XdpMode::Hw: return "hw";
        case XdpMode::Unspecified: return "unspecified";
    }
    return "?";
}

Result<int> interface_index(const std::string& name) {
    if (name.empty() || name.size() >= IF_NAMESIZE)
        return Error{ErrorKind::Usage, 0, name, "look up interface",
                     "interface names are 1.." + std::to_string(IF_NAMESIZE - 1) + " characters",
                     "see `ip link`"};
    unsigned idx = if_nametoindex(name.c_str());
    if (!idx)
        return make_error(ErrorKind::Usage, errno, name, "look up interface", {},
                          "see `ip link` for the interfaces of this network namespace");
    return static_cast<int>(idx);
}

Result<void> check_pin_dir(const std::string& dir) {
    const std::string hint = "pins live on bpffs: e.g. -p /sys/fs/bpf/etcpipe (see `mount -t bpf`)";
    if (dir.empty() || dir[0] != '/')
        return Error{ErrorKind::Usage, 0, dir, "check pin directory", "must be an absolute path", hint};
    if (auto fs = ensure_bpffs(); !fs) return fs.error();
    struct statfs sfs{};
    std::string at = dir;
    if (statfs(at.c_str(), &sfs) != 0) {
        if (errno != ENOENT) return make_error(ErrorKind::Usage, errno, dir, "check pin directory", {}, hint);
        // Not there yet: libbpf creates it, inside its parent, which must exist.
        const auto slash = at.find_last_of('/', at.size() > 1 ? at.size() - 2 : 0);
        at = slash == 0 ? "/" : at.substr(0, slash);
        if (statfs(at.c_str(), &sfs) != 0)
            return Error{ErrorKind::Usage, ENOENT, dir, "check pin directory",
                         "neither it nor its parent " + at + " exists", hint};
    }
    if (sfs.f_type != BPF_FS_MAGIC)
        return Error{ErrorKind::Usage, 0, dir, "check pin directory",
                     at + " is not on a bpffs mount", hint};
    return {};
}

Result<std::string> ensure_bpffs() {
    struct statfs sfs{};
    if (statfs(kBpffs, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC) return std::string(kBpffs);
    if (mount("bpf", kBpffs, "bpf", 0, "mode=0700"))
        return make_error(ErrorKind::Bpf, errno, kBpffs, "mount bpffs", {},
                          "mount it yourself: mount -t bpf bpf /sys/fs/bpf");
    ETC_INFO("mounted bpffs at %s (libxdp keeps its dispatcher state there)", kBpffs);
    return std::string(kBpffs);
}

namespace {

// Offload: the program and every map are created on the device (prog/map
// ifindex), then attached in XDP_FLAGS_HW_MODE. libxdp's dispatcher has no
// part in it: an offloaded program is alone on the device.
Result<AttachResult> attach_offloaded(const std::string& iface, int ifindex, bpf_object* obj,
                                      const char* prog_name, const AfterLoad& after_load) {
    bpf_program* prog = bpf_object__find_program_by_name(obj, prog_name);
    if (!prog) return make_error(ErrorKind::Bpf, ENOENT, prog_name, "find program in object");
    bpf_program__set_ifindex(prog, static_cast<__u32>(ifindex));
    bpf_map* map;
    bpf_object__for_each_map(map, obj) bpf_map__set_ifindex(map, static_cast<__u32>(ifindex));
    if (int err = bpf_object__load(obj))
        return make_error(ErrorKind::Bpf, err, iface, std::string("offload-load ") + prog_name, {},
                          err == -EINVAL || err == -EOPNOTSUPP || err == -ENODEV
                              ? "the device has no BPF offload (an NFP SmartNIC with BPF firmware "
                                "is needed); `etcpipe check --target nfp OBJ` lists what the "
                                "program would still need to change"
                              : attach_hint(err, XdpMode::Hw));
    if (after_load)
        if (auto r = after_load(); !r) return r.error();
    const int fd = bpf_program__fd(prog);
    if (int err = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_HW_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST,
                                 nullptr))
        return make_error(ErrorKind::Bpf, err, iface, "attach XDP program (hw)", {},
                          attach_hint(err, XdpMode::Hw));
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    AttachResult res;
    res.mode = XdpMode::Hw;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) res.prog_id = info.id;
    return res;
}

}  // namespace

Result<AttachResult> attach_object(const std::string& iface, XdpMode mode, bpf_object* obj,
                                   const char* prog_name, const AfterLoad& after_load) {
    auto ifindex = interface_index(iface);
    if (!ifindex) return ifindex.error();
    if (mode == XdpMode::Hw) return attach_offloaded(iface, *ifindex, obj, prog_name, after_load);
    if (auto fs = ensure_bpffs(); !fs) ETC_WARN("%s", fs.error().message().c_str());

    DECLARE_LIBXDP_OPTS(xdp_program_opts, xopts);
    xopts.obj = obj;
    xopts.prog_name = prog_name;
    Program prog{xdp_program__create(&xopts)};
    if (long err = libxdp_get_error(prog.get())) {
        (void)prog.release();  // an error pointer, not a program
        return xdp_error(static_cast<int>(err), iface, "create libxdp program", {});
    }

    // libxdp loads the object while attaching (as a dispatcher component or
    // alone), so after_load runs once it is attached: until then the program
    // sees its maps empty (zeroed config).
    int err = xdp_program__attach(prog.get(), *ifindex, to_libxdp(mode), 0);
    if (err)
        return xdp_error(err, iface, std::string("attach XDP program (") + xdp_mode_name(mode) + ")",
                         attach_hint(err, mode));
    if (after_load)
        if (auto r = after_load(); !r) return r.error();

    AttachResult res;
    res.prog_id = xdp_program__id(prog.get());
    res.mode = mode;
    if (auto mp = multiprog_of(iface, *ifindex); mp && *mp) {
        res.multiprog = !xdp_multiprog__is_legacy(mp->get());
        xdp_attach_mode m = xdp_multiprog__attach_mode(mp->get());
        if (m == XDP_MODE_SKB) res.mode = XdpMode::Skb;
        if (m == XDP_MODE_NATIVE) res.mode = XdpMode::Native;
    }
    return res;
}

Result<int> detach(const std::string& iface, const DetachOptions& o) {
    auto ifindex = interface_index(iface);
    if (!ifindex) return ifindex.error();
    if (auto fs = ensure_bpffs(); !fs) ETC_WARN("%s", fs.error().message().c_str());
    auto mp = multiprog_of(iface, *ifindex);
    if (!mp) return mp.error();

    int detached = 0;
    if (*mp) {
        const auto progs = programs_of(mp->get());
        if (o.all) {
            int err = xdp_multiprog__detach(mp->get());
            if (err) return xdp_error(err, iface, "detach all XDP programs", attach_hint(err, XdpMode::Native));
            detached = static_cast<int>(progs.size()) +
                       (xdp_multiprog__hw_prog(mp->get()) ? 1 : 0);
        } else {
            std::vector<std::pair<xdp_program*, xdp_attach_mode>> candidates;
            for (xdp_program* p : progs) candidates.emplace_back(p, xdp_multiprog__attach_mode(mp->get()));
            if (xdp_program* hw = xdp_multiprog__hw_prog(mp->get())) candidates.emplace_back(hw, XDP_MODE_HW);
            for (auto [p, mode] : candidates) {
                const bool match = o.id ? xdp_program__id(p) == *o.id : kind_of(o.kinds, xdp_program__name(p)) != nullptr;
                if (!match) continue;
                int err = xdp_program__detach(p, *ifindex, mode, 0);
                if (err)
                    return xdp_error(err, iface,
                                     "detach program id " + std::to_string(xdp_program__id(p)),
                                     attach_hint(err, XdpMode::Native));
                ++detached;
            }
        }
    }
    if (!o.pin_path.empty()) {
        for (const auto& kind : o.kinds)
            for (const auto& name : kind.pinned_maps) {
                std::string path = o.pin_path + "/" + name;
                if (unlink(path.c_str()) && errno != ENOENT)
                    ETC_WARN("%s: remove pinned map: %s", path.c_str(), std::strerror(errno));
            }
        if (rmdir(o.pin_path.c_str()) && errno != ENOENT && errno != ENOTEMPTY)
            ETC_WARN("%s: remove pin directory: %s", o.pin_path.c_str(), std::strerror(errno));
    }
    if (detached == 0)
        return Error{ErrorKind::Bpf, ENOENT, iface, "unload",
                     o.id ? "no XDP program with id " + std::to_string(*o.id)
                          : o.all ? std::string("no XDP program attached")
                                  : "no etcpipe program (" + program_names(o.kinds) + ") attached",
                     "see `etcpipe status " + iface + "`"};
    return detached;
}

Result<std::vector<InterfaceStatus>> xdp_status(const std::string& iface,
                                                const std::vector<ProgramKind>& kinds,
                                                bool all_counters) {
    if (auto fs = ensure_bpffs(); !fs) ETC_WARN("%s", fs.error().message().c_str());
    std::vector<std::pair<std::string, int>> ifaces;
    if (!iface.empty()) {
        auto idx = interface_index(iface);
        if (!idx) return idx.error();
        ifaces.emplace_back(iface, *idx);
    } else {
        struct if_nameindex* list = if_nameindex();
        if (!list) return make_error(ErrorKind::Io, errno, "interfaces", "list interfaces");
        for (struct if_nameindex* i = list; i->if_index; ++i)
            ifaces.emplace_back(i->if_name, static_cast<int>(i->if_index));
        if_freenameindex(list);
    }

    std::vector<InterfaceStatus> out;
    for (const auto& [name, idx] : ifaces) {
        InterfaceStatus st;
        st.name = name;
        st.ifindex = idx;
        auto mp = multiprog_of(name, idx);
        if (!mp) return mp.error();
        if (*mp) {
            st.multiprog = !xdp_multiprog__is_legacy(mp->get());
            st.mode = libxdp_mode_name(xdp_multiprog__attach_mode(mp->get()));
            auto progs = programs_of(mp->get());
            if (xdp_program* hw = xdp_multiprog__hw_prog(mp->get())) progs.push_back(hw);
            for (xdp_program* p : progs) {
                ProgramStatus ps;
                ps.name = xdp_program__name(p);
                ps.id = xdp_program__id(p);
                ps.priority = xdp_program__run_prio(p);
                ps.tag = tag_hex(p);
                if (const ProgramKind* kind = kind_of(kinds, ps.name)) {
                    ps.application = kind->application;
                    if (kind->describe)
                        ps.details = describe_program(*kind, xdp_program__fd(p), all_counters);
                }
                st.programs.push_back(std::move(ps));
            }
        }
        if (!iface.empty() || !st.programs.empty()) out.push_back(std::move(st));
    }
    return out;
}

}  // namespace etcpipe
