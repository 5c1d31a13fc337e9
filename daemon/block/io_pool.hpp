// SPDX-License-Identifier: MIT
// IoPool: threads that run blocking disk calls, so the event loop (and with it the
// links' keepalives) never waits for a disk. A job's completion runs on the event loop.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

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

private:
    void submit(std::function<void()> job);
    void worker();

    boost::asio::any_io_executor loop_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace ismd::block
