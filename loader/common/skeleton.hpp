// RAII over bpftool-generated C++ skeletons (the static T::open/load/destroy
// methods bpftool emits under __cplusplus), after the kernel selftests'
// test_cpp.cpp. Non-copyable; errors are returned as values.
#pragma once

#include <bpf/libbpf.h>

#include <string>
#include <utility>

#include "common/result.hpp"

namespace etcpipe {

template <class T>
class Skeleton {
  public:
    Skeleton() = default;
    ~Skeleton() { reset(); }
    Skeleton(const Skeleton&) = delete;
    Skeleton& operator=(const Skeleton&) = delete;
    Skeleton(Skeleton&& o) noexcept : skel_(std::exchange(o.skel_, nullptr)) {}
    Skeleton& operator=(Skeleton&& o) noexcept {
        if (this != &o) {
            reset();
            skel_ = std::exchange(o.skel_, nullptr);
        }
        return *this;
    }

    // Opens the embedded object; rodata and map sizes may be set until load().
    [[nodiscard]] static Result<Skeleton> open(const std::string& what) {
        Skeleton s;
        s.skel_ = T::open(nullptr);
        if (!s.skel_)
            return make_error(ErrorKind::Bpf, errno, what, "open BPF object");
        return s;
    }

    [[nodiscard]] Result<void> load(const std::string& what) {
        int err = T::load(skel_);
        if (err) {
            std::string hint;
            if (err == -EPERM)
                hint = "loading BPF needs CAP_BPF and CAP_NET_ADMIN (run as root)";
            else if (err == -EACCES || err == -EINVAL)
                hint = "the verifier refused the program; run with -vv for its log";
            return make_error(ErrorKind::Bpf, err, what, "load BPF object", {}, hint);
        }
        return {};
    }

    void reset() {
        if (skel_) T::destroy(skel_);
        skel_ = nullptr;
    }

    T* get() const { return skel_; }
    T* operator->() const { return skel_; }
    explicit operator bool() const { return skel_ != nullptr; }

  private:
    T* skel_ = nullptr;
};

}  // namespace etcpipe
