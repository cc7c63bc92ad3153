#include "common/prog_maps.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>

#include "common/fd.hpp"

namespace etcpipe {

Result<void> for_each_program_map(int prog_fd,
                                  const std::function<void(int, const bpf_map_info&)>& visit) {
    std::array<uint32_t, 32> map_ids{};
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    info.nr_map_ids = map_ids.size();
    info.map_ids = reinterpret_cast<uintptr_t>(map_ids.data());
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
        return make_error(ErrorKind::Bpf, errno, "program fd " + std::to_string(prog_fd),
                          "read program info");
    const uint32_t n = std::min<uint32_t>(info.nr_map_ids, map_ids.size());
    for (uint32_t i = 0; i < n; ++i) {
        UniqueFd fd(bpf_map_get_fd_by_id(map_ids[i]));
        if (fd.get() < 0) continue;
        bpf_map_info mi{};
        uint32_t mlen = sizeof(mi);
        if (bpf_obj_get_info_by_fd(fd.get(), &mi, &mlen)) continue;
        visit(fd.get(), mi);
    }
    return {};
}

}  // namespace etcpipe
