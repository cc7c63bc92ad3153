// Stand-in for gpu/infer.cu when nvcc was not found at build time.
#include "infer.hpp"

namespace etcpipe::infer {

Result<std::unique_ptr<Backend>> make_gpu_backend(std::shared_ptr<const Model> /*model*/,
                                                  const BackendOptions& /*opts*/) {
    return make_error(ErrorKind::Usage, 0, "", "GPU inference",
                      "built without CUDA (nvcc not found at build time)",
                      "install the CUDA toolkit and rebuild, or use --device cpu");
}

}  // namespace etcpipe::infer
