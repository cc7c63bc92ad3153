// Work items on N threads, results handed on in item order: what lets
// `features`, `classify` and `replay` read many captures at once yet write
// one deterministic output whatever --jobs is.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace etcpipe {

// Calls work(i, worker) for every i in [0, n) on `jobs` threads (worker in
// [0, jobs) names the calling thread, for per-thread state), and
// commit(i, result) for every i in increasing order, one call at a time.
// A worker does not start item i before i < committed + window, so at most
// `window` results wait in memory however many items there are. commit()
// returning false stops the run: no new item starts, the ones running
// finish and are dropped.
template <class R>
void run_ordered(size_t n, unsigned jobs, const std::function<R(size_t, unsigned)>& work,
                 const std::function<bool(size_t, R&&)>& commit, size_t window = 0) {
    jobs = std::max(1u, static_cast<unsigned>(std::min<size_t>(jobs, std::max<size_t>(n, 1))));
    if (window == 0) window = 2 * size_t{jobs};
    std::mutex mu;
    std::condition_variable cv;
    size_t next_start = 0, next_commit = 0;
    bool committing = false, stopped = false;
    std::map<size_t, R> ready;

    auto worker = [&](unsigned w) {
        std::unique_lock lock(mu);
        for (;;) {
            cv.wait(lock, [&] { return stopped || next_start >= n || next_start < next_commit + window; });
            if (stopped || next_start >= n) return;
            const size_t i = next_start++;
            lock.unlock();
            R r = work(i, w);
            lock.lock();
            ready.emplace(i, std::move(r));
            // One thread commits at a time, outside the lock (commit does I/O).
            while (!committing && !stopped && !ready.empty() && ready.begin()->first == next_commit) {
                auto node = ready.extract(ready.begin());
                committing = true;
                lock.unlock();
                const bool go_on = commit(node.key(), std::move(node.mapped()));
                lock.lock();
                committing = false;
                ++next_commit;
                if (!go_on) stopped = true;
                cv.notify_all();
            }
        }
    };
    if (jobs == 1) {
        worker(0);
        return;
    }
    std::vector<std::jthread> pool;
    pool.reserve(jobs);
    for (unsigned w = 0; w < jobs; ++w) pool.emplace_back(worker, w);
}

}  // namespace etcpipe
