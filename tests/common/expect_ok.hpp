// EXPECT_OK / ASSERT_OK for Result<T> (common/result.hpp): on failure the
// message says the error, not just "false".
#pragma once

#include <gtest/gtest.h>

#include "common/result.hpp"

namespace etcpipe::testing {

template <typename R>
::testing::AssertionResult result_ok(const char* expr, const R& r) {
    if (r.ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << expr << " failed: " << r.error().message();
}

}  // namespace etcpipe::testing

#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::etcpipe::testing::result_ok, expr)
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::etcpipe::testing::result_ok, expr)
