// CUDA backend (semantics: gpu/infer.hpp; the CPU twin is infer_cpu.cpp and
// the tests hold the two within 1e-4).
//
// Weights live on the device from construction. Per batch, on one stream:
//  1. k_transform per input: the extractor's integer tensor (u8 bytes, i32
//     sizes and port codes, i64 iat; on the device, e.g. where the GPU extractor left it)
//     → float with the etcpipe-v1 scaling, written into the first layer's
//     input buffer: the u8→float conversion is the first layer's input
//     transform, there is no separate host pass.
//  2. Conv1d: k_im2col (rows = sample × position) then one cuBLASLt GEMM
//     with the bias (and ReLU) in its epilogue, then k_to_channels
//     ([rows, Cout] → [sample, Cout, Lout]). Gemm: one cuBLASLt GEMM with the
//     same epilogue. FP32 compute (no TF32) so results stay within 1e-4 of
//     the CPU.
//  3. Small kernels for MaxPool, GlobalMaxPool, Add, Relu, Concat, Softmax;
//     Reshape/Flatten are a device copy.
// Host batches are staged through device buffers of fixed address, so the
// whole sequence for one batch size is captured once as a CUDA graph and
// replayed (opts.cuda_graphs).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "cuda_plugin.hpp"
#include "infer.hpp"

