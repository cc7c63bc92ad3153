// Host side of the CUDA plugin (cuda_plugin.hpp): finds and loads
// libetcpipe-cuda.so on first use, and forwards the GPU entry points of
// features.hpp and infer.hpp to it. Nothing here links CUDA.
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>

#include "cuda_plugin.hpp"

namespace etcpipe::cuda_plugin {
namespace {

#ifdef ETCPIPE_HAVE_CUDA
constexpr bool kBuilt = true;
#else
constexpr bool kBuilt = false;
#endif
constexpr const char* kNotBuilt = "built without CUDA (nvcc not found at build time)";

std::string executable_dir() {
    char buf[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0) return ".";
    std::string path(buf, static_cast<size_t>(n));
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

struct Loaded {
    const Api* api = nullptr;
    std::string why;  // when api is nullptr
};

Loaded load() {
    if (!kBuilt) return {nullptr, kNotBuilt};
    const Location loc = locate();
    if (!loc.present) return {nullptr, "CUDA plugin " + loc.path + " not found"};
    // RTLD_LOCAL: the CUDA libraries it pulls in stay out of our namespace.
    void* handle = dlopen(loc.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) return {nullptr, std::string("cannot load the CUDA plugin: ") + dlerror()};
    using Entry = const Api* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, kEntryPoint));
    if (!entry) return {nullptr, loc.path + ": no " + kEntryPoint + " (not an etcpipe CUDA plugin)"};
    const Api* api = entry();
    if (!api || api->abi != kAbiVersion)
        return {nullptr, loc.path + ": plugin ABI " + std::to_string(api ? api->abi : 0) + ", etcpipe needs " +
                             std::to_string(kAbiVersion) + " (rebuild: make)"};
    return {api, {}};
}

Error unavailable(const char* what, const std::string& why, const char* hint) {
    return Error{ErrorKind::Usage, 0, "", what, why, hint};
}

}  // namespace

Location locate() {
    Location loc;
    loc.built = kBuilt;
    const char* env = std::getenv("ETCPIPE_CUDA_PLUGIN");
    loc.path = env && *env ? env : executable_dir() + "/" + kFileName;
    loc.present = access(loc.path.c_str(), R_OK) == 0;
    return loc;
}

const Api* get(std::string* why) {
    static std::once_flag once;
    static Loaded loaded;
    std::call_once(once, [] { loaded = load(); });
    if (!loaded.api && why) *why = loaded.why;
    return loaded.api;
}

Result<void*> device_alloc(size_t bytes) {
    std::string why;
    const Api* api = get(&why);
    if (!api) return unavailable("device memory", why, "");
    return api->device_alloc(bytes);
}

Result<void> copy(void* dst, const void* src, size_t bytes, CopyKind kind) {
    std::string why;
    const Api* api = get(&why);
    if (!api) return unavailable("device copy", why, "");
    return api->copy(dst, src, bytes, kind);
}

void device_free(void* p) {
    if (const Api* api = get()) api->device_free(p);
}

}  // namespace etcpipe::cuda_plugin

namespace etcpipe::features {

bool gpu_available(std::string* why) {
    const cuda_plugin::Api* api = cuda_plugin::get(why);
    return api && api->gpu_available(why);
}

Result<std::unique_ptr<Extractor>> make_gpu_extractor(const std::vector<Feature>& spec,
                                                      const GpuOptions& opts) {
    std::string why;
    const cuda_plugin::Api* api = cuda_plugin::get(&why);
    if (!api)
        return cuda_plugin::unavailable("GPU feature extractor", why,
                                        "install the CUDA toolkit and rebuild, or use the CPU extractor");
    return api->make_gpu_extractor(spec, opts);
}

}  // namespace etcpipe::features

namespace etcpipe::infer {

Result<std::unique_ptr<Backend>> make_gpu_backend(std::shared_ptr<const Model> model,
                                                  const BackendOptions& opts) {
    std::string why;
    const cuda_plugin::Api* api = cuda_plugin::get(&why);
    if (!api)
        return cuda_plugin::unavailable("GPU inference", why,
                                        "install the CUDA toolkit and rebuild, or use --device cpu");
    return api->make_gpu_backend(std::move(model), opts);
}

}  // namespace etcpipe::infer
