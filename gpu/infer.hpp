// Flow classification (SPEC §5): an ONNX model reduced at load time to a
// fixed list of ops (onnx_model.cpp), run by one of two backends behind one
// interface: the CPU backend (infer_cpu.cpp: im2col + OpenBLAS sgemm,
// batched, multi-threaded) and the CUDA backend (infer.cu: cuBLASLt GEMMs
// with fused bias/ReLU, small kernels for the rest). They compute the same
// function; the tests hold them within 1e-4 of each other and of
// python3-torch.
//
// Model contract (checked at load, every mismatch named):
//  * ONNX, default-domain opset 13..17, float32.
//  * metadata_props: etcpipe.features = the feature spec the inputs come
//    from (gpu/features.hpp), etcpipe.classes = JSON list of class names,
//    etcpipe.preprocess = "etcpipe-v1".
//  * One graph input per feature, named Feature::name() ("payload_10x256"),
//    float32, shape [batch, H, L] (payload/packet) or [batch, H] (sizes,
//    iat, port), batch symbolic; one output [batch, classes] of probabilities.
//  * Input transform etcpipe-v1 (the engine applies it to the extractor's
//    integer tensors): bytes / 255; sizes / 1500; iat (µs)
//    sign(x)·log1p(|x|) / 16; port codes unchanged (integers below 2^24,
//    exact in float32). scripts/etcmodel.py is the python twin.
//
// A model file is untrusted input. The loader rejects, as a Data error that
// names the node or tensor: dimensions that are negative, zero or whose
// product overflows; tensor data whose length disagrees with its declared
// shape; NaN/Inf in any constant or folded weight; strides, kernels and pads
// that make no window (stride ≥ 1, 1 ≤ kernel ≤ padded input, output ≥ 1);
// and anything over the limits below. A Model from Model::load/parse keeps
// every per-flow size within them, so the backends compute sizes without
// overflow; the CPU backend also refuses to return non-finite probabilities.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "features.hpp"
#include "common/result.hpp"

namespace etcpipe::infer {

inline constexpr const char* kPreprocess = "etcpipe-v1";

// Limits on what a model may ask for, each named in the error that enforces it.
inline constexpr size_t kMaxModelBytes = size_t{256} << 20;        // the ONNX file
inline constexpr size_t kMaxInputBytesPerFlow = size_t{4} << 20;   // Σ row_bytes() of etcpipe.features
inline constexpr int64_t kMaxValueElems = int64_t{1} << 22;        // one tensor, per flow (16 MiB)
inline constexpr int64_t kMaxScratchElems = int64_t{1} << 24;      // all tensors + im2col, per flow (64 MiB)
inline constexpr int64_t kMaxParameters = int64_t{1} << 26;        // floats held by the ops (256 MiB)

// A tensor's shape with the batch symbolic: the leading dimension is
// batch × per_flow (a Reshape may fold packets into it), then `dims`.
struct Shape {
    int64_t per_flow = 1;
    std::vector<int64_t> dims;
    [[nodiscard]] int64_t per_flow_elems() const;  // per_flow × prod(dims)
    [[nodiscard]] std::string str() const;          // "[N*10, 16, 63]"
};

enum class OpKind : uint8_t {
    Conv1d,         // [B, Cin, L] → [B, Cout, Lout]; weight [Cout, Cin*K]
    Gemm,           // last dim: [.., K] → [.., Out]; weight [Out, K]
    Relu,
    MaxPool1d,      // [B, C, L] → [B, C, Lout]
    GlobalMaxPool,  // [B, C, L] → [B, C, 1]
    Add,            // a + b, b same shape or a constant broadcast over trailing dims
    Copy,           // Reshape / Flatten / Identity / Dropout: same bytes, new shape
    Concat,
    Softmax,        // over the last dimension
};

struct Op {
    OpKind kind = OpKind::Copy;
    std::string node;       // ONNX node name (or "#index"), for messages
    std::vector<int> in;    // value ids
    int out = -1;
    bool relu = false;      // Conv1d/Gemm: ReLU fused into the epilogue
    // Conv1d / MaxPool1d
    int64_t cin = 0, cout = 0, kernel = 1, stride = 1, pad_begin = 0, pad_end = 0;
    // Gemm: cin = K, cout = Out
    std::vector<float> weight, bias;  // bias may be empty (zero)
    std::vector<float> constant;      // Add: the constant operand (empty: tensor + tensor)
    int64_t axis = 0;                 // Concat: axis in the full shape (≥ 1)
};

struct Value {
    std::string name;
    Shape shape;
};

// An ONNX model after parsing, checking, BatchNorm folding and ReLU fusion.
struct Model {
    std::vector<features::Feature> spec;   // from etcpipe.features, input order
    std::string spec_text;
    std::vector<std::string> classes;
    std::vector<Value> values;
    std::vector<int> inputs;               // value id per feature of `spec`
    int output = -1;                       // value id of the probabilities
    std::vector<Op> ops;                   // in execution order
    int64_t opset = 0;
    size_t parameters = 0;

