// SPDX-License-Identifier: MIT
// ByteBudget: the bytes an NBD endpoint may hold for requests and their payloads, across
// all its connections.
//
// A connection takes its share before it reads a request's payload or allocates a read's
// buffer, and gives it back once the reply is written. When the budget is spent the
// connection waits, and while it waits it does not read its socket: a client that sends
// faster than the export drains is slowed by the socket's own flow control, never
// buffered without limit. Waiters are served strictly in order, so a 32 MiB write is not
// starved by a stream of 4 KiB ones behind it.
//
// Single-threaded: every call, and every completion, on the executor given at
// construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>

namespace ismd::block {

class ByteBudget {
public:
    using Handler = boost::asio::any_completion_handler<void(boost::system::error_code)>;

    ByteBudget(boost::asio::any_io_executor executor, std::size_t capacity);
    /// Waiters still queued complete with operation_aborted.
    /// (Posting them may throw bad_alloc only.)
    ~ByteBudget();  // NOLINT(bugprone-exception-escape)
    ByteBudget(const ByteBudget&) = delete;
    ByteBudget& operator=(const ByteBudget&) = delete;

    /// What `bytes` costs: a request larger than the whole budget takes all of it (it
    /// waits until everything else was given back), never more.
    [[nodiscard]] std::size_t charge(std::size_t bytes) const noexcept
    {
        return bytes < capacity_ ? bytes : capacity_;
    }

    /// Takes charge(bytes) now if nobody is waiting and it fits; false otherwise.
    bool try_acquire(std::size_t bytes);

    /// Takes charge(bytes) once it fits and every earlier waiter was served; completes
    /// with no error then. Completes with operation_aborted, having taken nothing, when
    /// cancelled through the handler's cancellation slot (any type) or when the budget is
    /// destroyed first. Never completes inside the call.
    template <class Token>
    auto async_acquire(std::size_t bytes, Token&& token)
    {
        return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
            [this](auto handler, std::size_t n) { initiate(n, Handler(std::move(handler))); },
            token, bytes);
    }

    /// Gives back what an acquire of `bytes` took, waking waiters in order.
    void release(std::size_t bytes);

    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::size_t in_use() const noexcept { return in_use_; }
    [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }
    /// How many acquires had to wait, since construction.
    [[nodiscard]] uint64_t waits() const noexcept { return waits_; }

private:
    struct Waiter {
        uint64_t id;
        std::size_t bytes;
        Handler handler;
    };

    void initiate(std::size_t bytes, Handler handler);
    void cancel(uint64_t id);
    void grant();
    void complete(Handler handler, boost::system::error_code ec);

    boost::asio::any_io_executor executor_;
    std::size_t capacity_;
    std::size_t in_use_ = 0;
    uint64_t waits_ = 0;
    uint64_t next_id_ = 0;
    std::list<Waiter> waiters_;
};

/// What one request holds of a ByteBudget; given back when the lease is destroyed or
/// reset. The budget must outlive its leases.
class BudgetLease {
public:
    BudgetLease() = default;
    BudgetLease(ByteBudget& budget, std::size_t bytes) : budget_(&budget), bytes_(bytes) {}
    BudgetLease(BudgetLease&& other) noexcept
        : budget_(std::exchange(other.budget_, nullptr)), bytes_(std::exchange(other.bytes_, 0))
    {
    }
    // Giving bytes back may post a waiter's completion: only bad_alloc can escape.
    // NOLINTNEXTLINE(bugprone-exception-escape)
    BudgetLease& operator=(BudgetLease&& other) noexcept
    {
        if (this != &other) {
            reset();
            budget_ = std::exchange(other.budget_, nullptr);
            bytes_ = std::exchange(other.bytes_, 0);
        }
        return *this;
    }
    BudgetLease(const BudgetLease&) = delete;
    BudgetLease& operator=(const BudgetLease&) = delete;
    // NOLINTNEXTLINE(bugprone-exception-escape): as above
    ~BudgetLease() { reset(); }

    void reset()
    {
        if (budget_ != nullptr)
            budget_->release(bytes_);
        budget_ = nullptr;
        bytes_ = 0;
    }
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

private:
    ByteBudget* budget_ = nullptr;
    std::size_t bytes_ = 0;
};

}  // namespace ismd::block
