// SPDX-License-Identifier: MIT
#include "ism/link/ring.hpp"

#include <algorithm>

namespace ism::link {

Result<void> RxRing::update_producer(uint64_t prod)
{
    // The writer may fill the ring up to the consumer cursor we last returned.
    if (prod < prod_ || prod - published_ > ring_size_)
        return fail(errc::bad_cursor);
    prod_ = prod;
    return {};
}

std::size_t RxRing::contiguous() const noexcept
{
    return static_cast<std::size_t>(std::min<uint64_t>(available(), bytes_to_ring_end()));
}

void RxRing::consume(std::size_t n) noexcept
{
    consumed_ += std::min<uint64_t>(n, available());
}

void RxRing::release(uint64_t cursor) noexcept
{
    released_ = std::max(released_, std::min(cursor, consumed_));
}

void RxRing::rewind(uint64_t cursor) noexcept
{
    consumed_ = std::clamp(cursor, released_, consumed_);
}

bool RxRing::should_publish() const noexcept
{
    const uint64_t unannounced = released_ - published_;
    if (unannounced == 0)
        return false;
    // The writer sees free space = ring - (prod - published): when everything it
    // published is released it may be waiting, so any progress is worth telling.
    return unannounced >= ring_size_ / 4 || released_ == prod_;
}

uint64_t RxRing::publish() noexcept
{
    published_ = released_;
    return published_;
}

Result<void> TxRing::update_consumer(uint64_t cons)
{
    if (cons < cons_ || cons > published_)
        return fail(errc::bad_cursor);
    cons_ = cons;
    return {};
}

void TxRing::produce(std::size_t n) noexcept
{
    prod_ += std::min<std::size_t>(n, free_space());
}

}  // namespace ism::link