    // Reads (at most kMaxModelBytes; a directory or unreadable path is an Io
    // error) and parses an ONNX file; parse() checks bytes already in memory,
    // `subject` names them in errors.
    [[nodiscard]] static Result<Model> load(const std::string& path);
    [[nodiscard]] static Result<Model> parse(std::span<const uint8_t> bytes,
                                             const std::string& subject);
    [[nodiscard]] size_t num_classes() const { return classes.size(); }
    // Largest per-flow element count over all values: sizes buffers.
    [[nodiscard]] int64_t max_value_elems() const;
    // Floats the CPU backend needs per flow: every value plus the largest
    // im2col matrix and GEMM result (≤ kMaxScratchElems after a load).
    [[nodiscard]] int64_t scratch_elems() const;
};

// The extractor's integer tensors for `rows` flows, one span per feature of
// the model's spec (rows × Feature::row_bytes() bytes each).
struct HostBatch {
    size_t rows = 0;
    std::vector<std::span<const uint8_t>> tensors;
};

// The same on the device (GPU backend): device pointers, e.g. where the GPU
// extractor left them, and the CUDA stream (cudaStream_t) to run on.
struct DeviceBatch {
    size_t rows = 0;
    std::vector<const void*> tensors;
    void* stream = nullptr;
};

using etcpipe::Device;

struct BackendOptions {
    Device device = Device::Auto;
    unsigned threads = 0;      // CPU: worker threads (0: all hardware threads)
    size_t chunk_rows = 16;   // CPU: flows per work item (bounds scratch memory)
    bool cuda_graphs = true;   // GPU: capture one CUDA graph per batch size
};

class Backend {
  public:
    virtual ~Backend() = default;
    // Loads the model and makes the backend `opts.device` asks for (Auto: the
    // GPU when there is one, else the CPU).
    [[nodiscard]] static Result<std::unique_ptr<Backend>> load(const std::string& model_path,
                                                               const BackendOptions& opts);
    // The same for a model already loaded (shared: one parse for several
    // backends, e.g. one per worker thread); `subject` names it in errors.
    [[nodiscard]] static Result<std::unique_ptr<Backend>> make(std::shared_ptr<const Model> model,
                                                               const BackendOptions& opts,
                                                               const std::string& subject);
    // probs: rows × num_classes, row-major, on the host.
    [[nodiscard]] virtual Result<void> infer(const HostBatch& batch, std::span<float> probs) = 0;
    // probs_device: rows × num_classes on the device. CPU backend: an error.
    [[nodiscard]] virtual Result<void> infer(const DeviceBatch& batch, float* probs_device) = 0;
    // Features on the device (e.g. the GPU extractor's DeviceOutput),
    // probabilities to the host: rows × num_classes. CPU backend: an error.
    [[nodiscard]] virtual Result<void> infer_to_host(const DeviceBatch& batch, std::span<float> probs) {
        (void)batch;
        (void)probs;
        return make_error(ErrorKind::Usage, 0, "", "infer", std::string(name()) + " backend takes host batches");
    }
    [[nodiscard]] virtual const char* name() const = 0;
    [[nodiscard]] virtual const Model& model() const = 0;
};

[[nodiscard]] Result<std::unique_ptr<Backend>> make_cpu_backend(std::shared_ptr<const Model> model,
                                                                const BackendOptions& opts);
// infer.cu; without CUDA at build time or a device at run time, an error
// saying which.
[[nodiscard]] Result<std::unique_ptr<Backend>> make_gpu_backend(std::shared_ptr<const Model> model,
                                                                const BackendOptions& opts);
[[nodiscard]] bool gpu_available(std::string* why = nullptr);
// OpenBLAS's kernel family as it reports it (loading it if need be), or why
// it cannot be loaded.
[[nodiscard]] std::string cpu_blas_kernels();

// The etcpipe-v1 input transform of one feature's raw tensor (rows flows)
// into floats; the CPU backend's, exposed for tests and the reference check.
void transform_input(const features::Feature& f, std::span<const uint8_t> raw, size_t rows,
                     float* out);

}  // namespace etcpipe::infer
