#include "cli_features.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "cli_common.hpp"
#include "features.hpp"
#include "flowmgr.hpp"
#include "pcap.hpp"

namespace etcpipe::cli {
namespace {

Result<std::unique_ptr<features::Extractor>> make_extractor(const FeaturesCommand& c,
                                                             const std::vector<features::Feature>& spec) {
    std::string why;
    const bool gpu_ok = features::gpu_available(&why);
    if (c.device == "gpu" || (c.device == "auto" && gpu_ok)) {
        if (!gpu_ok)
            return Error{ErrorKind::Usage, 0, "--device gpu", "use the GPU", why,
                         "use --device cpu (or auto)"};
        return features::make_gpu_extractor(spec, features::GpuOptions{});
    }
    if (c.device == "auto") ETC_INFO("no GPU (%s): extracting on the CPU", why.c_str());
    features::CpuOptions co;
    co.threads = c.threads;
    return features::make_cpu_extractor(spec, co);
}

}  // namespace

void add_features_command(CLI::App& app, FeaturesCommand& c) {
    c.cmd = app.add_subcommand(
        "features", "per-flow tensors (.npy) and a flows index (CSV) from a capture, GPU or CPU");
    c.cmd->add_option("CAPTURE", c.capture, "pcap or pcapng file")->required();
    c.cmd->add_option("-o,--output", c.out_dir, "directory for the .npy files and flows.csv")
        ->required();
    c.cmd->add_option("--features", c.spec,
                      "payload:HxL (L4 payload bytes), packet:HxL (from the IP header, addresses "
                      "and ports zeroed), sizes:H (signed IP length), iat:H (µs); comma-separated")
        ->capture_default_str();
    c.cmd->add_option("--device", c.device, "gpu, cpu or auto (the GPU when there is one)")
        ->check(CLI::IsMember({"gpu", "cpu", "auto"}))
        ->capture_default_str();
    c.cmd->add_option("--threads", c.threads, "CPU threads (0: all)")->capture_default_str();
    c.cmd->add_option("--select", c.select,
                      "extractor: the first H payload packets of each flow, chosen by the "
                      "extractor; flowmgr: only the packets the FlowManager XDP program selects "
                      "(replayed through the kernel; its idle timeout applies)")
        ->check(CLI::IsMember({"extractor", "flowmgr"}))
        ->capture_default_str();
    c.cmd->add_option("--batch", c.batch, "packets per batch")->capture_default_str();
    c.cmd->add_flag("-q,--quiet", c.quiet, "no progress and no summary");
}

std::optional<int> run_features_command(const FeaturesCommand& c) {
    if (!c.cmd || !c.cmd->parsed()) return std::nullopt;
    auto spec = features::parse_spec(c.spec);
    if (!spec) return fail(spec.error());
    if (c.batch == 0) return fail(Error{ErrorKind::Usage, 0, "--batch", "parse option", "must be > 0", {}});
    auto reader = pcap::Reader::open(c.capture);
    if (!reader) return fail(reader.error());
    if (mkdir(c.out_dir.c_str(), 0755) && errno != EEXIST)
        return fail(make_error(ErrorKind::Io, errno, c.out_dir, "create output directory"));
    auto ex = make_extractor(c, *spec);
    if (!ex) return fail(ex.error());

    std::optional<FlowManager> fm;
    if (c.select == "flowmgr") {
        FlowMgrOptions fo;
        fo.max_pkts = features::max_packets(*spec);
        fo.flows = 1u << 20;
        fo.delivery = ETC_DELIVERY_INLINE;
        auto f = FlowManager::load(fo);
        if (!f) return fail(f.error());
        fm.emplace(std::move(f.value()));
    }

    const auto t0 = std::chrono::steady_clock::now();
    features::Batch batch;
    std::vector<uint8_t> scratch;
    pcap::Frame frame;
    uint64_t frames = 0, fed = 0, index = 0, last_ts = 1;
    const bool progress = !c.quiet && isatty(STDERR_FILENO);
    std::optional<Error> capture_error;
    auto flush = [&]() -> Result<void> {
        if (batch.size() == 0) return {};
        auto r = (*ex)->push(batch);
        batch.clear();
        batch.first_index = index;
        return r;
    };
    for (;;) {
        auto more = reader->next(frame);
        if (!more) {
            capture_error = more.error();
            break;
        }
        if (!*more) break;
        ++frames;
        auto eth = pcap::to_ethernet(frame, scratch);
        if (!eth || eth->size() < 14) continue;
        if (frame.ts_ns) last_ts = frame.ts_ns;
        if (fm) {
            auto r = fm->test_run(*eth, last_ts);
            if (!r) return fail(r.error());
            if (!r->meta || !(r->meta->flags & ETC_META_SELECTED)) continue;
        }
        batch.add(*eth, last_ts);
        ++index;
        ++fed;
        if (batch.size() >= c.batch) {
            if (auto r = flush(); !r) return fail(r.error());
            if (progress) std::fprintf(stderr, "\r%" PRIu64 " frames", frames);
        }
    }
    if (auto r = flush(); !r) return fail(r.error());
    if (progress) std::fputs("\r\033[K", stderr);
    auto out = (*ex)->finish();
    if (!out) return fail(out.error());
    for (size_t f = 0; f < out->spec.size(); ++f) {
        const std::string path = c.out_dir + "/" + out->spec[f].name() + ".npy";
        if (auto r = features::write_npy(path, out->spec[f], out->tensors[f], out->rows.size()); !r)
            return fail(r.error());
    }
    if (auto r = features::write_flows_csv(c.out_dir + "/flows.csv", *out); !r) return fail(r.error());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!c.quiet)
        std::fprintf(stderr,
                     "%s: %" PRIu64 " frames, %" PRIu64 " to the %s extractor, %zu flows in %.2f s "
                     "→ %s/{%s, flows.csv}\n",
                     c.capture.c_str(), frames, fed, (*ex)->name(), out->rows.size(), s,
                     c.out_dir.c_str(), [&] {
                         std::string names;
                         for (const auto& f : out->spec) names += (names.empty() ? "" : ", ") + f.name() + ".npy";
                         return names;
                     }().c_str());
    if (capture_error) return fail(*capture_error);
    return kOk;
}

}  // namespace etcpipe::cli
