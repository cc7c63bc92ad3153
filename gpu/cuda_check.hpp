// ETC_CUDA_TRY: returns an etcpipe Error (ErrorKind::Io, subject "cuda") from
// the enclosing function when a CUDA runtime call fails, naming the call, the
// source line and CUDA's error string. For the .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "common/result.hpp"

#define ETC_CUDA_TRY(call)                                                                  \
    do {                                                                                    \
        const cudaError_t etc_err_ = (call);                                                \
        if (etc_err_ != cudaSuccess)                                                        \
            return ::etcpipe::make_error(::etcpipe::ErrorKind::Io, 0, "cuda",               \
                                         std::string(#call) + " at " __FILE__ ":" +         \
                                             std::to_string(__LINE__),                      \
                                         cudaGetErrorString(etc_err_));                     \
    } while (0)
