#include "common/ready_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace etcpipe {

Result<void> write_ready_file(const std::string& path) {
    errno = 0;
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return make_error(ErrorKind::Io, errno, path, "write the ready file");
    const bool written = std::fprintf(f, "%d\n", static_cast<int>(getpid())) > 0;
    const int err = errno;
    if (std::fclose(f) != 0 || !written)
        return make_error(ErrorKind::Io, written ? errno : (err ? err : EIO), path,
                          "write the ready file");
    return {};
}

}  // namespace etcpipe
