// The reasons a test skips instead of failing, each said one way: no root,
// no GPU, no test data. Usable in a test body or a fixture's SetUp.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

// `what_for` completes "needs root ...", e.g. "for network namespaces and XDP".
#define SKIP_UNLESS_ROOT(what_for)                                                     \
    do {                                                                               \
        if (::geteuid() != 0)                                                          \
            GTEST_SKIP() << "needs root " << what_for << "; running as euid " << ::geteuid(); \
    } while (0)

// `available` is features::gpu_available or infer::gpu_available. The reason
// is also printed, so a plain run shows why the GPU half did not run.
#define SKIP_WITHOUT_GPU(available)                                          \
    do {                                                                     \
        std::string why_gpu_;                                                \
        if (!(available)(&why_gpu_)) {                                       \
            std::printf("[  SKIPPED ] no GPU: %s\n", why_gpu_.c_str());      \
            GTEST_SKIP() << "no GPU: " << why_gpu_;                          \
        }                                                                    \
    } while (0)

// Test data fetched by `make testdata` (testdata/ndpi/...); printed like the
// GPU reason.
#define SKIP_WITHOUT_TESTDATA(path)                                                   \
    do {                                                                              \
        if (!std::filesystem::exists(path)) {                                         \
            std::printf("[  SKIPPED ] %s missing (run `make testdata`)\n",             \
                        std::string(path).c_str());                                   \
            GTEST_SKIP() << (path) << " missing (run `make testdata`)";               \
        }                                                                             \
    } while (0)
