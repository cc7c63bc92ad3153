// make bench: inference throughput (flows/s) of the shipped model on real
// feature rows from the nDPI captures — CPU backend on 1 thread and on all
// threads, GPU backend when there is one, at batch sizes 1/64/1024 — next to
// python3-torch on the same model and rows (scripts/reference_infer.py
// bench), in one run; then end-to-end `etcpipe classify` over every capture.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gpu/features.hpp"
#include "gpu/infer.hpp"
#include "flowmgr/capture_features.hpp"
#include "common/pcap.hpp"


namespace fs = std::filesystem;
using namespace etcpipe;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kModel = "models/etc_app.onnx";
constexpr size_t kBatches[] = {1, 64, 1024};
constexpr double kSecondsPerPoint = 1.0;

std::vector<fs::path> captures() {
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("testdata/ndpi/pcap", ec))
        if (e.path().extension() == ".pcap" || e.path().extension() == ".pcapng" ||
            e.path().extension() == ".cap")
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

features::Output all_rows(const std::vector<features::Feature>& spec) {
    features::Output all;
    all.spec = spec;
    all.tensors.resize(spec.size());
    for (const auto& path : captures()) {
        auto o = extract_capture(path.string(), spec);
        if (!o) continue;
        for (size_t f = 0; f < spec.size(); ++f)
            all.tensors[f].insert(all.tensors[f].end(), o->tensors[f].begin(), o->tensors[f].end());
        all.rows.insert(all.rows.end(), o->rows.begin(), o->rows.end());
    }
    return all;
}

