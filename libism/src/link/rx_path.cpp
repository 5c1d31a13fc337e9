// SPDX-License-Identifier: MIT
// The receive path: cursors out of our DMB, records and bytes out of its rings, credit
// back to the writer (docs/protocol.md section 5).
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <utility>

#include "link_detail.hpp"

namespace ism::link {

using namespace detail;

// ---------------------------------------------------------------------------------------
// Data path

uint64_t Link::load_cursor(std::size_t offset) const noexcept
{
    // One aligned 8-byte load, then acquire: the data the cursor publishes is read after.
    auto* word = reinterpret_cast<uint64_t*>(dmb_.memory.data() + offset);
    uint64_t v = std::atomic_ref<uint64_t>(*word).load(std::memory_order_acquire);
    if constexpr (std::endian::native == std::endian::little)
        v = __builtin_bswap64(v);
    return v;
}

std::span<const std::byte> Link::rx_ring(uint32_t c) const noexcept
{
    return dmb_.memory.subspan(kRingAreaOffset + std::size_t{c} * rx_ring_, rx_ring_);
}

void Link::poll(Clock::time_point now)
{
    now_ = now;
    Settle settle(*this);
    if (!have_dmb_ || stopped_)
        return;
    // Once up, the control block changes only by its keepalive, which tick() reads (with
    // the rest of the block): the hot path leaves it alone.
    if (!up_)
        read_control(now);
    if (up_)
        (void)service_all(false);
}

bool Link::service_all(bool every_cursor)
{
    // Cursors of channels that exist on neither side must stay zero; tick() checks those,
    // the hot path only the channels in use.
    const auto nch = static_cast<uint32_t>(channels_.size());
    const uint32_t scan = every_cursor ? kMaxChannels : std::max(nch, rx_channels_);
    for (uint32_t c = 0; c < scan; ++c) {
        const uint64_t prod = load_cursor(prod_offset(c));
        if (c >= rx_channels_ || c >= nch) {
            if (prod != 0) {
                violation(ResetReason::channel, make_error_code(errc::bad_cursor), c);
                return false;
            }
            continue;
        }
        ChannelImpl& ch = *channels_[c];
        if (prod == ch.rx_->producer() && !every_cursor)
            continue;
        if (!ch.rx_->update_producer(prod)) {
            violation(ResetReason::producer, make_error_code(errc::bad_cursor), c);
            return false;
        }
        ch.moved_ = true;
    }
    // After the producer cursors: a channel the peer opened before writing on it shows
    // as open here if its data showed above.
    if (!take_peer_channels(load_cursor(ChannelSet::kOffset)))
        return false;
    for (uint32_t c = 0; c < (every_cursor ? kMaxChannels : nch); ++c) {
        const uint64_t cons = load_cursor(cons_offset(c));
        if (c >= nch) {
            if (cons != 0) {
                violation(ResetReason::channel, make_error_code(errc::bad_cursor), c);
                return false;
            }
            continue;
        }
        ChannelImpl& ch = *channels_[c];
        if (cons == ch.tx_->consumer() && !every_cursor)
            continue;
        if (!ch.tx_->update_consumer(cons)) {
            violation(ResetReason::consumer, make_error_code(errc::bad_cursor), c);
            return false;
        }
        ch.moved_ = true;
        complete_sends(ch, cons);
    }
    // Only channels whose cursors moved have work here: what the application asks for is
    // served when it asks.
    for (auto& ch : channels_) {
        const bool moved = std::exchange(ch->moved_, false);
        if (!ch->open_ || !(moved || every_cursor))
            continue;
        if (!service_rx(*ch) || !service_tx(*ch))
            return false;
    }
    return true;
}

template <class Op>
void Link::hand_over(ChannelImpl& ch, Op& op, std::vector<std::byte>&& message)
{
    ++ch.stats_.messages_received;
    ch.stats_.bytes_received += message.size();
    if (op.whole) {
        defer([h = std::move(op.whole), m = std::move(message)]() mutable { h({}, std::move(m)); });
        return;
    }
    // A receive into a buffer behind messages already read out: a second copy, the rare
    // case (the channel mixed both kinds of receive).
    const std::size_t n = message.size();
    std::error_code ec;
    if (n > op.buffer.size())
        ec = make_error_code(errc::message_too_large);
    else if (n > 0)
        std::memcpy(op.buffer.data(), message.data(), n);
    defer([h = std::move(op.into), ec, n] { h(ec, n); });
}

bool Link::serve_messages(ChannelImpl& ch)
{
    const auto ring = rx_ring(ch.index_);
    const auto pull = [&]() -> bool {
        // A message is taken only when it fits in the receive budget (rx_budget.cpp).
        auto r = ch.reader_.poll(
            ring, *ch.rx_,
            [this, &ch](std::size_t total, bool whole) { return admit(ch, total, whole); },
            [&ch](std::vector<std::byte>&& m) {
                ch.inbox_bytes_ += m.size();
                ch.inbox_.push_back({std::move(m), ch.reader_.message_begin()});
            });
        if (!r)
            violation(ResetReason::record, r.error(), ch.index_);
        return static_cast<bool>(r);
    };
    for (;;) {
        // Messages already read out go first, in order.
        while (!ch.receivers_.empty() && !ch.inbox_.empty()) {
            auto op = std::move(ch.receivers_.front());
            ch.receivers_.pop_front();
            auto message = std::move(ch.inbox_.front().message);
            ch.inbox_.pop_front();
            ch.inbox_bytes_ -= message.size();
            uncharge(ch, message.size());
            hand_over(ch, op, std::move(message));
        }
        if (ch.receivers_.empty())
            break;
        auto& op = ch.receivers_.front();
        const bool direct = !op.whole && (op.started || !ch.reader_.in_message());
        if (!direct) {
            const std::size_t before = ch.inbox_.size();
            if (!pull())
                return false;
            if (ch.inbox_.size() == before)
                break;
            continue;
        }
        // Straight from the ring into the caller's buffer: one copy.
        std::size_t length = op.length;
        auto r = ch.reader_.poll_into(ring, *ch.rx_, op.buffer, length);
        if (!r) {
            violation(ResetReason::record, r.error(), ch.index_);
            return false;
        }
        op.length = length;
        if (!*r) {
            op.started = ch.reader_.in_message();
            break;
        }
        auto done = std::move(op);
        ch.receivers_.pop_front();
        ++ch.stats_.messages_received;
        ch.stats_.bytes_received += std::min(length, done.buffer.size());
        std::error_code ec;
        if (length > done.buffer.size())
            ec = make_error_code(errc::message_too_large);
        defer([h = std::move(done.into), ec, length] { h(ec, length); });
    }
    // Read ahead only for a channel that receives into vectors, into a bounded inbox: a
    // reader that stalls leaves its data in the ring, and the writer runs out of credit.
    if (ch.receivers_.empty() && ch.read_ahead_ && ch.inbox_bytes_ < rx_ring_)
        return pull();
    return true;
}

bool Link::service_rx(ChannelImpl& ch)
{
    // A ring is read only in the mode its writer announced.
    if (!ch.rx_ || !ch.peer_open_ || ch.mismatch_)
        return true;
    if (ch.mode_ == ChannelMode::message) {
        if (!serve_messages(ch))
            return false;
        // Credit goes back only for what the application has: a message waiting in the
        // inbox still holds its room, so that a confirmed send was really received.
        ch.rx_->release(ch.inbox_.empty() ? ch.rx_->cursor() : ch.inbox_.front().begin);
    } else {
        const auto ring = rx_ring(ch.index_);
        while (!ch.reads_.empty() && ch.rx_->available() > 0) {
            auto op = std::move(ch.reads_.front());
            ch.reads_.pop_front();
            std::size_t n = 0;
            while (n < op.buffer.size() && ch.rx_->available() > 0) {
                const std::size_t k = std::min(op.buffer.size() - n, ch.rx_->contiguous());
                std::memcpy(op.buffer.data() + n, ring.data() + ch.rx_->read_offset(), k);
                ch.rx_->consume(k);
                n += k;
            }
            ++ch.stats_.messages_received;
            ch.stats_.bytes_received += n;
            defer([h = std::move(op.handler), n] { h({}, n); });
        }
        ch.rx_->release_all();
    }
    if (ch.rx_->should_publish())
        ch.cons_dirty_ = true;
    // Room handed back to the budget: messages that waited for it may be taken now.
    if (rx_freed_ && !rx_waking_)
        return wake_budget_waiters();
    return true;
}

}  // namespace ism::link
