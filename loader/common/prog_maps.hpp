// The maps a loaded BPF program uses, found through its map ids (what
// `etcpipe status` inspects and what `etcpipe run --attach-existing` opens).
#pragma once

#include <bpf/bpf.h>

#include <functional>

#include "common/result.hpp"

namespace etcpipe {

// Calls visit(map_fd, info) for each map of the program `prog_fd` (at most
// 32; maps that vanish meanwhile are skipped). map_fd is closed when visit
// returns: dup it to keep it. Fails only when the program's info cannot be
// read (Error::code holds errno).
[[nodiscard]] Result<void> for_each_program_map(
    int prog_fd, const std::function<void(int map_fd, const bpf_map_info& info)>& visit);

}  // namespace etcpipe
