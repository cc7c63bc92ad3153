#include "common/log.hpp"

#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include <atomic>
#include <cstdio>

namespace etcpipe::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Warn)};
std::atomic<bool> g_quiet{false};

const char* prefix(Level l) {
    switch (l) {
        case Level::Error: return "error: ";
        case Level::Warn: return "warning: ";
        case Level::Info: return "";
        case Level::Debug: return "debug: ";
    }
    return "";
}

// libbpf and libxdp share the print-level numbering (WARN=0, INFO=1, DEBUG=2);
// we map them one level down.
Level demote(int lib_level) {
    switch (lib_level) {
        case 0: return Level::Info;
        default: return Level::Debug;
    }
}

void emit_library(const char* who, int lib_level, const char* fmt, va_list ap) {
    Level l = demote(lib_level);
    if (g_quiet.load() && level() < Level::Debug) return;
    if (static_cast<int>(l) > g_level.load()) return;
    std::fprintf(stderr, "%s%s: ", prefix(l), who);
    std::vfprintf(stderr, fmt, ap);
}

int libbpf_bridge(enum libbpf_print_level lvl, const char* fmt, va_list ap) {
    emit_library("libbpf", static_cast<int>(lvl), fmt, ap);
    return 0;
}

int libxdp_bridge(enum libxdp_print_level lvl, const char* fmt, va_list ap) {
    emit_library("libxdp", static_cast<int>(lvl), fmt, ap);
    return 0;
}

}  // namespace

void set_level(Level l) { g_level.store(static_cast<int>(l)); }
Level level() { return static_cast<Level>(g_level.load()); }

void set_verbosity(int count) {
    set_level(count >= 2 ? Level::Debug : count == 1 ? Level::Info : Level::Warn);
}

void install_library_bridges() {
    libbpf_set_print(libbpf_bridge);
    libxdp_set_print(libxdp_bridge);
}

void vwrite(Level l, const char* fmt, va_list ap) {
    if (static_cast<int>(l) > g_level.load()) return;
    std::fputs(prefix(l), stderr);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
}

void write(Level l, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(l, fmt, ap);
    va_end(ap);
}

QuietLibraries::QuietLibraries() : prev_(g_quiet.exchange(true)) {}
QuietLibraries::~QuietLibraries() { g_quiet.store(prev_); }

}  // namespace etcpipe::log
