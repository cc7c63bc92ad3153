// A one-line progress bar on stderr for runs over many captures: items done
// of total, flows, rate and ETA. Drawn only when stderr is a terminal (and
// the caller did not ask for quiet), at most 10 times a second.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace etcpipe {

class ProgressBar {
  public:
    // `unit` names what is counted after the items ("flows", "frames").
    ProgressBar(size_t total, std::string unit, bool enabled);
    ~ProgressBar();
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // One more item finished with `count` units; `failed`: it failed.
    void item_done(uint64_t count, bool failed);
    // Clears the line (before a summary or a message of one's own).
    void clear();
    [[nodiscard]] bool enabled() const { return enabled_; }

  private:
    void draw(bool force);

    size_t total_, done_ = 0, failed_ = 0;
    uint64_t count_ = 0;
    std::string unit_;
    bool enabled_, drawn_ = false;
    std::chrono::steady_clock::time_point start_, last_draw_{};
};

}  // namespace etcpipe
