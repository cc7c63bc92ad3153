// libbpf and libxdp print through etcpipe's logger in the test binary as in
// the CLI: without the bridge libbpf's default printer writes its info lines
// (e.g. "skipping unrecognized data section .xdp_run_config") for every
// object a test opens.
#include <gtest/gtest.h>

#include "common/log.hpp"

namespace {

class LogBridgeEnvironment : public ::testing::Environment {
  public:
    void SetUp() override { etcpipe::log::install_library_bridges(); }
};

// Registered before main (gtest_main) runs the tests.
[[maybe_unused]] ::testing::Environment* const kLogBridge =
    ::testing::AddGlobalTestEnvironment(new LogBridgeEnvironment);

}  // namespace
