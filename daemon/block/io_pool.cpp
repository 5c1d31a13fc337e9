// SPDX-License-Identifier: MIT
#include "block/io_pool.hpp"

namespace ismd::block {

IoPool::IoPool(boost::asio::any_io_executor loop, unsigned threads) : loop_(std::move(loop))
{
    for (unsigned i = 0; i < threads; ++i)
        threads_.emplace_back([this] { worker(); });
}

IoPool::~IoPool()
{
    ring_.reset();
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_)
        t.join();
}

void IoPool::submit(std::function<void()> job)
{
    {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
}

std::string IoPool::use_ring(unsigned entries, uint64_t max_bytes)
{
    auto ring = DiskRing::create(loop_, entries);
    if (!ring)
        return ring.error();
    ring_ = std::move(*ring);
    ring_max_ = max_bytes;
    return {};
}

std::size_t IoPool::queued() const
{
    std::lock_guard lock(mutex_);
    return jobs_.size();
}

void IoPool::worker()
{
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty())
                return;  // stopping, and everything queued has run
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        job();
    }
}

}  // namespace ismd::block
