// SPDX-License-Identifier: MIT
// IoPool: threads that run blocking disk calls, so the event loop (and with it the
// links' keepalives) never waits for a disk. A job's completion runs on the event loop.
// Reads, writes and flushes may go through a DiskRing instead (use_ring), which does them
// from the loop itself with io_uring and saves the hop to a thread and back.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include "block/uring.hpp"

namespace ismd::block {

class IoPool {
public:
    IoPool(boost::asio::any_io_executor loop, unsigned threads);
    ~IoPool();
    IoPool(const IoPool&) = delete;
    IoPool& operator=(const IoPool&) = delete;

    /// Runs `work` on a pool thread, then `done(result)` on the event loop.
    template <class Work, class Done>
    void run(Work work, Done done)
    {
        submit([this, work = std::move(work), done = std::move(done)]() mutable {
            auto result = work();
            boost::asio::post(loop_,
                              [done = std::move(done), result = std::move(result)]() mutable {
                                  done(std::move(result));
                              });
        });
    }

    [[nodiscard]] std::size_t queued() const;

    /// From now on ring_for() gives a DiskRing of `entries` on the loop for requests of
    /// up to `max_bytes`; the error, when the kernel refuses io_uring, says why (a log
    /// line) and everything stays on the threads.
    std::string use_ring(unsigned entries, uint64_t max_bytes = UINT64_MAX);
    /// The ring for a request of `bytes`, or null: it goes to the threads.
    [[nodiscard]] DiskRing* ring_for(uint64_t bytes) const noexcept
    {
        return bytes <= ring_max_ ? ring_.get() : nullptr;
    }
    [[nodiscard]] DiskRing* ring() const noexcept { return ring_.get(); }

private:
    void submit(std::function<void()> job);
    void worker();

    boost::asio::any_io_executor loop_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
    std::unique_ptr<DiskRing> ring_;
    uint64_t ring_max_ = 0;
};

}  // namespace ismd::block
