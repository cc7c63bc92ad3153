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
#include <span>
#include <vector>

#include "flowmgr/capture_features.hpp"
#include "cli/cli_common.hpp"
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


// One JSON object per flow: the flow as the extractor saw it (initiator
// first) and the model's answer.
void print_flow(std::FILE* out, size_t index, const features::FlowRow& r,
                const std::vector<std::string>& classes, const float* probs) {
    const etc_flow_key& k = r.key;
    const bool a = r.initiator_is_a != 0;
    size_t best = 0;
    for (size_t c = 1; c < classes.size(); ++c)
        if (probs[c] > probs[best]) best = c;
    std::fprintf(out,
                 "{\"flow\":%zu,\"proto\":%u,\"src\":\"%s\",\"sport\":%u,\"dst\":\"%s\",\"dport\":%u,"
                 "\"vlan\":[%u,%u],\"packets\":%u,\"selected\":%u,\"class\":%s,\"probability\":%s,"
                 "\"probabilities\":{",
                 index, unsigned{k.proto}, addr(a ? k.addr_a : k.addr_b, k.family).c_str(),
                 unsigned{a ? k.port_a : k.port_b}, addr(a ? k.addr_b : k.addr_a, k.family).c_str(),
                 unsigned{a ? k.port_b : k.port_a}, unsigned{k.vlan[0]}, unsigned{k.vlan[1]}, r.packets,
                 r.selected, json::string(classes[best]).c_str(), json::probability(probs[best]).c_str());
    for (size_t c = 0; c < classes.size(); ++c)
        std::fprintf(out, "%s%s:%s", c ? "," : "", json::string(classes[c]).c_str(), json::probability(probs[c]).c_str());
    std::fputs("}}\n", out);
}

// The classify run's extractor: on the GPU its features stay there for the
// engine (no round trip through the host).
Result<std::unique_ptr<features::Extractor>> make_classify_extractor(const ClassifyCommand& c,
                                                                    const infer::Model& model,
                                                                    bool on_gpu) {
    if (on_gpu) {
        features::GpuOptions go;
        go.device_output = true;
        return features::make_gpu_extractor(model.spec, go);
    }
    if (c.device == Device::Auto) {
        std::string why;
        (void)infer::gpu_available(&why);
        ETC_INFO("no GPU (%s): classifying on the CPU", why.c_str());
    }
    features::CpuOptions co;
    co.threads = c.threads;
    return std::unique_ptr<features::Extractor>(features::make_cpu_extractor(model.spec, co));
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

// One JSON line per flow to `output` ('-': stdout); the flows per class.
Result<std::map<std::string, size_t>> write_flows(const std::string& output, const Scored& s,
                                                  const std::vector<std::string>& classes) {
    const size_t nc = classes.size();
    std::FILE* fp = output == "-" ? stdout : std::fopen(output.c_str(), "w");
    if (!fp) return make_error(ErrorKind::Io, errno, output, "open for writing");
    std::map<std::string, size_t> per_class;
    for (size_t i = 0; i < s.rows.size(); ++i) {
        const float* p = s.probs.data() + i * nc;
        print_flow(fp, i, s.rows[i], classes, p);
        per_class[classes[static_cast<size_t>(std::max_element(p, p + nc) - p)]]++;
    }
    if (auto r = finish_output(fp, output == "-" ? "stdout" : output); !r) return r.error();
    return per_class;
}

void print_summary(const ClassifyCommand& c, uint64_t frames, const Scored& s,
                   const char* backend, const char* extractor,
                   const std::map<std::string, size_t>& per_class) {
    const size_t rows = s.rows.size();
    std::fprintf(stderr,
                 "%s: %" PRIu64 " frames, %zu flows classified on the %s (%s extractor %.3f s, "
                 "inference %.3f s = %.0f flows/s)",
                 c.capture.c_str(), frames, rows, backend, extractor, s.extract_s, s.infer_s,
                 s.infer_s > 0 ? static_cast<double>(rows) / s.infer_s : 0.0);
    std::string counts;
    for (const auto& [name, n] : per_class) counts += (counts.empty() ? "" : ", ") + name + " " + std::to_string(n);
    std::fprintf(stderr, "%s%s\n", counts.empty() ? "" : ": ", counts.c_str());
}

}  // namespace

void add_classify_command(CLI::App& app, ClassifyCommand& c) {
    c.cmd = app.add_subcommand(
        "classify",
        "classify every flow of a capture with an ONNX model (features as `etcpipe features`, "
        "then inference on the CPU or GPU); one JSON line per flow.\n"
        "Exit codes: 0 ok, 2 usage (e.g. --device gpu without a GPU), 4 model or capture "
        "unreadable, 5 malformed model or corrupt capture (flows read before it are printed)");
    add_option(c.cmd, "CAPTURE", c.capture, "pcap or pcapng file")->required();
    add_option(c.cmd, "-m,--model", c.model,
                      "ONNX model with etcpipe metadata (e.g. models/etc_app.onnx); its feature "
                      "spec decides what is extracted")
        ->required();
    add_option(c.cmd, "-o,--output", c.output, "JSON Lines file ('-' = stdout)")->capture_default_str();
    add_device_option(c.cmd, c.device,
                      "gpu, cpu or auto (the GPU when there is one) — for extraction and inference");
    add_option(c.cmd, "--batch", c.batch, "flows per inference batch")->capture_default_str();
    add_option(c.cmd, "--threads", c.threads, "CPU threads for extraction and inference (0: all)")
        ->check(at_most(max_threads()))
        ->capture_default_str();
    add_option(c.cmd, "--packet-batch", c.packet_batch, "packets per extractor batch")
        ->capture_default_str();
    c.cmd->add_flag("-q,--quiet", c.quiet, "no summary on stderr");
}

std::optional<int> run_classify_command(const ClassifyCommand& c) {
    if (!c.cmd || !c.cmd->parsed()) return std::nullopt;
    if (c.batch == 0 || c.packet_batch == 0)
        return fail(Error{ErrorKind::Usage, 0, "--batch", "parse option", "must be > 0", {}});
    const auto t0 = Clock::now();

    infer::BackendOptions bo;
    bo.device = c.device;
    bo.threads = c.threads;
    auto backend = infer::Backend::load(c.model, bo);
    if (!backend) return fail(backend.error());
    const infer::Model& model = (*backend)->model();
    const bool on_gpu = std::string((*backend)->name()) == "gpu";

    auto reader = pcap::Reader::open(c.capture);
    if (!reader) return fail(reader.error());
    auto ex = make_classify_extractor(c, model, on_gpu);
    if (!ex) return fail(ex.error());

    // Capture → extractor, batch by batch.
    FeedOptions fo;
    fo.batch = c.packet_batch;
    auto fed = feed_capture(*reader, **ex, fo);
    if (!fed) return fail(fed.error());
    auto scored = on_gpu ? score_on_gpu(**ex, **backend, c.batch, t0)
                         : score_on_cpu(**ex, **backend, c.batch, t0);
    if (!scored) return fail(scored.error());
    auto per_class = write_flows(c.output, *scored, model.classes);
    if (!per_class) return fail(per_class.error());
    if (!c.quiet) print_summary(c, fed->frames, *scored, (*backend)->name(), (**ex).name(), *per_class);
    // The flows read before a corrupt record were printed; now the error.
    if (fed->capture_error) return fail(*fed->capture_error);
    return kOk;
}

}  // namespace etcpipe::cli
