// CPU backend: the Model's ops on the host. Convolutions are im2col + one
// OpenBLAS sgemm over the whole chunk (all flows × positions as rows), Gemm
// is one sgemm per chunk; bias and ReLU are applied while scattering the
// GEMM result. Chunks of flows run on worker threads, each with its own
// scratch; OpenBLAS is kept single-threaded so the threads do not
// oversubscribe the cores. Sizes come from a loaded Model, which keeps every
// per-flow size within the limits of infer.hpp; chunks are cut so that one
// worker's scratch stays within kChunkScratchElems.
//
// OpenBLAS is loaded (dlopen) by the first CPU backend, not linked: Debian's
// pthread build starts a spinning thread per core when it is loaded, which
// every etcpipe command paid at start (~0.17 s of CPU on 2 cores) whether it
// ran a model or not. It is loaded with OPENBLAS_NUM_THREADS=1 (restored at
// once: children such as python3-torch keep the caller's), so it starts no
// threads; the parallelism is ours.
#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "infer.hpp"
#include "common/log.hpp"

namespace etcpipe::infer {

namespace {

struct Blas {
    decltype(&cblas_sgemm) sgemm = nullptr;
    decltype(&openblas_set_num_threads) set_num_threads = nullptr;
    decltype(&openblas_get_corename) corename = nullptr;
    std::string error;  // empty when loaded
};

const Blas& blas() {
    static Blas b;
    static std::once_flag once;
    std::call_once(once, [] {
        const char* was = std::getenv("OPENBLAS_NUM_THREADS");
        const std::string saved = was ? was : "";
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
        if (was)
            setenv("OPENBLAS_NUM_THREADS", saved.c_str(), 1);
        else
            unsetenv("OPENBLAS_NUM_THREADS");
        if (!h) {
            const char* e = dlerror();
            b.error = e ? e : "dlopen failed";
            return;
        }
        b.sgemm = reinterpret_cast<decltype(b.sgemm)>(dlsym(h, "cblas_sgemm"));
        b.set_num_threads = reinterpret_cast<decltype(b.set_num_threads)>(dlsym(h, "openblas_set_num_threads"));
        b.corename = reinterpret_cast<decltype(b.corename)>(dlsym(h, "openblas_get_corename"));
        if (!b.sgemm || !b.set_num_threads || !b.corename) b.error = "libopenblas.so.0 lacks cblas_sgemm or openblas_*";
    });
    return b;
}

}  // namespace

std::string cpu_blas_kernels() {
    const Blas& b = blas();
    return b.error.empty() ? std::string(b.corename()) : "unavailable (" + b.error + ")";
}

void transform_input(const features::Feature& f, std::span<const uint8_t> raw, size_t rows,
                     float* out) {
    const size_t n = rows * f.row_bytes() / f.elem_size();
    switch (f.kind) {
    case features::Kind::Payload:
    case features::Kind::Packet:
        for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(raw[i] * (1.0 / 255.0));
        break;
    case features::Kind::Sizes:
        for (size_t i = 0; i < n; ++i) {
            int32_t v;
            std::memcpy(&v, raw.data() + i * 4, 4);
            out[i] = static_cast<float>(v / 1500.0);
        }
        break;
    case features::Kind::Port:  // the code as it is (exact in float below 2^24)
        for (size_t i = 0; i < n; ++i) {
            int32_t v;
            std::memcpy(&v, raw.data() + i * 4, 4);
            out[i] = static_cast<float>(v);
        }
        break;
    case features::Kind::Iat:
        for (size_t i = 0; i < n; ++i) {
            int64_t v;
            std::memcpy(&v, raw.data() + i * 8, 8);
            const double a = std::log1p(std::fabs(static_cast<double>(v))) / 16.0;
            out[i] = static_cast<float>(v < 0 ? -a : a);
        }
        break;
    }
}

namespace {

// Floats of scratch one worker may use for one chunk (256 MiB): a model with
// large tensors gets fewer flows per chunk, never fewer than one.
constexpr int64_t kChunkScratchElems = int64_t{1} << 26;

size_t chunk_rows_for(const Model& m, size_t asked) {
    const int64_t per_flow = std::max<int64_t>(1, m.scratch_elems());
    const auto fits = static_cast<size_t>(std::max<int64_t>(1, kChunkScratchElems / per_flow));
    return std::clamp<size_t>(asked, 1, fits);
}

// Scratch of one worker: a buffer per value plus the im2col matrix.
struct Workspace {
    std::vector<std::vector<float>> values;
    std::vector<float> cols, gemm_out;
};

void run_conv(const Op& op, const Shape& in_shape, const float* x, float* y, size_t n_rows,
              Workspace& ws) {
    // n_rows samples of [Cin, L] → im2col rows (sample, position) × (Cin·K).
    const int64_t cin = op.cin, len = in_shape.dims[1], k = op.kernel;
    const int64_t lout = (len + op.pad_begin + op.pad_end - k) / op.stride + 1;
    const int64_t kk = cin * k;
    const size_t m = n_rows * static_cast<size_t>(lout);
    ws.cols.resize(m * static_cast<size_t>(kk));
    ws.gemm_out.resize(m * static_cast<size_t>(op.cout));
    for (size_t s = 0; s < n_rows; ++s) {
        const float* xs = x + s * static_cast<size_t>(cin * len);
        for (int64_t p = 0; p < lout; ++p) {
            float* row = ws.cols.data() + (s * static_cast<size_t>(lout) + static_cast<size_t>(p)) * kk;
            const int64_t start = p * op.stride - op.pad_begin;
            if (start >= 0 && start + k <= len) {  // no padding in the window: plain copies
                for (int64_t c = 0; c < cin; ++c) {
                    const float* src = xs + c * len + start;
                    for (int64_t j = 0; j < k; ++j) row[c * k + j] = src[j];
                }
                continue;
            }
            for (int64_t c = 0; c < cin; ++c)
                for (int64_t j = 0; j < k; ++j) {
                    const int64_t at = start + j;
                    row[c * k + j] = at >= 0 && at < len ? xs[c * len + at] : 0.f;
                }
        }
    }
    // out[Cout, m] = W[Cout, kk] · cols[m, kk]^T: channel-major, so each
    // (sample, channel) is one contiguous run of Lout values below (the
    // [m, Cout] product needed a strided transpose, a sixth of classify).
    blas().sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(op.cout), static_cast<int>(m),
                static_cast<int>(kk), 1.f, op.weight.data(), static_cast<int>(kk), ws.cols.data(),
                static_cast<int>(kk), 0.f, ws.gemm_out.data(), static_cast<int>(m));
    // To [sample, Cout, Lout] with bias and ReLU.
    for (size_t s = 0; s < n_rows; ++s)
        for (int64_t c = 0; c < op.cout; ++c) {
            const float b = op.bias.empty() ? 0.f : op.bias[c];
            float* dst = y + (s * static_cast<size_t>(op.cout) + static_cast<size_t>(c)) * lout;
            const float* src = ws.gemm_out.data() + static_cast<size_t>(c) * m + s * static_cast<size_t>(lout);
            for (int64_t p = 0; p < lout; ++p) {
                const float v = src[p] + b;
                dst[p] = op.relu && v < 0.f ? 0.f : v;
            }
        }
}

void run_gemm(const Op& op, const float* x, float* y, size_t rows) {
    blas().sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(op.cout),
                static_cast<int>(op.cin), 1.f, x, static_cast<int>(op.cin), op.weight.data(),
                static_cast<int>(op.cin), 0.f, y, static_cast<int>(op.cout));
    if (op.bias.empty() && !op.relu) return;
    for (size_t r = 0; r < rows; ++r) {
        float* row = y + r * static_cast<size_t>(op.cout);
        for (int64_t c = 0; c < op.cout; ++c) {
            const float v = row[c] + (op.bias.empty() ? 0.f : op.bias[c]);
            row[c] = op.relu && v < 0.f ? 0.f : v;
        }
    }
}

