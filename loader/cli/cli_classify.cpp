#include "cli/cli_classify.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "flowmgr/capture_features.hpp"
#include "cli/cli_common.hpp"
#include "cli/many_inputs.hpp"
#include "common/ordered_jobs.hpp"
#include "common/progress.hpp"
#include "gpu/features.hpp"
#include "gpu/infer.hpp"
#include "common/json_text.hpp"
#include "common/pcap.hpp"

namespace etcpipe::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string addr(const uint8_t* a, uint8_t family) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, sizeof buf)) return "?";
    return buf;
}


// What a flow fed the model, feature by feature: the packets counted in
// (the first min(selected, H) payload packets: the FlowManager's selection),
// and for the byte features how many bytes of each, from where; the rest of
// a tensor row is zeros.
std::string explain_json(const std::vector<features::Feature>& spec, const features::FlowRow& r) {
    std::string j = ",\"fed\":{\"payload_packets\":" + std::to_string(r.selected) +
                    ",\"packets_seen\":" + std::to_string(r.packets) + ",\"features\":[";
    for (size_t i = 0; i < spec.size(); ++i) {
        const features::Feature& f = spec[i];
        const uint32_t used = std::min<uint32_t>(r.selected, f.h);
        j += (i ? "," : "") + std::string("{\"name\":") + json::string(f.name()) +
             ",\"packets\":" + std::to_string(used) + ",\"of\":" + std::to_string(f.h);
        switch (f.kind) {
            case features::Kind::Payload:
                j += ",\"bytes\":\"the first " + std::to_string(f.l) + " of the L4 payload\"";
                break;
            case features::Kind::Packet:
                j += ",\"bytes\":\"the first " + std::to_string(f.l) +
                     " from the IP header, addresses and ports zeroed\"";
                break;
            case features::Kind::Sizes: j += ",\"value\":\"IP length, negative toward the initiator\""; break;
            case features::Kind::Iat: j += ",\"value\":\"µs since the previous selected packet\""; break;
            case features::Kind::Port:
                j += ",\"value\":\"IP protocol x 65536 + the lower of the two ports\"";
                break;
        }
        j += "}";
    }
    return j + "]}";
}

// One JSON object per flow: the capture, the flow as the extractor saw it
// (initiator first) and the model's answer. Below min_prob the class is
// "unknown" and model_class keeps the model's guess.
void print_flow(std::string& line, const std::string& capture_json, size_t index, const features::FlowRow& r,
                const infer::Model& model, const float* probs, double min_prob, bool explain) {
    const std::vector<std::string>& classes = model.classes;
    const etc_flow_key& k = r.key;
    const bool a = r.initiator_is_a != 0;
    size_t best = 0;
    for (size_t c = 1; c < classes.size(); ++c)
        if (probs[c] > probs[best]) best = c;
    char head[512];
    std::snprintf(head, sizeof head,
                  ",\"flow\":%zu,\"proto\":%u,\"src\":\"%s\",\"sport\":%u,\"dst\":\"%s\",\"dport\":%u,"
                  "\"vlan\":[%u,%u],\"packets\":%u,\"selected\":%u,\"class\":",
                  index, unsigned{k.proto}, addr(a ? k.addr_a : k.addr_b, k.family).c_str(),
                  unsigned{a ? k.port_a : k.port_b}, addr(a ? k.addr_b : k.addr_a, k.family).c_str(),
                  unsigned{a ? k.port_b : k.port_a}, unsigned{k.vlan[0]}, unsigned{k.vlan[1]}, r.packets,
                  r.selected);
    const bool unsure = probs[best] < min_prob;
    line = "{\"capture\":" + capture_json + head + (unsure ? std::string("\"unknown\"") : json::string(classes[best]));
    if (unsure) line += ",\"model_class\":" + json::string(classes[best]);
    line += ",\"probability\":" + json::probability(probs[best]) + ",\"probabilities\":{";
    for (size_t c = 0; c < classes.size(); ++c)
        line += (c ? "," : "") + json::string(classes[c]) + ":" + json::probability(probs[c]);
    line += "}";
    if (explain) line += explain_json(model.spec, r);
    line += "}\n";
}

