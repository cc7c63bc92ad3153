#include "common/output_check.hpp"

#include <cerrno>

namespace etcpipe {

Result<void> finish_output(std::FILE* f, const std::string& name) {
    if (!f) return {};
    errno = 0;
    const bool flushed = std::fflush(f) == 0;
    int err = errno;
    const bool failed = std::ferror(f) != 0;
    if (f != stdout && f != stderr) {
        errno = 0;
        if (std::fclose(f) != 0 && !err) err = errno;
    }
    if (!flushed || failed || err) return make_error(ErrorKind::Io, err ? err : EIO, name, "write output");
    return {};
}

Result<void> finish_stdout() {
    errno = 0;
    if (std::fflush(stdout) != 0 || std::ferror(stdout))
        return make_error(ErrorKind::Io, errno ? errno : EIO, "stdout", "write output");
    return {};
}

}  // namespace etcpipe