// One chunk of `flows` flows through every op; result in ws.values[model.output].
void run_chunk(const Model& model, const HostBatch& batch, size_t first, size_t flows, Workspace& ws) {
    ws.values.resize(model.values.size());
    for (size_t v = 0; v < model.values.size(); ++v)
        ws.values[v].resize(flows * static_cast<size_t>(model.values[v].shape.per_flow_elems()));
    for (size_t f = 0; f < model.spec.size(); ++f) {
        const size_t rb = model.spec[f].row_bytes();
        transform_input(model.spec[f], batch.tensors[f].subspan(first * rb, flows * rb), flows,
                        ws.values[static_cast<size_t>(model.inputs[f])].data());
    }
    for (const Op& op : model.ops) {
        const Shape& is = model.values[static_cast<size_t>(op.in[0])].shape;
        const Shape& os = model.values[static_cast<size_t>(op.out)].shape;
        const float* x = ws.values[static_cast<size_t>(op.in[0])].data();
        float* y = ws.values[static_cast<size_t>(op.out)].data();
        const size_t in_n = flows * static_cast<size_t>(is.per_flow_elems());
        const size_t out_n = flows * static_cast<size_t>(os.per_flow_elems());
        const size_t samples = flows * static_cast<size_t>(is.per_flow);
        switch (op.kind) {
        case OpKind::Conv1d: run_conv(op, is, x, y, samples, ws); break;
        case OpKind::Gemm: run_gemm(op, x, y, in_n / static_cast<size_t>(op.cin)); break;
        case OpKind::Relu:
            for (size_t i = 0; i < in_n; ++i) y[i] = x[i] < 0.f ? 0.f : x[i];
            break;
        case OpKind::MaxPool1d: {
            const int64_t len = is.dims[1], lout = os.dims[1];
            for (size_t r = 0; r < samples * static_cast<size_t>(is.dims[0]); ++r)
                for (int64_t p = 0; p < lout; ++p) {
                    float m = -INFINITY;
                    for (int64_t j = 0; j < op.kernel; ++j) {
                        const int64_t at = p * op.stride - op.pad_begin + j;
                        if (at >= 0 && at < len) m = std::max(m, x[r * static_cast<size_t>(len) + at]);
                    }
                    y[r * static_cast<size_t>(lout) + p] = m;
                }
            break;
        }
        case OpKind::GlobalMaxPool: {
            const int64_t len = is.dims[1];
            for (size_t r = 0; r < samples * static_cast<size_t>(is.dims[0]); ++r)
                y[r] = *std::max_element(x + r * len, x + (r + 1) * len);
            break;
        }
        case OpKind::Add:
            if (op.in.size() == 1) {  // the loader gives a constant ≥ 1 value
                const size_t cn = op.constant.size();
                for (size_t i = 0; i < in_n; ++i) y[i] = x[i] + op.constant[i % cn];
            } else {
                const float* b = ws.values[static_cast<size_t>(op.in[1])].data();
                for (size_t i = 0; i < in_n; ++i) y[i] = x[i] + b[i];
            }
            break;
        case OpKind::Copy: std::memcpy(y, x, out_n * sizeof(float)); break;
        case OpKind::Concat: {
            // outer × (chunk of each input along the axis and everything after it)
            int64_t inner_out = 1;
            for (size_t d = static_cast<size_t>(op.axis - 1); d < os.dims.size(); ++d) inner_out *= os.dims[d];
            const size_t outer = out_n / static_cast<size_t>(inner_out);
            int64_t offset = 0;
            for (int v : op.in) {
                const Shape& s = model.values[static_cast<size_t>(v)].shape;
                int64_t inner = 1;
                for (size_t d = static_cast<size_t>(op.axis - 1); d < s.dims.size(); ++d) inner *= s.dims[d];
                const float* src = ws.values[static_cast<size_t>(v)].data();
                for (size_t o = 0; o < outer; ++o)
                    std::memcpy(y + o * inner_out + offset, src + o * inner, static_cast<size_t>(inner) * 4);
                offset += inner;
            }
            break;
        }
        case OpKind::Softmax: {
            const size_t c = static_cast<size_t>(os.dims.back());
            for (size_t r = 0; r < out_n / c; ++r) {
                const float* xr = x + r * c;
                float* yr = y + r * c;
                const float m = *std::max_element(xr, xr + c);
                double sum = 0;
                for (size_t j = 0; j < c; ++j) sum += yr[j] = std::exp(xr[j] - m);
                for (size_t j = 0; j < c; ++j) yr[j] = static_cast<float>(yr[j] / sum);
            }
            break;
        }
        }
    }
}