// Every flow's features and the model's probabilities for it, with the time
// spent extracting (since the run began) and inferring.
struct Scored {
    std::vector<features::FlowRow> rows;
    std::vector<float> probs;  // rows × classes
    double extract_s = 0, infer_s = 0;
};

// Features → probabilities, `batch` flows at a time, from the extractor's
// device tensors.
Result<Scored> score_on_gpu(features::Extractor& ex, infer::Backend& backend, size_t batch,
                            Clock::time_point t0) {
    const infer::Model& model = backend.model();
    const size_t nc = model.num_classes();
    auto d = ex.finish_device();
    if (!d) return d.error();
    Scored s;
    s.extract_s = seconds_since(t0);
    const auto t1 = Clock::now();
    s.rows = std::move(d->rows);
    s.probs.resize(s.rows.size() * nc);
    for (size_t first = 0; first < s.rows.size(); first += batch) {
        const size_t n = std::min(batch, s.rows.size() - first);
        infer::DeviceBatch db;
        db.rows = n;
        db.stream = d->stream;
        for (size_t f = 0; f < model.spec.size(); ++f)
            db.tensors.push_back(static_cast<const uint8_t*>(d->tensors[f]) + first * model.spec[f].row_bytes());
        if (auto r = backend.infer_to_host(db, std::span<float>(s.probs.data() + first * nc, n * nc)); !r)
            return r.error();
    }
    s.infer_s = seconds_since(t1);
    return s;
}

// The same from the extractor's host tensors.
Result<Scored> score_on_cpu(features::Extractor& ex, infer::Backend& backend, size_t batch,
                            Clock::time_point t0) {
    const infer::Model& model = backend.model();
    const size_t nc = model.num_classes();
    auto out = ex.finish();
    if (!out) return out.error();
    Scored s;
    s.extract_s = seconds_since(t0);
    const auto t1 = Clock::now();
    s.rows = std::move(out->rows);
    s.probs.resize(s.rows.size() * nc);
    for (size_t first = 0; first < s.rows.size(); first += batch) {
        const size_t n = std::min(batch, s.rows.size() - first);
        infer::HostBatch hb;
        hb.rows = n;
        for (size_t f = 0; f < model.spec.size(); ++f) {
            const size_t rb = model.spec[f].row_bytes();
            hb.tensors.emplace_back(out->tensors[f].data() + first * rb, n * rb);
        }
        if (auto r = backend.infer(hb, std::span<float>(s.probs.data() + first * nc, n * nc)); !r)
            return r.error();
    }
    s.infer_s = seconds_since(t1);
    return s;
}

// One capture's flows, scored (or why it failed: `error`, with the flows
// read before a corrupt record kept).
struct CaptureScored {
    uint64_t frames = 0;
    Scored scored;
    std::optional<Error> error;
};

// What each worker keeps from capture to capture: its backend (CPU: its
// own, single-threaded; GPU: none, the shared one is used under a lock) and,
// on the GPU, its extractor (device tables are costly to make).
struct ClassifyWorker {
    std::unique_ptr<infer::Backend> backend;
    WorkerExtractor extractor;
    features::Batch batch;  // feed_capture's buffers, kept from capture to capture
};

}  // namespace