namespace etcpipe::infer {
namespace {

#define ETC_CUBLAS_TRY(call)                                                                \
    do {                                                                                    \
        const cublasStatus_t etc_st_ = (call);                                              \
        if (etc_st_ != CUBLAS_STATUS_SUCCESS)                                               \
            return ::etcpipe::make_error(::etcpipe::ErrorKind::Io, 0, "cublasLt",           \
                                         std::string(#call) + " at " __FILE__ ":" +         \
                                             std::to_string(__LINE__),                      \
                                         "status " + std::to_string(int(etc_st_)));        \
    } while (0)

constexpr int kThreads = 256;
inline unsigned blocks_for(size_t n) {
    return static_cast<unsigned>(std::min<size_t>((n + kThreads - 1) / kThreads, 65535));
}
#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < (n); i += size_t(gridDim.x) * blockDim.x)

__global__ void k_transform(int kind, const void* raw, size_t n, float* out) {
    GRID_STRIDE(i, n) {
        if (kind == 0) {
            out[i] = static_cast<float>(static_cast<const uint8_t*>(raw)[i] * (1.0 / 255.0));
        } else if (kind == 1) {
            out[i] = static_cast<float>(static_cast<const int32_t*>(raw)[i] / 1500.0);
        } else if (kind == 3) {  // port codes as they are
            out[i] = static_cast<float>(static_cast<const int32_t*>(raw)[i]);
        } else {
            const int64_t v = static_cast<const int64_t*>(raw)[i];
            const double a = log1p(fabs(static_cast<double>(v))) / 16.0;
            out[i] = static_cast<float>(v < 0 ? -a : a);
        }
    }
}

__global__ void k_im2col(const float* x, size_t samples, int64_t cin, int64_t len, int64_t k,
                         int64_t stride, int64_t pad, int64_t lout, float* cols) {
    const size_t kk = size_t(cin * k);
    GRID_STRIDE(i, samples * size_t(lout) * kk) {
        const size_t row = i / kk, col = i % kk;
        const size_t s = row / size_t(lout);
        const int64_t p = int64_t(row % size_t(lout));
        const int64_t c = int64_t(col) / k, j = int64_t(col) % k;
        const int64_t at = p * stride - pad + j;
        cols[i] = at >= 0 && at < len ? x[s * size_t(cin * len) + size_t(c * len + at)] : 0.f;
    }
}

__global__ void k_to_channels(const float* g, size_t samples, int64_t cout, int64_t lout, float* y) {
    GRID_STRIDE(i, samples * size_t(cout * lout)) {
        const size_t s = i / size_t(cout * lout);
        const int64_t r = int64_t(i % size_t(cout * lout));
        const int64_t c = r / lout, p = r % lout;
        y[i] = g[(s * size_t(lout) + size_t(p)) * size_t(cout) + size_t(c)];
    }
}

__global__ void k_maxpool(const float* x, size_t rows, int64_t len, int64_t k, int64_t stride,
                          int64_t pad, int64_t lout, float* y) {
    GRID_STRIDE(i, rows * size_t(lout)) {
        const size_t r = i / size_t(lout);
        const int64_t p = int64_t(i % size_t(lout));
        float m = -INFINITY;
        for (int64_t j = 0; j < k; ++j) {
            const int64_t at = p * stride - pad + j;
            if (at >= 0 && at < len) m = fmaxf(m, x[r * size_t(len) + size_t(at)]);
        }
        y[i] = m;
    }
}

__global__ void k_global_max(const float* x, size_t rows, int64_t len, float* y) {
    GRID_STRIDE(r, rows) {
        float m = -INFINITY;
        for (int64_t j = 0; j < len; ++j) m = fmaxf(m, x[r * size_t(len) + size_t(j)]);
        y[r] = m;
    }
}

__global__ void k_add(const float* a, const float* b, size_t n, size_t bn, float* y) {
    GRID_STRIDE(i, n) y[i] = a[i] + b[bn ? i % bn : i];
}

__global__ void k_relu(const float* x, size_t n, float* y) {
    GRID_STRIDE(i, n) y[i] = fmaxf(x[i], 0.f);
}

__global__ void k_concat_part(const float* x, size_t outer, size_t inner, size_t inner_out,
                              size_t offset, float* y) {
    GRID_STRIDE(i, outer * inner) y[(i / inner) * inner_out + offset + i % inner] = x[i];
}

__global__ void k_softmax(const float* x, size_t rows, size_t c, float* y) {
    GRID_STRIDE(r, rows) {
        const float* xr = x + r * c;
        float* yr = y + r * c;
        float m = -INFINITY;
        for (size_t j = 0; j < c; ++j) m = fmaxf(m, xr[j]);
        double sum = 0;
        for (size_t j = 0; j < c; ++j) sum += yr[j] = expf(xr[j] - m);
        for (size_t j = 0; j < c; ++j) yr[j] = static_cast<float>(yr[j] / sum);
    }
}

template <class T>
struct DeviceBuffer {  // RAII cudaMalloc
    T* p = nullptr;
    size_t n = 0;
    DeviceBuffer() = default;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr; o.n = 0; }
    ~DeviceBuffer() { if (p) cudaFree(p); }
    cudaError_t reserve(size_t count) {
        if (count <= n) return cudaSuccess;
        if (p) cudaFree(p);
        p = nullptr;
        n = 0;
        const cudaError_t e = cudaMalloc(&p, count * sizeof(T));
        if (e == cudaSuccess) n = count;
        return e;
    }
};

struct DeviceOp {
    DeviceBuffer<float> weight, bias;
};

// `waiter` runs its later work only after what `signaler` has queued so far.
Result<void> wait_for(cudaStream_t waiter, cudaStream_t signaler) {
    cudaEvent_t ev;
    ETC_CUDA_TRY(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    cudaError_t e = cudaEventRecord(ev, signaler);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(waiter, ev, 0);
    cudaEventDestroy(ev);
    ETC_CUDA_TRY(e);
    return {};
}

class GpuBackend final : public Backend {
  public:
    GpuBackend(std::shared_ptr<const Model> model, const BackendOptions& opts)
        : model_(std::move(model)), opts_(opts) {}

    ~GpuBackend() override {
        for (auto& [rows, g] : graphs_) cudaGraphExecDestroy(g);
        if (lt_) cublasLtDestroy(lt_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    Result<void> init() {
        ETC_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        ETC_CUBLAS_TRY(cublasLtCreate(&lt_));
        ETC_CUDA_TRY(workspace_.reserve(kWorkspaceBytes));
        ops_.resize(model_->ops.size());
        for (size_t i = 0; i < model_->ops.size(); ++i) {
            const Op& op = model_->ops[i];
            if (op.kind != OpKind::Conv1d && op.kind != OpKind::Gemm && op.kind != OpKind::Add) continue;
            const std::vector<float>& w = op.kind == OpKind::Add ? op.constant : op.weight;
            if (!w.empty()) {
                ETC_CUDA_TRY(ops_[i].weight.reserve(w.size()));
                ETC_CUDA_TRY(cudaMemcpy(ops_[i].weight.p, w.data(), w.size() * 4, cudaMemcpyHostToDevice));
            }
            // The epilogue always adds a bias: zeros when the model has none.
            if (op.kind != OpKind::Add) {
                std::vector<float> b = op.bias;
                b.resize(static_cast<size_t>(op.cout), 0.f);
                ETC_CUDA_TRY(ops_[i].bias.reserve(b.size()));
                ETC_CUDA_TRY(cudaMemcpy(ops_[i].bias.p, b.data(), b.size() * 4, cudaMemcpyHostToDevice));
            }
        }
        values_.resize(model_->values.size());
        return {};
    }

    Result<void> infer(const HostBatch& batch, std::span<float> probs) override {
        const Model& m = *model_;
        if (batch.tensors.size() != m.spec.size())
            return make_error(ErrorKind::Usage, 0, "", "infer", "batch does not match the model's features");
        if (probs.size() != batch.rows * m.num_classes())
            return make_error(ErrorKind::Usage, 0, "", "infer", "output span has the wrong size");
        if (batch.rows == 0) return {};
        staging_.resize(m.spec.size());
        DeviceBatch db;
        db.rows = batch.rows;
        db.stream = stream_;
        for (size_t f = 0; f < m.spec.size(); ++f) {
            const size_t bytes = batch.rows * m.spec[f].row_bytes();
            if (batch.tensors[f].size() != bytes)
                return make_error(ErrorKind::Usage, 0, "", "infer", "tensor " + m.spec[f].name() + " has the wrong size");
            ETC_CUDA_TRY(staging_[f].reserve(bytes));
            ETC_CUDA_TRY(cudaMemcpyAsync(staging_[f].p, batch.tensors[f].data(), bytes,
                                         cudaMemcpyHostToDevice, stream_));
            db.tensors.push_back(staging_[f].p);
        }
        ETC_CUDA_TRY(out_.reserve(probs.size()));
        if (auto r = run(db, out_.p, opts_.cuda_graphs); !r) return r;
        ETC_CUDA_TRY(cudaMemcpyAsync(probs.data(), out_.p, probs.size() * 4, cudaMemcpyDeviceToHost, stream_));
        ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        return {};
    }

    Result<void> infer_to_host(const DeviceBatch& batch, std::span<float> probs) override {
        if (probs.size() != batch.rows * model_->num_classes())
            return make_error(ErrorKind::Usage, 0, "", "infer", "output span has the wrong size");
        if (batch.rows == 0) return {};
        ETC_CUDA_TRY(out_.reserve(probs.size()));
        if (auto r = infer(batch, out_.p); !r) return r;
        ETC_CUDA_TRY(cudaMemcpyAsync(probs.data(), out_.p, probs.size() * 4, cudaMemcpyDeviceToHost, stream_));
        ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        return {};
    }

    Result<void> infer(const DeviceBatch& batch, float* probs_device) override {
        if (batch.tensors.size() != model_->spec.size())
            return make_error(ErrorKind::Usage, 0, "", "infer", "batch does not match the model's features");
        if (batch.rows == 0) return {};
        DeviceBatch b = batch;
        cudaStream_t caller = static_cast<cudaStream_t>(batch.stream);
        b.stream = stream_;
        // Order after the caller's work (e.g. the extractor) without a host sync.
        if (caller)
            if (auto r = wait_for(stream_, caller); !r) return r;
        // Caller pointers may change per call: no graph replay here.
        if (auto r = run(b, probs_device, false); !r) return r;
        if (caller) {
            if (auto r = wait_for(caller, stream_); !r) return r;
        } else {
            ETC_CUDA_TRY(cudaStreamSynchronize(stream_));
        }
        return {};
    }

    const char* name() const override { return "gpu"; }
    const Model& model() const override { return *model_; }

  private:
    static constexpr size_t kWorkspaceBytes = 32u << 20;

    // Sizes every buffer for `rows` flows (before capture: no mallocs inside a graph).
    Result<void> reserve(size_t rows) {
        const Model& m = *model_;
        for (size_t v = 0; v < m.values.size(); ++v)
            ETC_CUDA_TRY(values_[v].reserve(rows * static_cast<size_t>(m.values[v].shape.per_flow_elems())));
        size_t cols = 0, gout = 0;
        for (const Op& op : m.ops) {
            if (op.kind != OpKind::Conv1d) continue;
            const Shape& os = m.values[static_cast<size_t>(op.out)].shape;
            const Shape& is = m.values[static_cast<size_t>(op.in[0])].shape;
            const size_t positions = rows * static_cast<size_t>(is.per_flow * os.dims[1]);
            cols = std::max(cols, positions * static_cast<size_t>(op.cin * op.kernel));
            gout = std::max(gout, positions * static_cast<size_t>(op.cout));
        }
        ETC_CUDA_TRY(cols_.reserve(std::max<size_t>(cols, 1)));
        ETC_CUDA_TRY(gemm_out_.reserve(std::max<size_t>(gout, 1)));
        return {};
    }

    // y[m, n] (row-major) = x[m, k] · W[n, k]^T + bias, ReLU optional: in
    // cuBLASLt's column-major terms D[n, m] = W^T(op T on [k, n]) · X^T.
    Result<void> gemm(const DeviceOp& w, const float* x, float* y, size_t m, int64_t k, int64_t n, bool relu) {
        cublasLtMatmulDesc_t desc = nullptr;
        cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
        cublasLtMatmulPreference_t pref = nullptr;
        struct Cleanup {
            cublasLtMatmulDesc_t& d; cublasLtMatrixLayout_t &a, &b, &c; cublasLtMatmulPreference_t& p;
            ~Cleanup() {
                if (p) cublasLtMatmulPreferenceDestroy(p);
                if (c) cublasLtMatrixLayoutDestroy(c);
                if (b) cublasLtMatrixLayoutDestroy(b);
                if (a) cublasLtMatrixLayoutDestroy(a);
                if (d) cublasLtMatmulDescDestroy(d);
            }
        } cleanup{desc, la, lb, ld, pref};
        ETC_CUBLAS_TRY(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        ETC_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
        ETC_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
        const cublasLtEpilogue_t epi = relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
        ETC_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        const float* bias = w.bias.p;
        ETC_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        // A = W stored [n, k] row-major = column-major [k, n]; op T → [n, k].
        ETC_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, uint64_t(k), uint64_t(n), k));
        // B = X stored [m, k] row-major = column-major [k, m].
        ETC_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, uint64_t(k), m, k));
        // D = column-major [n, m] = row-major [m, n].
        ETC_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, uint64_t(n), m, n));
        ETC_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
        const size_t ws = kWorkspaceBytes;
        ETC_CUBLAS_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
        cublasLtMatmulHeuristicResult_t heur{};
        int found = 0;
        ETC_CUBLAS_TRY(cublasLtMatmulAlgoGetHeuristic(lt_, desc, la, lb, ld, ld, pref, 1, &heur, &found));
        if (found == 0)
            return make_error(ErrorKind::Io, 0, "cublasLt", "GEMM", "no algorithm for " + std::to_string(m) +
                                                                    "x" + std::to_string(k) + "x" + std::to_string(n));
        const float one = 1.f, zero = 0.f;
        ETC_CUBLAS_TRY(cublasLtMatmul(lt_, desc, &one, w.weight.p, la, x, lb, &zero, y, ld, y, ld, &heur.algo,
                                      workspace_.p, ws, stream_));
        return {};
    }

