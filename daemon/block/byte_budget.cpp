// SPDX-License-Identifier: MIT
#include "block/byte_budget.hpp"

#include <algorithm>

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

namespace ismd::block {

namespace asio = boost::asio;

ByteBudget::ByteBudget(asio::any_io_executor executor, std::size_t capacity)
    : executor_(std::move(executor)), capacity_(std::max<std::size_t>(capacity, 1))
{
}

// Posting the waiters' completions may throw bad_alloc, nothing else.
ByteBudget::~ByteBudget()  // NOLINT(bugprone-exception-escape)
{
    while (!waiters_.empty()) {
        Handler h = std::move(waiters_.front().handler);
        waiters_.pop_front();
        if (auto slot = h.get_cancellation_slot(); slot.is_connected())
            slot.clear();
        complete(std::move(h), asio::error::operation_aborted);
    }
}

bool ByteBudget::try_acquire(std::size_t bytes)
{
    const std::size_t n = charge(bytes);
    if (!waiters_.empty() || in_use_ + n > capacity_)
        return false;
    in_use_ += n;
    return true;
}

void ByteBudget::initiate(std::size_t bytes, Handler handler)
{
    if (try_acquire(bytes)) {
        complete(std::move(handler), {});
        return;
    }
    ++waits_;
    const uint64_t id = ++next_id_;
    auto& waiter = waiters_.emplace_back(Waiter{id, charge(bytes), std::move(handler)});
    if (auto slot = waiter.handler.get_cancellation_slot(); slot.is_connected()) {
        // Found by id, not by iterator: a cancellation that comes after the grant, or a
        // second one, finds nothing and does nothing.
        slot.assign([this, id](asio::cancellation_type) { cancel(id); });
    }
}

void ByteBudget::cancel(uint64_t id)
{
    auto it = std::find_if(waiters_.begin(), waiters_.end(),
                           [id](const Waiter& w) { return w.id == id; });
    if (it == waiters_.end())
        return;
    const bool was_first = it == waiters_.begin();
    Handler h = std::move(it->handler);
    waiters_.erase(it);
    complete(std::move(h), asio::error::operation_aborted);
    // The one that left may have held back smaller requests behind it.
    if (was_first)
        grant();
}

void ByteBudget::release(std::size_t bytes)
{
    const std::size_t n = charge(bytes);
    in_use_ = n > in_use_ ? 0 : in_use_ - n;
    grant();
}

void ByteBudget::grant()
{
    while (!waiters_.empty() && in_use_ + waiters_.front().bytes <= capacity_) {
        in_use_ += waiters_.front().bytes;
        Handler h = std::move(waiters_.front().handler);
        waiters_.pop_front();
        if (auto slot = h.get_cancellation_slot(); slot.is_connected())
            slot.clear();
        complete(std::move(h), {});
    }
}

void ByteBudget::complete(Handler handler, boost::system::error_code ec)
{
    // Never inline: whoever called release() or async_acquire() is not re-entered. The
    // budget's executor is its users' (single-threaded, see the header).
    asio::post(executor_, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
}

}  // namespace ismd::block
