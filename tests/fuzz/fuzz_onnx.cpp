// libFuzzer target: the ONNX model loader (gpu/onnx_model.cpp) on arbitrary
// bytes and, for a model it accepts, one CPU inference (gpu/infer_cpu.cpp)
// on two all-zero flows of the model's declared inputs. Seed it with
// models/etc_app.onnx (mutations of a real model reach far deeper than
// random bytes). Properties checked (a violation traps, so the fuzzer keeps
// the input):
//   - Model::parse never crashes, never reads out of bounds (ASan), never
//     lets an exception out, and keeps every size within infer.hpp's limits;
//   - inference on an accepted model never crashes and either fails with an
//     error or returns finite probabilities.
// Links the loader, the CPU backend and the feature spec code only: no CUDA
// (cuda_plugin_host.cpp built without ETCPIPE_HAVE_CUDA never dlopens) and
// no libbpf (the log lines are dropped here instead of linking log.cpp).
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/log.hpp"
#include "gpu/infer.hpp"

namespace etcpipe::log {

// loader/common/log.cpp routes libbpf/libxdp too and would pull them in;
// the fuzzer wants no output from the code under test anyway.
void vwrite(Level, const char*, va_list) {}
void write(Level, const char*, ...) {}

}  // namespace etcpipe::log

namespace {

using namespace etcpipe::infer;

void check(bool ok) {
    if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto loaded = Model::parse(std::span(data, size), "fuzz.onnx");
    if (!loaded) return 0;
    auto model = std::make_shared<const Model>(std::move(*loaded));
    // What the loader promises the backends (infer.hpp).
    check(model->scratch_elems() <= kMaxScratchElems);
    check(model->max_value_elems() <= kMaxValueElems);
    check(model->num_classes() >= 1);
    size_t input_bytes = 0;
    for (const auto& f : model->spec) input_bytes += f.row_bytes();
    check(input_bytes <= kMaxInputBytesPerFlow);

    BackendOptions bo;
    bo.device = etcpipe::Device::Cpu;
    bo.threads = 1;  // one core for fuzzing
    bo.chunk_rows = 1;  // two chunks: the chunk loop runs twice
    auto be = make_cpu_backend(model, bo);
    check(be.ok());

    constexpr size_t kRows = 2;
    std::vector<std::vector<uint8_t>> raw;
    HostBatch hb;
    hb.rows = kRows;
    for (const auto& f : model->spec) raw.emplace_back(kRows * f.row_bytes(), 0);
    for (const auto& r : raw) hb.tensors.emplace_back(r);
    std::vector<float> probs(kRows * model->num_classes());
    if (auto r = (*be)->infer(hb, probs); r.ok())
        for (float p : probs) check(std::isfinite(p));
    return 0;
}