void add_classify_command(CLI::App& app, ClassifyCommand& c) {
    c.cmd = app.add_subcommand(
        "classify",
        "classify every flow of one or many captures with an ONNX model (features as `etcpipe "
        "features`, then inference on the CPU or GPU); one JSON line per flow, with its capture.\n"
        "Many captures run in one process, --jobs at a time, the model loaded once; the output "
        "is in input order whatever --jobs. A capture that fails is named on stderr and the "
        "others go on.\n"
        "Exit codes: 0 ok, 2 usage (e.g. --device gpu without a GPU), 4 model or a capture "
        "unreadable, 5 malformed model or a corrupt/unsupported capture (the first failure's "
        "code; flows read before the damage are printed)");
    add_capture_inputs(c.cmd, c.inputs, c.jobs);
    add_option(c.cmd, "-m,--model", c.model,
                      "ONNX model with etcpipe metadata (e.g. models/etc_app.onnx); its feature "
                      "spec decides what is extracted")
        ->required();
    add_option(c.cmd, "-o,--output", c.output, "JSON Lines file ('-' = stdout)")->capture_default_str();
    add_device_option(c.cmd, c.device,
                      "gpu, cpu or auto (the GPU when there is one) — for extraction and inference");
    add_option(c.cmd, "--batch", c.batch, "flows per inference batch")->capture_default_str();
    add_option(c.cmd, "--threads", c.threads,
               "CPU threads per capture for extraction and inference (0: the cores shared among the jobs)")
        ->check(at_most(max_threads()))
        ->capture_default_str();
    add_option(c.cmd, "--packet-batch", c.packet_batch, "packets per extractor batch")
        ->capture_default_str();
    c.cmd->add_flag("-q,--quiet", c.quiet, "no progress bar and no summary on stderr");
    add_option(c.cmd, "--min-prob", c.min_prob,
               "label a flow \"unknown\" when the model's top probability is below P (its guess stays "
               "in model_class); 0 keeps every guess")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    c.cmd->add_flag("--explain", c.explain,
                    "add to each flow what it fed the model: packets per feature, which bytes");
}

