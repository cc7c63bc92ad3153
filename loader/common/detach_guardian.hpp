// Detaching the program a process-owned run (`etcpipe run`, `etcpipe md
// listen`) attached, on every way out: a scope guard for the normal paths,
// and a forked guardian for the others.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/result.hpp"

namespace etcpipe {

// When this process ends without detaching (SIGKILL, a crash), a forked
// child sees its pipe close and detaches the program by id. Forked before
// any thread exists; it closes every other descriptor so it holds nothing.
class DetachGuardian {
  public:
    DetachGuardian() = default;
    DetachGuardian(const DetachGuardian&) = delete;
    DetachGuardian& operator=(const DetachGuardian&) = delete;
    ~DetachGuardian() { disarm(); }

    [[nodiscard]] Result<void> start(const std::string& iface, uint32_t prog_id);
    // After our own detach: let the child find nothing to do, and reap it.
    void disarm();
    // Called from the run loop: true once, the first time the guardian is
    // found dead (killed on its own); it warns that a SIGKILL of this process
    // would now leave the program attached. Then the run detaches only itself.
    bool check_lost();

  private:
    pid_t pid_ = -1;
    int wfd_ = -1;
};

// Detaches program `id` from `iface` when destroyed (once armed), then
// disarms the guardian.
class DetachOnExit {
  public:
    explicit DetachOnExit(DetachGuardian& guardian) : guardian_(guardian) {}
    DetachOnExit(const DetachOnExit&) = delete;
    DetachOnExit& operator=(const DetachOnExit&) = delete;
    ~DetachOnExit();

    void arm(const std::string& iface, uint32_t id) {
        iface_ = iface;
        id_ = id;
        armed_ = true;
    }

  private:
    DetachGuardian& guardian_;
    std::string iface_;
    uint32_t id_ = 0;
    bool armed_ = false;
};

}  // namespace etcpipe
