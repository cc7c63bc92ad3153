// make bench: what the FlowManager costs per packet next to a trivial XDP_PASS
// program, both run by the kernel with BPF_PROG_TEST_RUN (repeat) on the same
// real frames in the same run; and replay throughput (capture → program →
// per-flow records) next to a bare test-run loop over the same frames.
#include <bpf/libbpf.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "common/kernel_config.hpp"
#include "flowmgr/flowmgr.hpp"
#include "common/log.hpp"
#include "common/pcap.hpp"
#include "flowmgr/replay.hpp"
#include "common/skeleton.hpp"
#include "pkttag/pkttag.hpp"
#include "xdp_pass.skel.h"

namespace fs = std::filesystem;
using namespace etcpipe;

namespace {

struct Frame {
    uint64_t ts_ns;
    std::vector<uint8_t> bytes;
};

// Kernel-timed run of one frame through any XDP program: total ns of all
// `repeat` runs, 0 on failure.
// `live`: without the replayer's timestamp header, as a sensor runs it (the
// table's clock, metadata only on selected packets).
uint64_t run_ns(int prog_fd, const Frame& f, uint32_t repeat, TestRunBuffers& bufs, bool live = false) {
    auto r = flowmgr_test_run(prog_fd, f.bytes, live ? 0 : f.ts_ns, repeat, bufs);
    return r ? uint64_t{r->duration_ns} * repeat : 0;
}

// A FlowManager object file (another build of bpf/flowmgr.bpf.c) loaded
// with its compiled-in defaults, unpinned, with the table clock the loader
// sets; -1 on failure.
int load_object(const char* path) {
    bpf_object* o = bpf_object__open_file(path, nullptr);
    if (!o) return -1;
    bpf_map* m;
    bpf_object__for_each_map(m, o) bpf_map__set_pin_path(m, nullptr);
    bpf_program* p;
    bpf_object__for_each_program(p, o)
        bpf_program__set_autoload(p, std::strcmp(bpf_program__name(p), "xdp_flowmgr") == 0);
    // Objects from before ns_per_tick have a smaller .rodata: left alone.
    size_t sz = 0;
    bpf_map* ro = bpf_object__find_map_by_name(o, ".rodata");
    auto* init = ro ? const_cast<void*>(bpf_map__initial_value(ro, &sz)) : nullptr;
    if (init && sz >= sizeof(etc_flowmgr_config))
        static_cast<etc_flowmgr_config*>(init)->ns_per_tick = kernel_ns_per_tick();
    if (bpf_object__load(o)) return -1;
    bpf_program* prog = bpf_object__find_program_by_name(o, "xdp_flowmgr");
    return prog ? bpf_program__fd(prog) : -1;
}

// --ab OBJ...: the objects (and xdp_pass) interleaved in rounds over the
// same frames, each round's per-packet time of each as a ratio to xdp_pass
// in that round; the median and range over the rounds. For one change at a
// time: build the object before and after it, run them side by side.
int run_ab(const std::vector<Frame>& frames, const std::vector<const char*>& objects, int pass_fd, int rounds,
           bool live) {
    const uint32_t repeat = 500;
    std::vector<int> fds{pass_fd};
    for (const char* o : objects) {
        const int fd = load_object(o);
        if (fd < 0) {
            std::fprintf(stderr, "bench_flowmgr: %s: cannot load\n", o);
            return 3;
        }
        fds.push_back(fd);
    }
    std::vector<std::vector<double>> ns(fds.size());
    TestRunBuffers bufs;
    for (int r = 0; r < rounds; ++r)
        for (size_t v = 0; v < fds.size(); ++v) {
            uint64_t sum = 0;
            for (const auto& f : frames) sum += run_ns(fds[v], f, repeat, bufs, live);
            ns[v].push_back(static_cast<double>(sum) / static_cast<double>(repeat * frames.size()));
        }
    std::printf("\n%zu frames, %d rounds, repeat %u, %s; xdp_pass median %.1f ns\n", frames.size(), rounds, repeat,
                live ? "live (no replay header)" : "replay header in",
                [&] { auto t = ns[0]; std::sort(t.begin(), t.end()); return t[t.size() / 2]; }());
    std::printf("%-40s %12s %18s\n", "object", "median ns", "ratio to xdp_pass (range)");
    for (size_t v = 1; v < fds.size(); ++v) {
        std::vector<double> ratio, t = ns[v];
        for (int r = 0; r < rounds; ++r) ratio.push_back(ns[v][r] / ns[0][r]);
        std::sort(ratio.begin(), ratio.end());
        std::sort(t.begin(), t.end());
        std::printf("%-40s %12.1f %8.2fx (%.2f-%.2f)\n", objects[v - 1], t[t.size() / 2],
                    ratio[ratio.size() / 2], ratio.front(), ratio.back());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    log::install_library_bridges();
    // bench_flowmgr [DIR] [--replay-only | [--rounds N] [--live] --ab OBJ.o ...]
    fs::path dir = "testdata/ndpi/pcap";
    std::vector<const char*> ab_objects;
    int ab_rounds = 12;
    bool ab_live = false, replay_only = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            ab_rounds = std::max(1, std::atoi(argv[++i]));
        } else if (std::strcmp(argv[i], "--live") == 0) {
            ab_live = true;
        } else if (std::strcmp(argv[i], "--replay-only") == 0) {
            replay_only = true;
        } else if (std::strcmp(argv[i], "--ab") == 0) {
            for (++i; i < argc; ++i) ab_objects.push_back(argv[i]);
        } else if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
            std::printf("usage: bench_flowmgr [CAPTURE_DIR] [--replay-only]\n"
                        "       bench_flowmgr [CAPTURE_DIR] [--rounds N] [--live] --ab FLOWMGR.o ...\n"
                        "  the per-packet cost of the FlowManager by stage next to xdp_pass, the\n"
                        "  tagger, and replay against a bare test-run loop; --replay-only: only the\n"
                        "  replay; with --ab, other builds of bpf/flowmgr.bpf.o (default options)\n"
                        "  interleaved side by side instead, N rounds (default 12) over 96 frames\n"
                        "  spread over the captures, with the replayer's timestamp header or, with\n"
                        "  --live, without it (a sensor's path)\n");
            return 0;
        } else {
            dir = argv[i];
        }
    }
    // Each BPF_PROG_TEST_RUN with repeat > 1 installs the program in the
    // kernel's XDP dispatcher and removes it again (an RCU grace period each
    // way), so the per-packet figure comes from a sample of frames, each run
    // many times, rather than every frame run a few times.
    const size_t per_capture = 4;  // frames sampled from each capture
    const uint32_t repeat = 2000;
    if (!fs::is_directory(dir)) {
        std::fprintf(stderr, "bench_flowmgr: %s missing (run make testdata)\n", dir.c_str());
        return 4;
    }
    std::vector<fs::path> captures;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && e.path().extension() != ".txt") captures.push_back(e.path());
    std::sort(captures.begin(), captures.end());

    std::vector<Frame> frames;      // the sample for the per-packet cost
    std::vector<Frame> everything;  // every frame, for the throughput baseline
    std::vector<uint8_t> scratch;
    for (const auto& c : captures) {
        auto r = pcap::Reader::open(c.string());
        if (!r) continue;
        pcap::Frame f;
        std::vector<Frame> all;
        for (;;) {
            auto more = r->next(f);
            if (!more || !*more) break;
            auto eth = pcap::to_ethernet(f, scratch);
            if (!eth || eth->size() < 14) continue;
            all.push_back({f.ts_ns ? f.ts_ns : 1, {eth->begin(), eth->end()}});
        }
        // Evenly spaced frames, so the sample spans each capture.
        for (size_t i = 0; i < per_capture && i < all.size(); ++i)
            frames.push_back(all[i * all.size() / std::min(per_capture, all.size())]);
        std::move(all.begin(), all.end(), std::back_inserter(everything));
    }
    uint64_t total_bytes = 0;
    for (const auto& f : frames) total_bytes += f.bytes.size();
    std::printf("etcpipe bench: %zu real frames (%zu evenly spaced from each of %zu nDPI captures), "
                "mean %.0f bytes\n",
                frames.size(), per_capture, captures.size(),
                static_cast<double>(total_bytes) / static_cast<double>(frames.size()));

    auto pass = Skeleton<xdp_pass_bpf>::open("xdp_pass.bpf.o");
    if (!pass || !pass->load("xdp_pass.bpf.o")) {
        std::fprintf(stderr, "bench_flowmgr: cannot load xdp_pass\n");
        return 3;
    }
    const int pass_fd = bpf_program__fd(pass->get()->progs.xdp_pass);
    if (!ab_objects.empty()) {
        // 96 of the sample, spread over the captures: 12 rounds end in about a minute
        std::vector<Frame> some;
        const size_t n = std::min<size_t>(96, frames.size());
        for (size_t i = 0; i < n; ++i) some.push_back(frames[i * frames.size() / n]);
        return run_ab(some, ab_objects, pass_fd, ab_rounds, ab_live);
    }
    // Replay throughput, measured first, before the variants below are loaded
    // (with their 1M-entry tables loaded it read 0.55x, alone 0.71x; the CLI
    // has one program): `etcpipe replay`'s per-capture path (read, convert,
    // run, metadata, per-flow records) over every capture with the program
    // loaded once and reset between captures, as the CLI does, next to the
    // bare syscall loop (the same frames already in memory, xdp_pass, repeat 1).
    TestRunBuffers bufs;
    FlowMgrOptions ro;  // the CLI replay's defaults
    ro.delivery = ETC_DELIVERY_INLINE;
    ro.ring_wakeup = false;
    const auto t_load = std::chrono::steady_clock::now();
    auto replayer = FlowManager::load(ro);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
    if (!replayer) {
        std::fprintf(stderr, "bench_flowmgr: %s\n", replayer.error().message().c_str());
        return 3;
    }
    uint64_t replay_frames = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& c : captures) {
        auto r = replay_capture(*replayer, c.string(), 0, false, {});
        if (r) replay_frames += r->ran;
    }
    const double replay_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto t1 = std::chrono::steady_clock::now();
    for (const auto& f : everything) (void)run_ns(pass_fd, f, 1, bufs);
    const double bare_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    const double replay_pps = static_cast<double>(replay_frames) / replay_s;
    const double bare_pps = static_cast<double>(everything.size()) / bare_s;
    // The FlowManager with the default options, and the same program stopped
    // after each stage (rodata: the stops are compiled out of the real one),
    // and with a per-CPU LRU list: what each part and each idea costs.
    struct Variant {
        const char* name;
        FlowMgrOptions opts;
        std::optional<FlowManager> fm;
        uint64_t ns = 0;
    };
    std::vector<Variant> variants;
    auto add = [&](const char* name, uint8_t stage, bool percpu) {
        Variant v{name, {}, {}, 0};
        v.opts.flows = 1 << 20;
        v.opts.bench_stage = stage;
        v.opts.percpu_lru = percpu;
        variants.push_back(std::move(v));
    };
    if (!replay_only) {
        add("xdp_flowmgr: parse only", ETC_BENCH_PARSE, false);
        add("xdp_flowmgr: parse + flow lookup", ETC_BENCH_LOOKUP, false);
        add("xdp_flowmgr: ... + find/create + count", ETC_BENCH_COUNT, false);
        add("xdp_flowmgr: ... + metadata", ETC_BENCH_META, false);
        add("xdp_flowmgr (default options)", ETC_BENCH_FULL, false);
        add("xdp_flowmgr, per-CPU LRU (NO_COMMON_LRU)", ETC_BENCH_FULL, true);
    }
    for (auto& v : variants) {
        auto fm = FlowManager::load(v.opts);
        if (!fm) {
            std::fprintf(stderr, "bench_flowmgr: %s: %s\n", v.name, fm.error().message().c_str());
            return 3;
        }
        v.fm.emplace(std::move(*fm));
    }
    // The per-packet tagger (stateless, no maps) on the same frames.
    struct Tagger {
        const char* name;
        pkttag::Program prog;
        uint64_t ns = 0;
    };
    std::vector<Tagger> taggers;
    if (!replay_only) {
        for (auto [name, v] : {std::pair{"xdp_pkttag (class into the DSCP)", pkttag::Variant::Dscp},
                               std::pair{"xdp_pkttag_meta (class into metadata)", pkttag::Variant::Meta}}) {
            auto p = pkttag::Program::load(v);
            if (!p) {
                std::fprintf(stderr, "bench_flowmgr: %s: %s\n", name, p.error().message().c_str());
                return 3;
            }
            taggers.push_back({name, std::move(*p), 0});
        }
    }

    // Per-packet cost. Switching the program that BPF_PROG_TEST_RUN runs
    // re-patches the kernel's XDP dispatcher (an RCU grace period), so the
    // programs alternate in passes over all frames, not frame by frame;
    // several passes each even out cache and CPU-frequency drift.
    uint64_t pass_ns = 0, runs = 0;
    const int passes = replay_only ? 0 : 2;
    for (int p = 0; p < passes; ++p) {
        for (auto& v : variants)
            for (const auto& f : frames) v.ns += run_ns(v.fm->prog_fd(), f, repeat, bufs);
        for (auto& t : taggers)
            for (const auto& f : frames) t.ns += run_ns(t.prog.prog_fd(), f, repeat, bufs);
        for (const auto& f : frames) pass_ns += run_ns(pass_fd, f, repeat, bufs);
        runs += uint64_t{repeat} * frames.size();
    }
    const double pass_pp = static_cast<double>(pass_ns) / static_cast<double>(runs);


    if (!replay_only)
        std::printf("\n%-44s %14s %14s %8s\n", "per packet (kernel, BPF_PROG_TEST_RUN)", "etcpipe", "xdp_pass",
                    "ratio");
    for (const auto& v : variants) {
        const double pp = static_cast<double>(v.ns) / static_cast<double>(runs);
        std::printf("%-44s %11.1f ns %11.1f ns %7.2fx\n", v.name, pp, pass_pp, pp / pass_pp);
    }
    for (const auto& t : taggers) {
        const double pp = static_cast<double>(t.ns) / static_cast<double>(runs);
        std::printf("%-44s %11.1f ns %11.1f ns %7.2fx\n", t.name, pp, pass_pp, pp / pass_pp);
    }
    std::printf("\n%-44s %14s %14s %8s\n", "measure", "etcpipe", "baseline", "ratio");
    std::printf("%-44s %10.0f p/s %10.0f p/s %7.2fx\n",
                "replay: etcpipe replay vs bare test-run loop", replay_pps, bare_pps,
                replay_pps / bare_pps);
    std::printf("\n(%" PRIu64 " kernel runs per program, repeat %u, %d passes; replay %" PRIu64
                " frames from %zu captures in %.2f s, the program loaded once in %.2f s)\n",
                runs, repeat, passes, replay_frames, captures.size(), replay_s, load_s);
    return 0;
}