    Result<void> run_ops(const DeviceBatch& b, float* probs) {
        const Model& m = *model_;
        const size_t rows = b.rows;
        for (size_t f = 0; f < m.spec.size(); ++f) {
            const auto& feat = m.spec[f];
            const size_t n = rows * feat.row_bytes() / feat.elem_size();
            const int kind = feat.kind == features::Kind::Sizes ? 1
                           : feat.kind == features::Kind::Iat   ? 2
                           : feat.kind == features::Kind::Port  ? 3
                                                                : 0;
            k_transform<<<blocks_for(n), kThreads, 0, stream_>>>(kind, b.tensors[f], n,
                                                                 values_[static_cast<size_t>(m.inputs[f])].p);
        }
        for (size_t i = 0; i < m.ops.size(); ++i) {
            const Op& op = m.ops[i];
            const Shape& is = m.values[static_cast<size_t>(op.in[0])].shape;
            const Shape& os = m.values[static_cast<size_t>(op.out)].shape;
            const float* x = values_[static_cast<size_t>(op.in[0])].p;
            float* y = static_cast<int>(op.out) == m.output ? probs : values_[static_cast<size_t>(op.out)].p;
            const size_t in_n = rows * static_cast<size_t>(is.per_flow_elems());
            const size_t out_n = rows * static_cast<size_t>(os.per_flow_elems());
            const size_t samples = rows * static_cast<size_t>(is.per_flow);
            switch (op.kind) {
            case OpKind::Conv1d: {
                const int64_t lout = os.dims[1];
                const size_t positions = samples * static_cast<size_t>(lout);
                k_im2col<<<blocks_for(positions * size_t(op.cin * op.kernel)), kThreads, 0, stream_>>>(
                    x, samples, op.cin, is.dims[1], op.kernel, op.stride, op.pad_begin, lout, cols_.p);
                if (auto r = gemm(ops_[i], cols_.p, gemm_out_.p, positions, op.cin * op.kernel, op.cout, op.relu); !r)
                    return r;
                k_to_channels<<<blocks_for(out_n), kThreads, 0, stream_>>>(gemm_out_.p, samples, op.cout, lout, y);
                break;
            }
            case OpKind::Gemm:
                if (auto r = gemm(ops_[i], x, y, in_n / static_cast<size_t>(op.cin), op.cin, op.cout, op.relu); !r)
                    return r;
                break;
            case OpKind::Relu: k_relu<<<blocks_for(in_n), kThreads, 0, stream_>>>(x, in_n, y); break;
            case OpKind::MaxPool1d:
                k_maxpool<<<blocks_for(out_n), kThreads, 0, stream_>>>(x, samples * size_t(is.dims[0]), is.dims[1],
                                                                       op.kernel, op.stride, op.pad_begin, os.dims[1], y);
                break;
            case OpKind::GlobalMaxPool:
                k_global_max<<<blocks_for(out_n), kThreads, 0, stream_>>>(x, samples * size_t(is.dims[0]),
                                                                          is.dims[1], y);
                break;
            case OpKind::Add:
                if (!op.constant.empty())
                    k_add<<<blocks_for(in_n), kThreads, 0, stream_>>>(x, ops_[i].weight.p, in_n, op.constant.size(), y);
                else
                    k_add<<<blocks_for(in_n), kThreads, 0, stream_>>>(
                        x, values_[static_cast<size_t>(op.in[1])].p, in_n, 0, y);
                break;
            case OpKind::Copy:
                ETC_CUDA_TRY(cudaMemcpyAsync(y, x, out_n * 4, cudaMemcpyDeviceToDevice, stream_));
                break;
            case OpKind::Concat: {
                size_t inner_out = 1;
                for (size_t d = static_cast<size_t>(op.axis - 1); d < os.dims.size(); ++d) inner_out *= size_t(os.dims[d]);
                const size_t outer = out_n / inner_out;
                size_t offset = 0;
                for (int v : op.in) {
                    const Shape& s = m.values[static_cast<size_t>(v)].shape;
                    size_t inner = 1;
                    for (size_t d = static_cast<size_t>(op.axis - 1); d < s.dims.size(); ++d) inner *= size_t(s.dims[d]);
                    k_concat_part<<<blocks_for(outer * inner), kThreads, 0, stream_>>>(
                        values_[static_cast<size_t>(v)].p, outer, inner, inner_out, offset, y);
                    offset += inner;
                }
                break;
            }
            case OpKind::Softmax: {
                const size_t c = static_cast<size_t>(os.dims.back());
                k_softmax<<<blocks_for(out_n / c), kThreads, 0, stream_>>>(x, out_n / c, c, y);
                break;
            }
            }
            ETC_CUDA_TRY(cudaGetLastError());
        }
        return {};
    }

