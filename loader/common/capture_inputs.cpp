#include "common/capture_inputs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "common/pcap.hpp"

namespace etcpipe {
namespace {

namespace fs = std::filesystem;

// 1: a capture, 0: not one, -1: could not be read.
int looks_like_capture(const fs::path& p) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    std::array<uint8_t, 4> head{};
    const ssize_t n = ::read(fd, head.data(), head.size());
    ::close(fd);
    if (n < 0) return -1;
    return pcap::has_capture_magic(std::span<const uint8_t>(head.data(), static_cast<size_t>(n))) ? 1 : 0;
}

}  // namespace

Result<CaptureInputs> find_captures(const std::vector<std::string>& paths) {
    CaptureInputs in;
    for (const std::string& path : paths) {
        std::error_code ec;
        const fs::file_status st = fs::status(path, ec);
        if (ec || !fs::exists(st))
            return make_error(ErrorKind::Io, ec ? ec.value() : ENOENT, path, "open capture", {},
                              "check the path");
        if (!fs::is_directory(st)) {
            in.captures.push_back(path);
            continue;
        }
        // Symlinked directories are not followed (no loops); symlinked files are.
        std::vector<fs::path> files;
        fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec), end;
        if (ec) return make_error(ErrorKind::Io, ec.value(), path, "read directory");
        for (; it != end; it.increment(ec)) {
            if (ec) return make_error(ErrorKind::Io, ec.value(), path, "read directory");
            std::error_code fe;
            if (fs::is_regular_file(it->path(), fe)) files.push_back(it->path());
        }
        std::sort(files.begin(), files.end());
        for (const fs::path& f : files) {
            const int kind = looks_like_capture(f);
            if (kind == 1)
                in.captures.push_back(f.string());
            else if (kind == 0)
                ++in.skipped;
            else
                ++in.unreadable;
        }
    }
    return in;
}

}  // namespace etcpipe
