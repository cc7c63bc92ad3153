// The BPF object of xdp_anova for an encoding: bpf/anova.bpf.c (u32 fixed
// point) or bpf/anova_f64.bpf.c (IEEE-754 doubles), one program each so that
// each fits the NFP code store with a margin. Both name their XDP function
// ANOVA_PROG_NAME and their config map ANOVA_MAP_CONFIG; this type hides
// which of the two embedded skeletons is open.
#pragma once

#include <bpf/libbpf.h>

#include <memory>

#include "common/result.hpp"
#include "etcpipe/anova.h"

namespace etcpipe::anova {

// "anova.bpf.o" or "anova_f64.bpf.o": the object that answers `enc`.
[[nodiscard]] const char* object_file(anova_encoding enc);

class Object {
  public:
    Object();
    ~Object();
    Object(Object&&) noexcept;
    Object& operator=(Object&&) noexcept;

    // Opens the embedded object for `enc` (nothing is loaded yet).
    [[nodiscard]] static Result<Object> open(anova_encoding enc);
    [[nodiscard]] Result<void> load();

    [[nodiscard]] bpf_object* obj() const;
    [[nodiscard]] bpf_map* config_map() const;
    [[nodiscard]] bpf_program* prog() const;
    [[nodiscard]] const char* file() const;  // object_file(encoding)

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace etcpipe::anova