    Result<void> run(const DeviceBatch& b, float* probs, bool graphs) {
        if (auto r = reserve(b.rows); !r) return r;
        if (!graphs) return run_ops(b, probs);
        // Graph per batch size: it bakes in the addresses of the staging,
        // value and output buffers; when one was reallocated, recapture.
        std::vector<const void*> sig{cols_.p, gemm_out_.p, out_.p, probs};
        for (const auto& v : values_) sig.push_back(v.p);
        for (const void* t : b.tensors) sig.push_back(t);
        if (sig != graph_sig_) {
            for (auto& [rows, g] : graphs_) cudaGraphExecDestroy(g);
            graphs_.clear();
            graph_sig_ = std::move(sig);
        }
        auto it = graphs_.find(b.rows);
        if (it == graphs_.end()) {
            cudaGraph_t graph = nullptr;
            ETC_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
            auto r = run_ops(b, probs);
            const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
            if (!r) {
                if (graph) cudaGraphDestroy(graph);
                return r;
            }
            ETC_CUDA_TRY(e);
            cudaGraphExec_t exec = nullptr;
            const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
            cudaGraphDestroy(graph);
            ETC_CUDA_TRY(ie);
            it = graphs_.emplace(b.rows, exec).first;
        }
        ETC_CUDA_TRY(cudaGraphLaunch(it->second, stream_));
        return {};
    }

    std::shared_ptr<const Model> model_;
    BackendOptions opts_;
    cudaStream_t stream_ = nullptr;
    cublasLtHandle_t lt_ = nullptr;
    DeviceBuffer<uint8_t> workspace_;
    std::vector<DeviceOp> ops_;
    std::vector<DeviceBuffer<float>> values_;
    DeviceBuffer<float> cols_, gemm_out_, out_;
    std::vector<DeviceBuffer<uint8_t>> staging_;
    std::map<size_t, cudaGraphExec_t> graphs_;
    std::vector<const void*> graph_sig_;
};

}  // namespace

Result<std::unique_ptr<Backend>> cuda_make_gpu_backend(std::shared_ptr<const Model> model,
                                                       const BackendOptions& opts) {
    std::string why;
    if (!features::cuda_gpu_available(&why))
        return make_error(ErrorKind::Usage, 0, "", "GPU inference", why, "use --device cpu");
    if (!model) return make_error(ErrorKind::Usage, 0, "", "GPU inference", "no model");
    auto b = std::make_unique<GpuBackend>(std::move(model), opts);
    if (auto r = b->init(); !r) return r.error();
    return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace etcpipe::infer