// flows/s of `be` at one batch size, cycling over the rows for ≥ kSecondsPerPoint.
double measure(infer::Backend& be, const features::Output& rows, size_t batch, std::string* err) {
    const size_t n_rows = rows.rows.size(), nc = be.model().num_classes();
    std::vector<float> probs(batch * nc);
    size_t done = 0, first = 0;
    const auto t0 = Clock::now();
    double s = 0;
    while (s < kSecondsPerPoint) {
        if (first + batch > n_rows) first = 0;
        infer::HostBatch hb;
        hb.rows = batch;
        for (size_t f = 0; f < rows.spec.size(); ++f) {
            const size_t rb = rows.spec[f].row_bytes();
            hb.tensors.emplace_back(rows.tensors[f].data() + first * rb, batch * rb);
        }
        if (auto r = be.infer(hb, probs); !r) {
            *err = r.error().message();
            return 0;
        }
        done += batch;
        first += batch;
        s = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    return static_cast<double>(done) / s;
}

std::string run_capture(const std::string& cmd, int* status) {
    std::FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    if (!p) return out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

}  // namespace

int main() {
    auto loaded = infer::Model::load(kModel);
    if (!loaded) {
        std::fprintf(stderr, "bench_infer: %s\n", loaded.error().message().c_str());
        return 1;
    }
    auto model = std::make_shared<const infer::Model>(std::move(*loaded));
    const auto t_extract = Clock::now();
    const features::Output rows = all_rows(model->spec);
    const double extract_s = std::chrono::duration<double>(Clock::now() - t_extract).count();
    if (rows.rows.size() < 1024) {
        std::fprintf(stderr, "bench_infer: only %zu flows in testdata/ndpi/pcap (make testdata)\n", rows.rows.size());
        return 1;
    }
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    std::printf("bench_infer: %s (%zu parameters, %zu classes, spec %s), %zu real flows from %zu captures, "
                "%u hardware threads, %.1f s per point, OpenBLAS kernels: %s\n\n",
                kModel, model->parameters, model->num_classes(), model->spec_text.c_str(), rows.rows.size(),
                captures().size(), hw, kSecondsPerPoint, infer::cpu_blas_kernels().c_str());

    struct Line {
        std::string engine;
        std::map<size_t, double> rate;
        std::string note;
    };
    std::vector<Line> lines;
    auto bench_backend = [&](const std::string& label, Result<std::unique_ptr<infer::Backend>> be) {
        Line l{label, {}, {}};
        if (!be) {
            l.note = be.error().message();
        } else {
            for (size_t b : kBatches) {
                std::string err;
                l.rate[b] = measure(**be, rows, b, &err);
                if (!err.empty()) l.note = err;
            }
        }
        lines.push_back(l);
    };
    infer::BackendOptions one;
    one.threads = 1;
    bench_backend("etcpipe CPU, 1 thread", infer::make_cpu_backend(model, one));
    infer::BackendOptions all;
    all.threads = hw;
    bench_backend("etcpipe CPU, " + std::to_string(hw) + " threads", infer::make_cpu_backend(model, all));
    std::string why;
    if (infer::gpu_available(&why))
        bench_backend("etcpipe GPU (CUDA graphs)", infer::make_gpu_backend(model, {}));
    else
        lines.push_back({"etcpipe GPU", {}, "skipped: " + why});

    // python3-torch on the same rows: reference_infer.py reads them as .npy.
    const fs::path dir = fs::temp_directory_path() / ("etcpipe-bench-infer-" + std::to_string(getpid()));
    fs::create_directories(dir);
    bool npy_ok = true;
    for (size_t f = 0; f < rows.spec.size(); ++f)
        npy_ok = npy_ok && features::write_npy((dir / (rows.spec[f].name() + ".npy")).string(), rows.spec[f],
                                               rows.tensors[f], rows.rows.size())
                               .ok();
    for (unsigned t : {1u, hw}) {
        Line l{"python3-torch, " + std::to_string(t) + " thread" + (t == 1 ? "" : "s"), {}, {}};
        int st = -1;
        const std::string out =
            npy_ok ? run_capture("/usr/bin/python3 scripts/reference_infer.py bench --threads " + std::to_string(t) +
                                     " --inputs " + dir.string() + " --seconds " + std::to_string(kSecondsPerPoint) +
                                     " 2>&1",
                                 &st)
                   : "";
        for (size_t b : kBatches) {
            const std::string key = "batch=" + std::to_string(b) + " flows_per_s=";
            const size_t at = out.find(key);
            if (at != std::string::npos) l.rate[b] = std::strtod(out.c_str() + at + key.size(), nullptr);
        }
        if (st != 0) l.note = "python3-torch failed: " + out.substr(0, 200);
        lines.push_back(l);
    }
    fs::remove_all(dir);

    std::printf("%-28s %14s %14s %14s   %s\n", "inference (flows/s)", "batch 1", "batch 64", "batch 1024",
                "vs torch same threads @1024");
    const auto torch_rate = [&](const std::string& threads_label, size_t b) {
        for (const auto& l : lines)
            if (l.engine == "python3-torch, " + threads_label && l.rate.count(b)) return l.rate.at(b);
        return 0.0;
    };
    for (const auto& l : lines) {
        std::printf("%-28s", l.engine.c_str());
        for (size_t b : kBatches) {
            if (l.rate.count(b) && l.rate.at(b) > 0)
                std::printf(" %14.0f", l.rate.at(b));
            else
                std::printf(" %14s", "-");
        }
        std::string ratio;
        const bool cpu1 = l.engine == "etcpipe CPU, 1 thread";
        const bool cpun = l.engine.rfind("etcpipe CPU, ", 0) == 0 && !cpu1;
        if ((cpu1 || cpun) && l.rate.count(1024)) {
            const double t = torch_rate(cpu1 ? "1 thread" : std::to_string(hw) + " threads", 1024);
            if (t > 0) {
                char buf[32];
                std::snprintf(buf, sizeof buf, "%.2fx", l.rate.at(1024) / t);
                ratio = buf;
            }
        }
        std::printf("   %s%s%s\n", ratio.c_str(), l.note.empty() ? "" : "  ", l.note.c_str());
    }

    // In process: read + extract every capture (above), then classify every
    // flow at batch 1024 on all CPU threads.
    double in_process_infer_s = 0;
    {
        infer::BackendOptions bo;
        bo.threads = hw;
        auto be = infer::make_cpu_backend(model, bo);
        std::vector<float> probs(rows.rows.size() * model->num_classes());
        const auto t1 = Clock::now();
        for (size_t first = 0; be && first < rows.rows.size(); first += 1024) {
            const size_t n = std::min<size_t>(1024, rows.rows.size() - first);
            infer::HostBatch hb;
            hb.rows = n;
            for (size_t f = 0; f < rows.spec.size(); ++f) {
                const size_t rb = rows.spec[f].row_bytes();
                hb.tensors.emplace_back(rows.tensors[f].data() + first * rb, n * rb);
            }
            if (!(*be)->infer(hb, std::span<float>(probs.data() + first * model->num_classes(),
                                                    n * model->num_classes())))
                break;
        }
        const double infer_s = std::chrono::duration<double>(Clock::now() - t1).count();
        in_process_infer_s = infer_s;
        std::printf("\nin process: read + CPU feature extraction of %zu captures %.2f s, CPU inference (%u threads, "
                    "batch 1024) %.3f s: %zu flows, %.0f flows/s end to end\n",
                    captures().size(), extract_s, hw, infer_s, rows.rows.size(),
                    static_cast<double>(rows.rows.size()) / (extract_s + infer_s));
    }

    // End to end: the CLI over every capture (process start, model load,
    // capture read, features, inference, JSON out): all captures in one
    // process, and the old form, one process per capture.
    const std::string bin = std::string(std::getenv("ETCPIPE_BUILD") ? std::getenv("ETCPIPE_BUILD") : "build") + "/etcpipe";
    struct EndToEnd {
        std::string what;
        size_t flows = 0;
        uint64_t packets = 0;
        double seconds = 0;
        std::string note;
    };
    std::vector<EndToEnd> e2e;
    const std::string jsonl = (fs::temp_directory_path() / ("etcpipe-bench-cls-" + std::to_string(getpid()))).string();
    {
        EndToEnd r{"etcpipe classify DIR (one process)", 0, 0, 0, {}};
        int st = -1;
        const auto t0 = Clock::now();
        (void)run_capture(bin + " classify testdata/ndpi/pcap --model " + kModel + " --device auto -q -o " + jsonl +
                              " 2>/dev/null",
                          &st);
        r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        int wc = -1;
        r.flows = std::strtoull(run_capture("wc -l < " + jsonl, &wc).c_str(), nullptr, 10);
        r.note = "exit " + std::to_string(st) + " (5: the one corrupt capture, named on stderr)";
        e2e.push_back(r);
        fs::remove(jsonl);
    }
    {
        EndToEnd r{"etcpipe classify, one process per capture", 0, 0, 0, {}};
        size_t ok = 0, failed = 0;
        const auto t0 = Clock::now();
        for (const auto& cap : captures()) {
            int st = -1;
            const std::string out = run_capture(bin + " classify '" + cap.string() + "' --model " + kModel +
                                                    " --device auto -q 2>/dev/null",
                                                &st);
            r.flows += static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
            (st == 0 ? ok : failed)++;
        }
        r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        r.note = std::to_string(ok) + " ok, " + std::to_string(failed) + " with an error exit";
        e2e.push_back(r);
    }
    // The peer: nDPI 4.2's ndpiReader (Debian libndpi-bin) over the same
    // captures as one playlist, DPI included; its own "Unique flows".
    {
        EndToEnd r{"ndpiReader -i PLAYLIST (nDPI 4.2)", 0, 0, 0, {}};
        const std::string list = (fs::temp_directory_path() / ("etcpipe-bench-list-" + std::to_string(getpid()))).string();
        {
            std::FILE* f = std::fopen(list.c_str(), "w");
            for (const auto& cap : captures()) std::fprintf(f, "%s\n", fs::absolute(cap).c_str());
            if (f) std::fclose(f);
        }
        if (std::system("command -v ndpiReader >/dev/null 2>&1") != 0) {
            r.note = "skipped: ndpiReader not installed (apt install libndpi-bin)";
        } else {
            int st = -1;
            const auto t0 = Clock::now();
            const std::string out = run_capture("ndpiReader -i " + list + " 2>&1", &st);
            r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
            auto field = [&](const std::string& key) -> uint64_t {
                const size_t at = out.find(key);
                return at == std::string::npos ? 0 : std::strtoull(out.c_str() + at + key.size(), nullptr, 10);
            };
            r.flows = field("Unique flows:");
            // "IP packets: 210998 of 221904 packets total"
            const size_t ip = out.find("IP packets:");
            const size_t of = ip == std::string::npos ? ip : out.find(" of ", ip);
            r.packets = of == std::string::npos ? 0 : std::strtoull(out.c_str() + of + 4, nullptr, 10);
            r.note = "its flows: every 5-tuple, payload or not";
        }
        fs::remove(list);
        e2e.push_back(r);
    }
    uint64_t frames_all = 0;
    for (const auto& cap : captures()) {
        auto rd = pcap::Reader::open(cap.string());
        if (!rd) continue;
        pcap::Frame f;
        for (;;) {
            auto more = rd->next(f);
            if (!more || !*more) break;
            ++frames_all;
        }
    }
    std::printf("\n%-44s %8s %9s %10s %12s   %s\n", "end to end over testdata/ndpi/pcap", "flows", "seconds",
                "flows/s", "packets/s", "note");
    const double in_fps = static_cast<double>(rows.rows.size()) / (extract_s + in_process_infer_s);
    std::printf("%-44s %8zu %9.3f %10.0f %12.0f   %s\n", "in process (library: extract + infer)", rows.rows.size(),
                extract_s + in_process_infer_s, in_fps,
                static_cast<double>(frames_all) / (extract_s + in_process_infer_s), "");
    for (const auto& r : e2e) {
        if (r.seconds <= 0) {
            std::printf("%-44s %s\n", r.what.c_str(), r.note.c_str());
            continue;
        }
        const uint64_t pk = r.packets ? r.packets : frames_all;
        std::printf("%-44s %8zu %9.3f %10.0f %12.0f   %s\n", r.what.c_str(), r.flows, r.seconds,
                    static_cast<double>(r.flows) / r.seconds, static_cast<double>(pk) / r.seconds, r.note.c_str());
    }
    const auto rate = [&](size_t k) { return e2e[k].seconds > 0 ? static_cast<double>(e2e[k].flows) / e2e[k].seconds : 0; };
    const auto prate = [&](size_t k) {
        return e2e[k].seconds > 0 ? static_cast<double>(e2e[k].packets ? e2e[k].packets : frames_all) / e2e[k].seconds : 0;
    };
    std::printf("\nratios: classify DIR vs in process %.2fx flows/s (goal >= 0.5); classify DIR vs one process "
                "per capture %.1fx; classify DIR vs ndpiReader playlist %.2fx flows/s, %.2fx packets/s (goal > 1)\n",
                in_fps > 0 ? rate(0) / in_fps : 0.0, rate(1) > 0 ? rate(0) / rate(1) : 0.0,
                rate(2) > 0 ? rate(0) / rate(2) : 0.0, prate(2) > 0 ? prate(0) / prate(2) : 0.0);
    return 0;
}
