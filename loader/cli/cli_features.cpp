#include "cli/cli_features.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "flowmgr/capture_features.hpp"
#include "cli/cli_common.hpp"
#include "gpu/features.hpp"
#include "flowmgr/flowmgr.hpp"
#include "common/pcap.hpp"

namespace etcpipe::cli {

void add_features_command(CLI::App& app, FeaturesCommand& c) {
    c.cmd = app.add_subcommand(
        "features", "per-flow tensors (.npy) and a flows index (CSV) from a capture, GPU or CPU");
    add_option(c.cmd, "CAPTURE", c.capture, "pcap or pcapng file")->required();
    add_option(c.cmd, "-o,--output", c.out_dir, "directory for the .npy files and flows.csv")
        ->required();
    add_option(c.cmd, "--features", c.spec,
                      "payload:HxL (L4 payload bytes), packet:HxL (from the IP header, addresses "
                      "and ports zeroed), sizes:H (signed IP length), iat:H (µs); comma-separated")
        ->capture_default_str();
    add_device_option(c.cmd, c.device, "gpu, cpu or auto (the GPU when there is one)");
    add_option(c.cmd, "--threads", c.threads, "CPU threads (0: all)")->check(at_most(max_threads()))->capture_default_str();
    add_option(c.cmd, "--select", c.select,
                      "extractor: the first H payload packets of each flow, chosen by the "
                      "extractor; flowmgr: only the packets the FlowManager XDP program selects "
                      "(replayed through the kernel; its idle timeout applies)")
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
    auto reader = pcap::Reader::open(c.capture);
    if (!reader) return fail(reader.error());
    if (mkdir(c.out_dir.c_str(), 0755) && errno != EEXIST)
        return fail(make_error(ErrorKind::Io, errno, c.out_dir, "create output directory"));
    auto ex = features::make_extractor(c.device, c.threads, *spec);
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
    const bool progress = !c.quiet && isatty(STDERR_FILENO);
    FeedOptions fo;
    fo.batch = c.batch;
    if (fm)
        fo.keep = [&](std::span<const uint8_t> eth, uint64_t ts) -> Result<bool> {
            auto r = fm->test_run(eth, ts);
            if (!r) return r.error();
            return r->meta && (r->meta->flags & ETC_META_SELECTED);
        };
    if (progress) fo.progress = [](uint64_t frames) { std::fprintf(stderr, "\r%" PRIu64 " frames", frames); };
    auto fed = feed_capture(*reader, **ex, fo);
    if (!fed) return fail(fed.error());
    if (progress) std::fputs("\r\033[K", stderr);
    const uint64_t frames = fed->frames, fed_n = fed->fed;
    const std::optional<Error>& capture_error = fed->capture_error;
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
                     c.capture.c_str(), frames, fed_n, (*ex)->name(), out->rows.size(), s,
                     c.out_dir.c_str(), [&] {
                         std::string names;
                         for (const auto& f : out->spec) names += (names.empty() ? "" : ", ") + f.name() + ".npy";
                         return names;
                     }().c_str());
    if (capture_error) return fail(*capture_error);
    return kOk;
}

}  // namespace etcpipe::cli
