// The CUDA plugin: the GPU feature extractor (features.cu) and the GPU
// inference backend (infer.cu) live in one shared object,
// BUILD/libetcpipe-cuda.so, loaded with dlopen the first time a GPU is asked
// for. So one etcpipe binary starts in milliseconds, links no CUDA library,
// and runs on a host without CUDA (--device gpu then says why).
//
// The plugin resolves the rest of etcpipe (errors, logging, the feature
// spec) from the executable, which is linked with -rdynamic; both come from
// the same build, so C++ types cross the boundary as they are. The ABI
// version guards against a stale plugin left in the build folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "features.hpp"
#include "infer.hpp"

namespace etcpipe::cuda_plugin {

inline constexpr uint32_t kAbiVersion = 1;
inline constexpr const char* kFileName = "libetcpipe-cuda.so";
inline constexpr const char* kEntryPoint = "etcpipe_cuda_plugin_api";

enum class CopyKind : uint8_t { HostToDevice, DeviceToHost };

// What the plugin exports: one table, returned by its extern "C" entry point.
struct Api {
    uint32_t abi = 0;
    bool (*gpu_available)(std::string* why) = nullptr;
    Result<std::unique_ptr<features::Extractor>> (*make_gpu_extractor)(
        const std::vector<features::Feature>& spec, const features::GpuOptions& opts) = nullptr;
    Result<std::unique_ptr<infer::Backend>> (*make_gpu_backend)(
        std::shared_ptr<const infer::Model> model, const infer::BackendOptions& opts) = nullptr;
    // Device memory, for tests that hand the backend device pointers.
    Result<void*> (*device_alloc)(size_t bytes) = nullptr;
    Result<void> (*copy)(void* dst, const void* src, size_t bytes, CopyKind kind) = nullptr;
    void (*device_free)(void* p) = nullptr;
};

// Host side (cuda_plugin_host.cpp). The plugin, loaded on the first call;
// nullptr with the reason (not built, file missing, CUDA libraries missing,
// ABI mismatch) in *why.
[[nodiscard]] const Api* get(std::string* why = nullptr);

// Where the plugin is looked for and whether the file is there, without
// loading it (etcpipe version). ETCPIPE_CUDA_PLUGIN overrides the path; the
// default is the folder of the running executable.
struct Location {
    bool built = false;  // nvcc was found when etcpipe was built
    std::string path;
    bool present = false;
};
[[nodiscard]] Location locate();

// Device memory through the plugin (errors when there is none).
[[nodiscard]] Result<void*> device_alloc(size_t bytes);
[[nodiscard]] Result<void> copy(void* dst, const void* src, size_t bytes, CopyKind kind);
void device_free(void* p);

}  // namespace etcpipe::cuda_plugin

// Inside the plugin: the entry points of features.cu and infer.cu (named
// apart from the host's forwarding functions of the same purpose).
namespace etcpipe::features {
[[nodiscard]] bool cuda_gpu_available(std::string* why);
[[nodiscard]] Result<std::unique_ptr<Extractor>> cuda_make_gpu_extractor(const std::vector<Feature>& spec,
                                                                         const GpuOptions& opts);
}  // namespace etcpipe::features
namespace etcpipe::infer {
[[nodiscard]] Result<std::unique_ptr<Backend>> cuda_make_gpu_backend(std::shared_ptr<const Model> model,
                                                                     const BackendOptions& opts);
}  // namespace etcpipe::infer
