// The CUDA plugin's one exported symbol (see cuda_plugin.hpp).
#include <cuda_runtime.h>

#include "cuda_plugin.hpp"

namespace etcpipe::cuda_plugin {
namespace {

Error cuda_error(cudaError_t e, const char* what) {
    return Error{ErrorKind::Io, 0, "cuda", what, cudaGetErrorString(e), {}};
}

Result<void*> plugin_device_alloc(size_t bytes) {
    void* p = nullptr;
    if (cudaError_t e = cudaMalloc(&p, bytes); e != cudaSuccess) return cuda_error(e, "cudaMalloc");
    return p;
}

Result<void> plugin_copy(void* dst, const void* src, size_t bytes, CopyKind kind) {
    const cudaMemcpyKind k = kind == CopyKind::HostToDevice ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
    if (cudaError_t e = cudaMemcpy(dst, src, bytes, k); e != cudaSuccess) return cuda_error(e, "cudaMemcpy");
    return {};
}

void plugin_device_free(void* p) { cudaFree(p); }

const Api kApi{kAbiVersion,
               &features::cuda_gpu_available,
               &features::cuda_make_gpu_extractor,
               &infer::cuda_make_gpu_backend,
               &plugin_device_alloc,
               &plugin_copy,
               &plugin_device_free};

}  // namespace
}  // namespace etcpipe::cuda_plugin

extern "C" __attribute__((visibility("default"))) const etcpipe::cuda_plugin::Api* etcpipe_cuda_plugin_api() {
    return &etcpipe::cuda_plugin::kApi;
}
