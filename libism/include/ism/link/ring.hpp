// SPDX-License-Identifier: MIT
// Cursor bookkeeping of one channel's ring (docs/protocol.md section 5).
//
// RxRing is the reader's side of a ring in our own DMB, TxRing the writer's side of a
// ring in the peer's DMB. Both take cursors the peer wrote (already copied out of the
// DMB) and refuse any that no honest peer could have written, so that nothing computed
// from them can point outside the ring. Cursors are byte counts since the epoch began.
// Not thread-safe: one channel is driven by one thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ism/result.hpp"

namespace ism::link {

class RxRing {
public:
    explicit RxRing(uint32_t ring_size) noexcept : ring_size_(ring_size) {}

    /// A producer cursor from the peer: refused (errc::bad_cursor) if it went backwards
    /// or claims more bytes than the credit we returned allows.
    Result<void> update_producer(uint64_t prod);

    /// The producer cursor as last accepted.
    [[nodiscard]] uint64_t producer() const noexcept { return prod_; }
    /// Bytes readable: up to the producer cursor, or to the stop where it is lower.
    [[nodiscard]] uint64_t available() const noexcept
    {
        return (prod_ < stop_ ? prod_ : stop_) - consumed_;
    }
    /// Reading stops at `cursor` (an end-of-stream mark begins there) until clear_stop().
    void set_stop(uint64_t cursor) noexcept { stop_ = cursor; }
    void clear_stop() noexcept { stop_ = UINT64_MAX; }
    /// The consumer cursor last returned to the writer.
    [[nodiscard]] uint64_t returned() const noexcept { return published_; }
    /// Cursor of the next byte to read.
    [[nodiscard]] uint64_t cursor() const noexcept { return consumed_; }
    [[nodiscard]] std::size_t read_offset() const noexcept
    {
        return static_cast<std::size_t>(consumed_ % ring_size_);
    }
    /// Readable bytes from read_offset() before the ring's end.
    [[nodiscard]] std::size_t contiguous() const noexcept;
    /// Marks `n` bytes read; n is clamped to available().
    void consume(std::size_t n) noexcept;
    [[nodiscard]] std::size_t bytes_to_ring_end() const noexcept
    {
        return ring_size_ - read_offset();
    }

    /// Bytes up to `cursor` were handed to the application: their room may go back to
    /// the writer. Clamped to what was read; never moves back.
    void release(uint64_t cursor) noexcept;
    void release_all() noexcept { released_ = consumed_; }
    /// Bytes up to here were released: the writer may store over them.
    [[nodiscard]] uint64_t released() const noexcept { return released_; }
    /// Reads again from `cursor`: bytes read but not released are still in the ring, as
    /// the writer stored them. Clamped to [released(), cursor()].
    void rewind(uint64_t cursor) noexcept;

    /// True when the consumer cursor should be returned to the writer: a quarter of the
    /// ring was released since the last return, or everything published was released
    /// (the writer may be waiting for room).
    [[nodiscard]] bool should_publish() const noexcept;
    /// The cursor to store into the peer's DMB; remembered as published.
    uint64_t publish() noexcept;

private:
    uint32_t ring_size_;
    uint64_t prod_ = 0;
    uint64_t consumed_ = 0;
    uint64_t released_ = 0;
    uint64_t published_ = 0;
    uint64_t stop_ = UINT64_MAX;
};

class TxRing {
public:
    explicit TxRing(uint32_t ring_size) noexcept : ring_size_(ring_size) {}

    /// A consumer cursor from the peer: refused (errc::bad_cursor) if it went backwards or
    /// past what we published (bytes written but not yet published are not the peer's to
    /// consume).
    Result<void> update_consumer(uint64_t cons);
    /// The producer cursor was stored into the peer's DMB: the peer may consume up to it.
    void mark_published() noexcept { published_ = prod_; }
    [[nodiscard]] uint64_t published() const noexcept { return published_; }

    [[nodiscard]] std::size_t free_space() const noexcept
    {
        return static_cast<std::size_t>(ring_size_ - (prod_ - cons_));
    }
    [[nodiscard]] std::size_t write_offset() const noexcept
    {
        return static_cast<std::size_t>(prod_ % ring_size_);
    }
    /// Marks `n` bytes written; n is clamped to free_space().
    void produce(std::size_t n) noexcept;
    [[nodiscard]] uint64_t producer() const noexcept { return prod_; }
    /// The peer's consumer cursor as last accepted.
    [[nodiscard]] uint64_t consumer() const noexcept { return cons_; }

private:
    uint32_t ring_size_;
    uint64_t prod_ = 0;
    uint64_t published_ = 0;
    uint64_t cons_ = 0;
};

}  // namespace ism::link
