#include "cli/cli_features.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>

#include "flowmgr/capture_features.hpp"
#include "cli/cli_common.hpp"
#include "cli/many_inputs.hpp"
#include "common/ordered_jobs.hpp"
#include "common/progress.hpp"
#include "gpu/features.hpp"
#include "flowmgr/flowmgr.hpp"
#include "common/pcap.hpp"

namespace etcpipe::cli {

namespace {

// One capture's flows (or why it failed: `error`, with the flows read
// before a corrupt record kept).
struct CaptureFeatures {
    uint64_t frames = 0, fed = 0;
    std::optional<features::Output> out;
    std::optional<Error> error;
};

// What each worker keeps from capture to capture: the FlowManager it replays
// through (--select flowmgr; loaded once, reset between captures) and, on
// the GPU, its extractor.
struct FeaturesWorker {
    std::optional<FlowManager> fm;
    WorkerExtractor extractor;
    features::Batch batch;  // feed_capture's buffers, kept from capture to capture
};

std::string npy_names(const std::vector<features::Feature>& spec) {
    std::string names;
    for (const auto& f : spec) names += (names.empty() ? "" : ", ") + f.name() + ".npy";
    return names;
}

}  // namespace

void add_features_command(CLI::App& app, FeaturesCommand& c) {
    c.cmd = app.add_subcommand(
        "features",
        "per-flow tensors (.npy) and a flows index (flows.csv, with the capture of each flow) "
        "from one or many captures, GPU or CPU: one dataset, rows in input order whatever "
        "--jobs. A capture that fails is named on stderr and the others go on.\n"
        "Exit codes: 0 ok, 2 usage, 4 a capture or the output unreadable/unwritable, 5 a "
        "corrupt or unsupported capture (the first failure's code)");
    add_capture_inputs(c.cmd, c.inputs, c.jobs);
    add_option(c.cmd, "-o,--output", c.out_dir, "directory for the .npy files and flows.csv")
        ->required();
    add_option(c.cmd, "--features", c.spec,
                      "payload:HxL (L4 payload bytes), packet:HxL (from the IP header, addresses "
                      "and ports zeroed), sizes:H (signed IP length), iat:H (µs), port:H (IP protocol x 65536 "
                      "+ the lower port); comma-separated")
        ->capture_default_str();
    add_device_option(c.cmd, c.device, "gpu, cpu or auto (the GPU when there is one)");
    add_option(c.cmd, "--threads", c.threads, "CPU threads per capture (0: the cores shared among the jobs)")
        ->check(at_most(max_threads()))
        ->capture_default_str();
    add_option(c.cmd, "--select", c.select,
                      "extractor: the first H payload packets of each flow, chosen by the "
                      "extractor; flowmgr: only the packets the FlowManager XDP program selects "
                      "(replayed through the kernel, loaded once per job; its idle timeout applies)")
        ->check(CLI::IsMember({"extractor", "flowmgr"}))
        ->capture_default_str();
    add_option(c.cmd, "--batch", c.batch, "packets per batch")->capture_default_str();
    c.cmd->add_flag("-q,--quiet", c.quiet, "no progress and no summary");
}

std::optional<int> run_features_command(const FeaturesCommand& c) {
    if (!c.cmd || !c.cmd->parsed()) return std::nullopt;
    auto spec = features::parse_spec(c.spec);
    if (!spec) return fail(spec.error());
    if (c.batch == 0) return fail(Error{ErrorKind::Usage, 0, "--batch", "parse option", "must be > 0", {}});
    auto plan = plan_captures(c.inputs, c.jobs, c.threads, c.quiet);
    if (!plan) return fail(plan.error());
    const std::vector<std::string>& captures = plan->captures;
    const unsigned jobs = plan->jobs, threads = plan->threads;

    // The device is decided once (an error now, before any output).
    std::string why;
    const bool gpu_ok = features::gpu_available(c.device, &why);
    const bool on_gpu = c.device == Device::Gpu || (c.device == Device::Auto && gpu_ok);
    if (on_gpu && !gpu_ok)
        return fail(Error{ErrorKind::Usage, 0, "--device gpu", "use the GPU", why, "use --device cpu (or auto)"});
    if (!on_gpu && c.device == Device::Auto) ETC_INFO("no GPU (%s): extracting on the CPU", why.c_str());

    std::vector<FeaturesWorker> workers(jobs);
    if (c.select == "flowmgr")
        for (auto& w : workers) {
            FlowMgrOptions fo;
            fo.max_pkts = features::max_packets(*spec);
            fo.flows = 1u << 20;
            fo.delivery = ETC_DELIVERY_INLINE;
            fo.ring_wakeup = false;  // nobody reads the ring: no wakeups
            auto f = FlowManager::load(fo);
            if (!f) return fail(f.error());
            w.fm.emplace(std::move(f.value()));
        }
    auto dataset = features::DatasetWriter::create(c.out_dir, *spec);
    if (!dataset) return fail(dataset.error());

    const auto t0 = std::chrono::steady_clock::now();
    const bool single = captures.size() == 1;
    const bool frame_progress = single && !c.quiet && isatty(STDERR_FILENO);
    const std::function<CaptureFeatures(size_t, unsigned)> work = [&](size_t i, unsigned w) {
        CaptureFeatures r;
        FeaturesWorker& me = workers[w];
        auto reader = pcap::Reader::open(captures[i]);
        if (!reader) return r.error = reader.error(), r;
        auto made = me.extractor.next(on_gpu, *spec, features::GpuOptions{}, threads);
        if (!made) return r.error = made.error(), r;
        features::Extractor* ex = *made;
        FeedOptions fo;
        fo.batch = c.batch;
        fo.buffers = &me.batch;
        if (me.fm) {
            if (auto z = me.fm->reset(); !z) return r.error = z.error(), r;
            FlowManager& fm = *me.fm;
            fo.keep = [&fm](std::span<const uint8_t> eth, uint64_t ts) -> Result<bool> {
                auto t = fm.test_run(eth, ts);
                if (!t) return t.error();
                return t->meta && (t->meta->flags & ETC_META_SELECTED);
            };
        }
        if (frame_progress)
            fo.progress = [](uint64_t frames) { std::fprintf(stderr, "\r%" PRIu64 " frames", frames); };
        auto fed = feed_capture(*reader, *ex, fo);
        if (frame_progress) std::fputs("\r\033[K", stderr);
        if (!fed) return r.error = fed.error(), r;
        r.frames = fed->frames;
        r.fed = fed->fed;
        auto out = ex->finish();
        if (!out) return r.error = out.error(), r;
        r.out = std::move(*out);
        if (fed->capture_error) r.error = *fed->capture_error;
        return r;
    };

    uint64_t frames = 0, fed_n = 0;
    CaptureProgress progress(captures.size(), !c.quiet);
    std::optional<Error> write_error;
    const std::function<bool(size_t, CaptureFeatures&&)> commit = [&](size_t i, CaptureFeatures&& r) {
        if (r.out) {
            if (auto a = dataset->append(*r.out, captures[i]); !a) {
                write_error = a.error();
                return false;
            }
        }
        frames += r.frames;
        fed_n += r.fed;
        progress.finished(r.out ? r.out->rows.size() : 0, r.error);
        return true;
    };
    run_ordered<CaptureFeatures>(captures.size(), jobs, work, commit);
    progress.clear();
    const size_t rows = dataset->rows();
    if (auto r = dataset->close(); !r && !write_error) write_error = r.error();
    if (write_error) return fail(*write_error);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!c.quiet) {
        const std::string what = single ? captures[0] : std::to_string(captures.size()) + " captures";
        std::fprintf(stderr,
                     "%s: %" PRIu64 " frames, %" PRIu64 " to the %s extractor, %zu flows in %.2f s "
                     "(jobs %u) → %s/{%s, flows.csv}\n",
                     what.c_str(), frames, fed_n, on_gpu ? "gpu" : "cpu", rows, s, jobs, c.out_dir.c_str(),
                     npy_names(*spec).c_str());
        if (progress.failed())
            std::fprintf(stderr, "%zu of %zu captures failed (named above)\n", progress.failed(), captures.size());
    }
    return progress.exit_code_or(kOk);
}

}  // namespace etcpipe::cli