std::optional<int> run_classify_command(const ClassifyCommand& c) {
    if (!c.cmd || !c.cmd->parsed()) return std::nullopt;
    if (c.batch == 0 || c.packet_batch == 0)
        return fail(Error{ErrorKind::Usage, 0, "--batch", "parse option", "must be > 0", {}});
    const auto t0 = Clock::now();

    // The model is read and checked once; every worker's backend shares it.
    auto model_loaded = infer::Model::load(c.model);
    if (!model_loaded) return fail(model_loaded.error());
    const auto model_ptr = std::make_shared<const infer::Model>(std::move(*model_loaded));
    const infer::Model& model = *model_ptr;
    auto plan = plan_captures(c.inputs, c.jobs, c.threads, c.quiet);
    if (!plan) return fail(plan.error());
    const std::vector<std::string>& captures = plan->captures;
    const unsigned jobs = plan->jobs, threads = plan->threads;

    infer::BackendOptions bo;
    bo.device = c.device;
    bo.threads = threads;
    auto shared_backend = infer::Backend::make(model_ptr, bo, c.model);
    if (!shared_backend) return fail(shared_backend.error());
    const bool on_gpu = std::string((*shared_backend)->name()) == "gpu";
    if (!on_gpu && c.device == Device::Auto) {
        std::string why;
        (void)infer::gpu_available(&why);
        ETC_INFO("no GPU (%s): classifying on the CPU", why.c_str());
    }
    std::mutex gpu_mu;  // the GPU backend serves one capture at a time
    std::vector<ClassifyWorker> workers(jobs);
    if (!on_gpu) {
        workers[0].backend = std::move(*shared_backend);
        for (unsigned w = 1; w < jobs; ++w) {
            auto b = infer::Backend::make(model_ptr, bo, c.model);
            if (!b) return fail(b.error());
            workers[w].backend = std::move(*b);
        }
    }

    const std::function<CaptureScored(size_t, unsigned)> work = [&](size_t i, unsigned w) {
        CaptureScored out;
        ClassifyWorker& me = workers[w];
        auto reader = pcap::Reader::open(captures[i]);
        if (!reader) return out.error = reader.error(), out;
        features::GpuOptions go;
        go.device_output = true;  // the features stay on the GPU for the engine
        auto made = me.extractor.next(on_gpu, model.spec, go, threads);
        if (!made) return out.error = made.error(), out;
        features::Extractor* ex = *made;
        FeedOptions fo;
        fo.batch = c.packet_batch;
        fo.buffers = &me.batch;
        const auto t_capture = Clock::now();
        auto fed = feed_capture(*reader, *ex, fo);
        if (!fed) return out.error = fed.error(), out;
        out.frames = fed->frames;
        Result<Scored> scored = Error{};
        if (on_gpu) {
            std::lock_guard lock(gpu_mu);
            scored = score_on_gpu(*ex, **shared_backend, c.batch, t_capture);
        } else {
            scored = score_on_cpu(*ex, *me.backend, c.batch, t_capture);
        }
        if (!scored) return out.error = scored.error(), out;
        out.scored = std::move(*scored);
        if (fed->capture_error) out.error = *fed->capture_error;
        return out;
    };

    std::FILE* fp = c.output == "-" ? stdout : std::fopen(c.output.c_str(), "w");
    if (!fp) return fail(make_error(ErrorKind::Io, errno, c.output, "open for writing"));
    const std::string out_name = c.output == "-" ? "stdout" : c.output;
    std::map<std::string, size_t> per_class;
    uint64_t frames = 0;
    size_t flows = 0;
    double extract_s = 0, infer_s = 0;
    CaptureProgress progress(captures.size(), !c.quiet);
    std::optional<Error> write_error;
    const size_t nc = model.num_classes();
    std::string line;
    const std::function<bool(size_t, CaptureScored&&)> commit = [&](size_t i, CaptureScored&& r) {
        const std::string capture_json = json::string(captures[i]);
        const Scored& s = r.scored;
        for (size_t f = 0; f < s.rows.size(); ++f) {
            const float* p = s.probs.data() + f * nc;
            print_flow(line, capture_json, f, s.rows[f], model, p, c.min_prob, c.explain);
            if (std::fwrite(line.data(), 1, line.size(), fp) != line.size()) {
                write_error = make_error(ErrorKind::Io, errno ? errno : EIO, out_name, "write");
                return false;
            }
            const float* top = std::max_element(p, p + nc);
            per_class[*top < c.min_prob ? std::string("unknown") : model.classes[static_cast<size_t>(top - p)]]++;
        }
        frames += r.frames;
        flows += s.rows.size();
        extract_s += s.extract_s;
        infer_s += s.infer_s;
        progress.finished(s.rows.size(), r.error);
        return true;
    };
    run_ordered<CaptureScored>(captures.size(), jobs, work, commit);
    progress.clear();
    if (auto r = finish_output(fp, out_name); !r && !write_error) write_error = r.error();
    if (write_error) return fail(*write_error);

    if (!c.quiet) {
        const double wall = seconds_since(t0);
        const std::string what = captures.size() == 1 ? captures[0]
                                                      : std::to_string(captures.size()) + " captures";
        std::fprintf(stderr,
                     "%s: %" PRIu64 " frames, %zu flows classified on the %s (jobs %u; extractor %.3f s, "
                     "inference %.3f s, wall %.3f s = %.0f flows/s)",
                     what.c_str(), frames, flows, on_gpu ? "gpu" : "cpu", jobs, extract_s, infer_s, wall,
                     wall > 0 ? static_cast<double>(flows) / wall : 0.0);
        std::string counts;
        for (const auto& [name, n] : per_class) counts += (counts.empty() ? "" : ", ") + name + " " + std::to_string(n);
        std::fprintf(stderr, "%s%s\n", counts.empty() ? "" : ": ", counts.c_str());
        if (progress.failed())
            std::fprintf(stderr, "%zu of %zu captures failed (named above)\n", progress.failed(), captures.size());
    }
    return progress.exit_code_or(kOk);
}

}  // namespace etcpipe::cli
