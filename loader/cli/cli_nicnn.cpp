#include "cli/cli_nicnn.hpp"

#include <linux/bpf.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cli/cli_common.hpp"
#include "common/capabilities.hpp"
#include "etcpipe/nicnn_model.h"
#include "common/signals.hpp"
#include "nicnn/latency_bench.hpp"
#include "nicnn/nicnn.hpp"

namespace etcpipe::cli {

void add_nicnn_commands(CLI::App& app, NicnnCommands& c) {
    c.nicnn = app.add_subcommand("nicnn", "the in-NIC digit CNN (bpf/nicnn.bpf.c)");
    c.nicnn->require_subcommand(1);
    c.classify = c.nicnn->add_subcommand(
        "classify",
        "run the XDP program on 8x8 images (BPF_PROG_TEST_RUN): accuracy, confusion, and the "
        "check against the C++ reference");
    add_option(c.classify, "IMAGES", c.images,
               "images as .npy: shape (N, 64) or (N, 8, 8), integers or floats 0..16");
    add_option(c.classify, "--labels", c.labels, "labels as .npy, shape (N,), 0..9");
    c.classify->add_flag("--digits", c.digits,
                         "the 1,797 real 8x8 digits of Debian's python3-sklearn instead of IMAGES");
    add_option(c.classify, "--digits-file", c.digits_path,
               "digits.csv.gz to read with --digits (default: python3-sklearn's)");
    add_option(c.classify, "--split", c.split,
               "with --digits: test (images 1347.., never trained on), train, or all")
        ->check(CLI::IsMember({"test", "train", "all"}))
        ->capture_default_str();
    add_option(c.classify, "-o,--output", c.output,
               "write one JSON line per image (class, scores, probabilities) here ('-': stdout)");
    c.classify->add_flag("--reply", c.reply,
                         "send each request with the reply flag (XDP_TX expected) instead of pass");

    c.bench = c.nicnn->add_subcommand(
        "bench",
        "round-trip latency of real digit images, XDP_TX reply vs a user-space server running the "
        "C++ reference, on a veth pair between two network namespaces it creates and removes");
    add_option(c.bench, "--images", c.bench_images,
               "round trips per target, one digit image each (round robin over the split)")
        ->check(at_most(kMaxBenchWindows))
        ->capture_default_str();
    add_option(c.bench, "--split", c.bench_split,
               "python3-sklearn's digits: test (images 1347.., never trained on) or all")
        ->check(CLI::IsMember({"test", "all"}))
        ->capture_default_str();
}

namespace {

int run_classify(const NicnnCommands& c) {
    if (c.digits == !c.images.empty()) {
        std::fprintf(stderr, "error: nicnn classify: give IMAGES.npy or --digits (one of them)\n");
        return kUsage;
    }
    if (!c.labels.empty() && c.digits) {
        std::fprintf(stderr, "error: nicnn classify: --labels goes with IMAGES, --digits has its own\n");
        return kUsage;
    }
    if (auto cap = require_capabilities("nicnn classify", {Cap::Bpf, Cap::NetAdmin}); !cap) return fail(cap.error());

    std::vector<nicnn::Image> images;
    size_t first = 0;
    std::string source;
    if (c.digits) {
        const std::string path = c.digits_path.empty() ? nicnn::default_digits_path() : c.digits_path;
        auto d = nicnn::load_digits(path);
        if (!d) return fail(d.error());
        images = std::move(*d);
        size_t end = images.size();
        if (c.split == "test") first = nicnn::kTrainImages;
        if (c.split == "train") end = nicnn::kTrainImages;
        images = {images.begin() + static_cast<long>(first), images.begin() + static_cast<long>(end)};
        source = path + " (" + c.split + " split)";
    } else {
        auto d = nicnn::load_npy_images(c.images, c.labels);
        if (!d) return fail(d.error());
        images = std::move(*d);
        source = c.images;
    }
    if (images.empty()) {
        std::fprintf(stderr, "error: nicnn classify: %s holds no images\n", source.c_str());
        return kData;
    }

    auto prog = nicnn::Program::load();
    if (!prog) return fail(prog.error());

    std::FILE* out = nullptr;
    if (c.output == "-") {
        out = stdout;
    } else if (!c.output.empty()) {
        out = std::fopen(c.output.c_str(), "w");
        if (!out) return fail(make_error(ErrorKind::Io, errno, c.output, "create"));
    }

    uint64_t ns = 0, labelled = 0, correct = 0, mismatches = 0, bad_csum = 0, bad_action = 0;
    uint64_t confusion[NICNN_CLASSES][NICNN_CLASSES] = {};
    const int want_action = c.reply ? XDP_TX : XDP_PASS;
    for (size_t i = 0; i < images.size(); ++i) {
        const auto& im = images[i];
        auto v = prog->classify(im.px, c.reply);
        if (!v) {
            if (out && out != stdout) std::fclose(out);
            return fail(v.error());
        }
        ns += v->duration_ns;
        const auto want = nicnn::reference(im.px);
        if (std::memcmp(&want, &v->result, sizeof(want)) != 0) {
            if (mismatches++ < 5)
                std::fprintf(stderr, "warning: image %zu: XDP says class %u, the C++ reference %u\n",
                             first + i, v->result.cls, want.cls);
        }
        bad_csum += !v->checksums_ok;
        bad_action += v->action != want_action;
        if (im.label >= 0) {
            ++labelled;
            correct += static_cast<int>(v->result.cls) == im.label;
            ++confusion[im.label][v->result.cls];
        }
        if (out) {
            std::fprintf(out, "{\"image\":%zu,", first + i);
            if (im.label >= 0) std::fprintf(out, "\"label\":%d,", im.label);
            std::fprintf(out, "\"class\":%u,\"scores\":[", v->result.cls);
            for (int k = 0; k < NICNN_CLASSES; ++k) std::fprintf(out, "%s%d", k ? "," : "", v->result.score[k]);
            // the base-2 softmax: 2^-shift (the NIC writes the exponent)
            std::fprintf(out, "],\"prob\":[");
            for (int k = 0; k < NICNN_CLASSES; ++k)
                std::fprintf(out, "%s%.6f", k ? "," : "", 1.0 / static_cast<double>(1u << v->result.shift[k]));
            std::fprintf(out, "]}\n");
        }
    }
    if (out && out != stdout && std::fclose(out) != 0)
        return fail(make_error(ErrorKind::Io, errno, c.output, "write"));

    std::FILE* rep = out == stdout ? stderr : stdout;
    std::fprintf(rep, "nicnn: %zu images from %s through %s (BPF_PROG_TEST_RUN, %s)\n", images.size(),
                 source.c_str(), NICNN_PROG_NAME, c.reply ? "reply" : "pass");
    std::fprintf(rep, "  equal to the C++ reference: %" PRIu64 " of %zu\n", images.size() - mismatches,
                 images.size());
    std::fprintf(rep, "  valid checksums: %" PRIu64 " of %zu; verdict %s: %" PRIu64 " of %zu\n",
                 images.size() - bad_csum, images.size(), c.reply ? "XDP_TX" : "XDP_PASS",
                 images.size() - bad_action, images.size());
    std::fprintf(rep, "  kernel time per image: %.1f ns\n", static_cast<double>(ns) / static_cast<double>(images.size()));
    if (labelled) {
        std::fprintf(rep, "  accuracy: %.4f (%" PRIu64 " of %" PRIu64 ")\n",
                     static_cast<double>(correct) / static_cast<double>(labelled), correct, labelled);
        std::fprintf(rep, "  confusion (rows: true class, columns: predicted)\n       ");
        for (int k = 0; k < NICNN_CLASSES; ++k) std::fprintf(rep, "%5d", k);
        std::fprintf(rep, "\n");
        for (int t = 0; t < NICNN_CLASSES; ++t) {
            std::fprintf(rep, "  %5d", t);
            for (int k = 0; k < NICNN_CLASSES; ++k) std::fprintf(rep, "%5" PRIu64, confusion[t][k]);
            std::fprintf(rep, "\n");
        }
    }
    return mismatches || bad_csum || bad_action ? kBpf : kOk;
}

int run_bench(const NicnnCommands& c) {
    // Network namespaces (CAP_SYS_ADMIN) and two XDP programs.
    if (auto cp = require_capabilities("nicnn bench", {Cap::SysAdmin, Cap::NetAdmin}); !cp)
        return fail(cp.error());
    if (c.bench_images == 0) {
        std::fprintf(stderr, "error: nicnn bench: --images must be at least 1\n");
        return kUsage;
    }
    install_stop_handlers();
    nicnn::BenchOptions bo;
    bo.round_trips = static_cast<size_t>(c.bench_images);
    bo.split = c.bench_split;
    bo.stop = &stop_flag();
    auto r = nicnn::latency_bench(bo);
    if (!r) return fail(r.error());
    std::fputs(nicnn::format_bench(*r).c_str(), stdout);
    if (r->xdp.wrong || r->user.wrong) {
        std::fprintf(stderr, "error: nicnn bench: wrong results during the timed phase\n");
        return kBpf;
    }
    return r->aborted ? kGeneral : kOk;
}

}  // namespace

std::optional<int> run_nicnn_commands(const NicnnCommands& c) {
    if (c.classify && c.classify->parsed()) return run_classify(c);
    if (c.bench && c.bench->parsed()) return run_bench(c);
    return std::nullopt;
}

}  // namespace etcpipe::cli
