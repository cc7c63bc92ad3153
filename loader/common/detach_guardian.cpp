#include "common/detach_guardian.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "common/log.hpp"
#include "common/xdp_attach.hpp"

namespace etcpipe {
namespace {

// The guardian child: waits for the pipe to close, then detaches. Never returns.
[[noreturn]] void guard(int read_fd, const std::string& iface, uint32_t prog_id) {
    // A session of its own: a kill of the parent's whole process group
    // (kill -9 -PGID, a container stop) does not take the guardian with it.
    setsid();
    // Only the read end, no terminal signals, quiet stdio.
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
    }
    if (read_fd != 3) {
        dup2(read_fd, 3);
    }
    // stderr stays: a failed detach must be reported somewhere.
    for (int fd = 4; fd < 1024; ++fd) close(fd);
    if (devnull > 3) close(devnull);
    char b;
    while (read(3, &b, 1) < 0 && errno == EINTR) {
    }
    DetachOptions d;
    d.id = prog_id;
    auto r = detach(iface, d);
    if (r && *r > 0)
        std::fprintf(stderr, "etcpipe: process ended without detaching; guardian "
                             "detached program %u from %s\n", prog_id, iface.c_str());
    _exit(0);
}

}  // namespace

Result<void> DetachGuardian::start(const std::string& iface, uint32_t prog_id) {
    int p[2];
    if (pipe2(p, O_CLOEXEC)) return make_error(ErrorKind::Io, errno, iface, "create guardian pipe");
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return make_error(ErrorKind::Io, errno, iface, "fork detach guardian");
    }
    if (pid == 0) guard(p[0], iface, prog_id);
    close(p[0]);
    pid_ = pid;
    wfd_ = p[1];
    return {};
}

void DetachGuardian::disarm() {
    if (wfd_ >= 0) close(wfd_);
    wfd_ = -1;
    if (pid_ > 0) {
        int st;
        while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
    }
    pid_ = -1;
}

bool DetachGuardian::check_lost() {
    if (pid_ <= 0) return false;
    int st;
    if (waitpid(pid_, &st, WNOHANG) != pid_) return false;
    pid_ = -1;
    ETC_WARN("detach guardian ended (%s %d): a SIGKILL of this process would now leave the "
             "program attached; stop with Ctrl-C or SIGTERM (or `etcpipe unload IFACE` after)",
             WIFSIGNALED(st) ? "signal" : "status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    return true;
}

DetachOnExit::~DetachOnExit() {
    if (!armed_) return;
    DetachOptions d;
    d.id = id_;
    if (auto r = detach(iface_, d); !r) ETC_ERR("%s", r.error().message().c_str());
    guardian_.disarm();
}

}  // namespace etcpipe
