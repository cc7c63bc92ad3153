// What `features`, `classify` and `replay` share when they read many
// captures in one process: the CAPTURE... and --jobs options, the capture
// list, and how failed captures are reported and turned into an exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_common.hpp"
#include "common/capture_inputs.hpp"
#include "common/progress.hpp"
#include "gpu/features.hpp"

namespace etcpipe::cli {

inline void add_capture_inputs(CLI::App* cmd, std::vector<std::string>& inputs, unsigned& jobs) {
    add_option(cmd, "CAPTURE", inputs,
               "pcap/pcapng files and directories (searched recursively; files in them are "
               "recognised by their magic, others skipped and counted)")
        ->required();
    add_option(cmd, "-j,--jobs", jobs,
               "captures processed at once (0: one per core); the output order is the input "
               "order whatever the number")
        ->check(at_most(max_threads()))
        ->capture_default_str();
}

// The captures `inputs` name; an error when a path is missing or none is found.
[[nodiscard]] inline Result<CaptureInputs> resolve_captures(const std::vector<std::string>& inputs,
                                                            bool quiet) {
    auto in = find_captures(inputs);
    if (!in) return in.error();
    if (!quiet && (in->skipped || in->unreadable))
        ETC_WARN("%zu files skipped (no pcap/pcapng magic)%s", in->skipped,
                 in->unreadable ? (", " + std::to_string(in->unreadable) + " unreadable").c_str() : "");
    if (in->captures.empty())
        return make_error(ErrorKind::Usage, 0, inputs.front(), "find captures",
                          "no pcap or pcapng file in " + std::to_string(inputs.size()) + " path(s)",
                          "name capture files or directories holding them");
    return in;
}

// Workers for n captures: --jobs (0: the cores), never more than n.
[[nodiscard]] inline unsigned jobs_for(unsigned jobs, size_t n) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    return static_cast<unsigned>(std::clamp<size_t>(jobs ? jobs : cores, 1, std::max<size_t>(n, 1)));
}

// Per-job threads inside one capture's work: --threads when given, else the
// cores shared out among the jobs.
[[nodiscard]] inline unsigned threads_per_job(unsigned threads, unsigned jobs) {
    if (threads) return threads;
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    return std::max(1u, cores / std::max(1u, jobs));
}

// What a many-captures command works on: the captures, the jobs (--jobs,
// 0: the cores, never more than the captures) and the threads per job.
struct CapturePlan {
    std::vector<std::string> captures;
    unsigned jobs = 1, threads = 1;
};

[[nodiscard]] inline Result<CapturePlan> plan_captures(const std::vector<std::string>& inputs, unsigned jobs,
                                                       unsigned threads, bool quiet) {
    auto in = resolve_captures(inputs, quiet);
    if (!in) return in.error();
    CapturePlan p;
    p.captures = std::move(in->captures);
    p.jobs = jobs_for(jobs, p.captures.size());
    p.threads = threads_per_job(threads, p.jobs);
    return p;
}

// The end of each capture's work, in input order: its failure (if any) is
// named at once, the progress bar moves on. The exit code is the first
// failure's (4: unreadable, 5: corrupt or unsupported), so a single capture
// exits as it always has.
class CaptureProgress {
  public:
    CaptureProgress(size_t captures, bool show_bar) : bar_(captures, "flows", show_bar && captures > 1) {}
    void finished(uint64_t flows, const std::optional<Error>& error) {
        if (error) {
            bar_.clear();
            ETC_ERR("%s", error->message().c_str());
            if (!first_) first_ = *error;
            ++failed_;
        }
        bar_.item_done(flows, error.has_value());
    }
    void clear() { bar_.clear(); }
    [[nodiscard]] size_t failed() const { return failed_; }
    [[nodiscard]] int exit_code_or(int ok) const { return first_ ? exit_code(*first_) : ok; }

  private:
    ProgressBar bar_;
    std::optional<Error> first_;
    size_t failed_ = 0;
};

// A worker's extractor for its next capture, made once and reused: on the
// GPU because device tables are costly to make (finish() resets them), on
// the CPU so that its threads start once.
class WorkerExtractor {
  public:
    [[nodiscard]] Result<features::Extractor*> next(bool on_gpu, const std::vector<features::Feature>& spec,
                                                    const features::GpuOptions& gpu_opts, unsigned cpu_threads) {
        if (on_gpu) {
            if (!gpu_) {
                auto made = features::make_gpu_extractor(spec, gpu_opts);
                if (!made) return made.error();
                gpu_ = std::move(*made);
            }
            return gpu_.get();
        }
        // One per worker, reused capture after capture: its threads start
        // once, not for every capture. A capture whose push failed left its
        // flows behind; finish() drops them (on an empty extractor it costs
        // two thread wake-ups).
        if (!cpu_ || cpu_threads_ != cpu_threads) {
            features::CpuOptions co;
            co.threads = cpu_threads;
            cpu_ = features::make_cpu_extractor(spec, co);
            cpu_threads_ = cpu_threads;
        } else if (auto left = cpu_->finish(); !left) {
            return left.error();
        }
        return cpu_.get();
    }

  private:
    std::unique_ptr<features::Extractor> gpu_, cpu_;
    unsigned cpu_threads_ = 0;
};

}  // namespace etcpipe::cli
