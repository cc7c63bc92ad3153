#include "common/netns.hpp"

#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "common/fd.hpp"
#include "common/log.hpp"

extern char** environ;

namespace etcpipe {

namespace {

// At most the first 4 KiB of what fd delivers until EOF.
std::string read_all(int fd) {
    std::string output;
    char chunk[1024];
    for (;;) {
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (output.size() < 4096) output.append(chunk, static_cast<size_t>(n));
    }
    return output;
}

Result<void> write_proc(const std::string& path, const std::string& value) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        if (errno == ENOENT) return {};  // no IPv6 in this kernel: nothing to turn off
        return make_error(ErrorKind::Io, errno, path, "open");
    }
    if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
        return make_error(ErrorKind::Io, errno, path, "write");
    return {};
}

std::string without_prefix(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

}  // namespace

Result<void> disable_ipv6(const std::string& ns) {
    return in_netns(ns, [] {
        for (const char* k : {"all", "default"})
            if (auto w = write_proc(std::string("/proc/sys/net/ipv6/conf/") + k + "/disable_ipv6",
                                    "1");
                !w)
                return w;
        return Result<void>{};
    });
}

Result<void> run_command(const std::vector<std::string>& argv) {
    std::string cmdline;
    for (const auto& a : argv) cmdline += (cmdline.empty() ? "" : " ") + a;
    if (argv.empty()) return Error{ErrorKind::Usage, 0, "", "run command", "empty command", {}};
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return make_error(ErrorKind::Io, errno, cmdline, "pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    if (rc != 0) {
        ::close(p[0]);
        return make_error(ErrorKind::Io, rc, cmdline, "start command", {},
                          argv[0] == "ip" ? "install iproute2" : "");
    }
    std::string output = read_all(p[0]);
    ::close(p[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
    while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
    if (output.empty())
        output = "exit status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return Error{ErrorKind::Io, 0, cmdline, "run command", output, {}};
}

bool netns_exists(const std::string& name) {
    struct stat st{};
    return !name.empty() && ::stat(("/run/netns/" + name).c_str(), &st) == 0;
}

Result<void> enter_netns(const std::string& name) {
    const std::string path = "/run/netns/" + name;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return make_error(ErrorKind::Io, errno, path, "open network namespace");
    if (::setns(fd.get(), CLONE_NEWNET) < 0)
        return make_error(ErrorKind::Io, errno, path, "enter network namespace", {},
                          errno == EPERM ? "needs CAP_SYS_ADMIN (run as root)" : "");
    return {};
}

Result<void> in_netns(const std::string& name, const std::function<Result<void>()>& fn) {
    Result<void> res;
    std::thread t([&] {
        if (auto e = enter_netns(name); !e) {
            res = e;
            return;
        }
        res = fn();
    });
    t.join();
    return res;
}

// ---- ScopedNetns ---------------------------------------------------------------

ScopedNetns::~ScopedNetns() { reset(); }

ScopedNetns& ScopedNetns::operator=(ScopedNetns&& o) noexcept {
    if (this != &o) {
        reset();
        name_ = std::exchange(o.name_, {});
    }
    return *this;
}

void ScopedNetns::reset() {
    if (name_.empty()) return;
    if (auto r = run_command({"ip", "netns", "del", name_}); !r)
        ETC_WARN("%s", r.error().message().c_str());
    name_.clear();
}

Result<ScopedNetns> ScopedNetns::create(const std::string& name) {
    if (netns_exists(name))
        return Error{ErrorKind::Usage, EEXIST, name, "create network namespace", {},
                     "left over from an earlier run? remove it with `ip netns del " + name + "`"};
    if (auto r = run_command({"ip", "netns", "add", name}); !r) return r.error();
    ScopedNetns ns(name);
    if (auto r = run_command({"ip", "-n", name, "link", "set", "lo", "up"}); !r) return r.error();
    return ns;
}

// ---- NetnsPair -------------------------------------------------------------------

Result<NetnsPair> NetnsPair::create(const VethPairSpec& spec) {
    if (spec.static_neighbours && (spec.mac_a.empty() || spec.mac_b.empty() ||
                                   spec.addr_a.empty() || spec.addr_b.empty()))
        return Error{ErrorKind::Usage, EINVAL, spec.ns_a, "create veth pair",
                     "static neighbours need both MACs and both addresses", {}};
    NetnsPair t;
    t.spec_ = spec;
    auto a = ScopedNetns::create(spec.ns_a);
    if (!a) return a.error();
    t.a_ = std::move(*a);
    auto b = ScopedNetns::create(spec.ns_b);
    if (!b) return b.error();  // t's destructor removes A
    t.b_ = std::move(*b);
    for (const auto* ns : {&t.a_.name(), &t.b_.name()})
        if (auto r = disable_ipv6(*ns); !r) return r.error();
    if (auto r = t.add_veth(); !r) return r.error();
    return t;
}

Result<void> NetnsPair::recreate_veth(unsigned queues) {
    if (auto r = run_command({"ip", "-n", ns_a(), "link", "del", spec_.veth_a}); !r) return r;
    spec_.queues = queues;
    return add_veth();
}

Result<void> NetnsPair::add_veth() {
    const VethPairSpec& s = spec_;
    // One end's half of `ip link add`: name, MAC, queues.
    auto end = [&](std::vector<std::string>& cmd, const std::string& name,
                   const std::string& mac) {
        cmd.insert(cmd.end(), {"name", name});
        if (!mac.empty()) cmd.insert(cmd.end(), {"address", mac});
        if (s.queues) {
            const std::string q = std::to_string(s.queues);
            cmd.insert(cmd.end(), {"numtxqueues", q, "numrxqueues", q});
        }
    };
    std::vector<std::string> add = {"ip", "-n", ns_a(), "link", "add"};
    end(add, s.veth_a, s.mac_a);
    add.insert(add.end(), {"type", "veth", "peer"});
    end(add, s.veth_b, s.mac_b);
    add.insert(add.end(), {"netns", ns_b()});

    std::vector<std::vector<std::string>> steps = {add};
    if (!s.addr_a.empty())
        steps.push_back({"ip", "-n", ns_a(), "addr", "add", s.addr_a, "dev", s.veth_a});
    if (!s.addr_b.empty())
        steps.push_back({"ip", "-n", ns_b(), "addr", "add", s.addr_b, "dev", s.veth_b});
    if (s.static_neighbours) {
        steps.push_back({"ip", "-n", ns_a(), "neigh", "replace", without_prefix(s.addr_b),
                         "lladdr", s.mac_b, "dev", s.veth_a, "nud", "permanent"});
        steps.push_back({"ip", "-n", ns_b(), "neigh", "replace", without_prefix(s.addr_a),
                         "lladdr", s.mac_a, "dev", s.veth_b, "nud", "permanent"});
    }
    steps.push_back({"ip", "-n", ns_a(), "link", "set", s.veth_a, "up"});
    steps.push_back({"ip", "-n", ns_b(), "link", "set", s.veth_b, "up"});
    for (const auto& step : steps)
        if (auto r = run_command(step); !r) return r;  // the destructor cleans up
    return {};
}

}  // namespace etcpipe