class CpuBackend final : public Backend {
  public:
    CpuBackend(std::shared_ptr<const Model> model, const BackendOptions& opts)
        : model_(std::move(model)),
          threads_(opts.threads ? opts.threads : std::max(1u, std::thread::hardware_concurrency())),
          chunk_(chunk_rows_for(*model_, opts.chunk_rows)),
          workspaces_(threads_) {
        blas().set_num_threads(1);  // parallelism comes from our chunks (loaded with 1 already)
        // OpenBLAS picks its kernels from the CPU model when it is loaded; an
        // unknown model (common in VMs) gets the SSE3 "Prescott" ones.
        const std::string core = blas().corename();
        if (core == "Prescott" && __builtin_cpu_supports("avx2"))
            ETC_INFO("OpenBLAS uses its Prescott (SSE3) kernels on this AVX2 CPU; "
                     "OPENBLAS_CORETYPE=Haswell (or SkylakeX with AVX-512) is faster");
    }

    Result<void> infer(const HostBatch& batch, std::span<float> probs) override {
        const Model& m = *model_;
        if (batch.tensors.size() != m.spec.size())
            return make_error(ErrorKind::Usage, 0, "", "infer",
                              "batch has " + std::to_string(batch.tensors.size()) + " tensors, model '" +
                                  m.spec_text + "' needs " + std::to_string(m.spec.size()));
        for (size_t f = 0; f < m.spec.size(); ++f)
            if (batch.tensors[f].size() != batch.rows * m.spec[f].row_bytes())
                return make_error(ErrorKind::Usage, 0, "", "infer",
                                  "tensor " + m.spec[f].name() + " holds " +
                                      std::to_string(batch.tensors[f].size()) + " bytes, " +
                                      std::to_string(batch.rows) + " rows need " +
                                      std::to_string(batch.rows * m.spec[f].row_bytes()));
        const size_t c = m.num_classes();
        if (probs.size() != batch.rows * c)
            return make_error(ErrorKind::Usage, 0, "", "infer", "output span has the wrong size");
        const size_t chunks = (batch.rows + chunk_ - 1) / chunk_;
        std::mutex failed_mu;
        std::optional<Error> failed;  // a worker's exception (out of memory), as an error
        auto work = [&](unsigned t) {
            try {
                for (size_t k = t; k < chunks; k += threads_) {
                    const size_t first = k * chunk_, n = std::min(chunk_, batch.rows - first);
                    run_chunk(m, batch, first, n, workspaces_[t]);
                    const auto& out = workspaces_[t].values[static_cast<size_t>(m.output)];
                    std::memcpy(probs.data() + first * c, out.data(), n * c * sizeof(float));
                }
            } catch (const std::exception& e) {
                const std::lock_guard lock(failed_mu);
                if (!failed) failed = make_error(ErrorKind::Data, 0, "", "infer", e.what());
            }
        };
        const unsigned used = static_cast<unsigned>(std::min<size_t>(threads_, chunks));
        if (used <= 1) {
            if (chunks) work(0);
        } else {
            std::vector<std::jthread> pool;
            for (unsigned t = 1; t < used; ++t) pool.emplace_back(work, t);
            work(0);
        }
        if (failed) return *failed;
        return check_finite(probs);
    }

