// Stand-in for gpu/features.cu when nvcc was not found at build time.
#include "features.hpp"

namespace etcpipe::features {

namespace {
constexpr const char* kNoCuda = "built without CUDA (nvcc not found at build time)";
}

Result<std::unique_ptr<Extractor>> make_gpu_extractor(const std::vector<Feature>& /*spec*/,
                                                      const GpuOptions& /*opts*/) {
    return make_error(ErrorKind::Usage, 0, "", "GPU feature extractor", kNoCuda,
                      "install the CUDA toolkit and rebuild, or use the CPU extractor");
}

bool gpu_available(std::string* why) {
    if (why) *why = kNoCuda;
    return false;
}

}  // namespace etcpipe::features
