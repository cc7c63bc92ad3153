#include "common/progress.hpp"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <utility>

namespace etcpipe {

ProgressBar::ProgressBar(size_t total, std::string unit, bool enabled)
    : total_(total), unit_(std::move(unit)), enabled_(enabled && isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::item_done(uint64_t count, bool failed) {
    ++done_;
    count_ += count;
    if (failed) ++failed_;
    draw(done_ == total_);
}

void ProgressBar::clear() {
    if (drawn_) std::fputs("\r\033[K", stderr);
    drawn_ = false;
}

void ProgressBar::draw(bool force) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    constexpr int kWidth = 24;
    const int filled = total_ ? static_cast<int>(kWidth * done_ / total_) : kWidth;
    char bar[kWidth + 1];
    for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
    bar[kWidth] = '\0';
    char eta[32] = "";
    if (done_ > 0 && done_ < total_ && s > 0) {
        const auto left = static_cast<long>(s / static_cast<double>(done_) * static_cast<double>(total_ - done_));
        std::snprintf(eta, sizeof eta, "  ETA %ld:%02ld", left / 60, left % 60);
    }
    char failed[32] = "";
    if (failed_) std::snprintf(failed, sizeof failed, ", %zu failed", failed_);
    std::fprintf(stderr, "\r\033[K[%s] %zu/%zu captures%s  %" PRIu64 " %s  %.0f %s/s%s", bar, done_, total_,
                 failed, count_, unit_.c_str(), s > 0 ? static_cast<double>(count_) / s : 0.0,
                 unit_.c_str(), eta);
    std::fflush(stderr);
    drawn_ = true;
}

}  // namespace etcpipe