    Result<void> infer(const DeviceBatch&, float*) override {
        return make_error(ErrorKind::Usage, 0, "", "infer", "the CPU backend takes host batches only");
    }
    const char* name() const override { return "cpu"; }
    const Model& model() const override { return *model_; }

  private:
    // Finite weights can still overflow on some input: such a row is an
    // error, never a "nan" probability handed on.
    Result<void> check_finite(std::span<const float> probs) const {
        const size_t c = model_->num_classes();
        for (size_t i = 0; i < probs.size(); ++i)
            if (!std::isfinite(probs[i]))
                return make_error(ErrorKind::Data, 0, "", "infer",
                                  "model output for row " + std::to_string(i / c) + " of the batch, class " +
                                      std::to_string(i % c) + " is " + (std::isnan(probs[i]) ? "NaN" : "infinite"),
                                  "the model overflows float32 on this input");
        return {};
    }

    std::shared_ptr<const Model> model_;
    unsigned threads_;
    size_t chunk_;
    std::vector<Workspace> workspaces_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_cpu_backend(std::shared_ptr<const Model> model,
                                                  const BackendOptions& opts) {
    if (!model) return make_error(ErrorKind::Usage, 0, "", "CPU backend", "no model");
    if (const Blas& b = blas(); !b.error.empty())
        return make_error(ErrorKind::Usage, 0, "libopenblas.so.0", "load OpenBLAS for the CPU backend", b.error,
                          "apt install libopenblas0-pthread (scripts/install-deps.sh)");
    return std::unique_ptr<Backend>(new CpuBackend(std::move(model), opts));
}

Result<std::unique_ptr<Backend>> Backend::load(const std::string& model_path,
                                               const BackendOptions& opts) {
    auto m = Model::load(model_path);
    if (!m) return m.error();
    return make(std::make_shared<const Model>(std::move(*m)), opts, model_path);
}

Result<std::unique_ptr<Backend>> Backend::make(std::shared_ptr<const Model> model, const BackendOptions& opts,
                                               const std::string& subject) {
    std::string why;
    const bool gpu = features::gpu_available(opts.device, &why);
    if (opts.device == Device::Gpu || (opts.device == Device::Auto && gpu)) {
        if (!gpu)
            return make_error(ErrorKind::Usage, 0, subject, "GPU inference", why,
                              "use --device cpu (or auto)");
        return make_gpu_backend(std::move(model), opts);
    }
    return make_cpu_backend(std::move(model), opts);
}

}  // namespace etcpipe::infer

namespace etcpipe::infer {

// One answer for both engines: a CUDA build with a device (features.cu), or why not.
bool gpu_available(std::string* why) { return features::gpu_available(why); }

}  // namespace etcpipe::infer
