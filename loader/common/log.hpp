// Logging: one stderr logger for etcpipe, libbpf and libxdp. libbpf/libxdp
// messages are demoted one level (their warnings become our info, their info
// our debug), as xdp-tools does, so a plain run shows only our own words.
#pragma once

#include <cstdarg>

namespace etcpipe::log {

enum class Level { Error = 0, Warn = 1, Info = 2, Debug = 3 };

void set_level(Level level);
[[nodiscard]] Level level();
// -v → Info, -vv → Debug (default Warn).
void set_verbosity(int count);
// Routes libbpf_set_print and libxdp_set_print into this logger.
void install_library_bridges();

void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void vwrite(Level level, const char* fmt, va_list ap);

// Silences libbpf/libxdp below -vv for the guard's lifetime (expected-noisy probes).
class QuietLibraries {
  public:
    QuietLibraries();
    ~QuietLibraries();
    QuietLibraries(const QuietLibraries&) = delete;
    QuietLibraries& operator=(const QuietLibraries&) = delete;

  private:
    bool prev_;
};

}  // namespace etcpipe::log

#define ETC_ERR(...) ::etcpipe::log::write(::etcpipe::log::Level::Error, __VA_ARGS__)
#define ETC_WARN(...) ::etcpipe::log::write(::etcpipe::log::Level::Warn, __VA_ARGS__)
#define ETC_INFO(...) ::etcpipe::log::write(::etcpipe::log::Level::Info, __VA_ARGS__)
#define ETC_DEBUG(...) ::etcpipe::log::write(::etcpipe::log::Level::Debug, __VA_ARGS__)
