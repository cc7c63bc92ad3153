// Running the etcpipe binary (and ip, nsenter, …) from the tests: a shell
// command with stdout and stderr captured separately.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/common/build_dir.hpp"

namespace etcpipe::testing {

struct CmdResult {
    int status = -1;  // exit status; -1 when killed by a signal
    std::string out;  // stdout
    std::string err;  // stderr
};

inline CmdResult sh(const std::string& cmd) {
    static int seq = 0;
    const std::string errfile = "/tmp/etcpipe-test-" + std::to_string(getpid()) + "-" +
                                std::to_string(seq++) + ".err";
    CmdResult r;
    std::FILE* p = popen((cmd + " 2>" + errfile).c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    std::ifstream e(errfile);
    r.err.assign(std::istreambuf_iterator<char>(e), {});
    unlink(errfile.c_str());
    return r;
}

}  // namespace etcpipe::testing
