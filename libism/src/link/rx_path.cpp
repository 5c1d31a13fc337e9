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
    // Consumer cursors first: one that moved because the peer dropped our data after it
    // closed its end comes with that close's fin word, loaded below (docs/protocol.md
    // section 5, "Closing a channel").
    std::array<uint64_t, kMaxChannels> cons{};
    const uint32_t cons_scan = every_cursor ? kMaxChannels : nch;
    for (uint32_t c = 0; c < cons_scan; ++c) {
        cons[c] = load_cursor(cons_offset(c));
        if (c >= nch && cons[c] != 0) {
            violation(ResetReason::channel, make_error_code(errc::bad_cursor), c);
            return false;
        }
    }
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
    // as open here if its data showed above; a mode the set announces is that of the
    // data after the peer's last mark, which the fin word loaded next shows.
    if (!take_peer_channels(load_cursor(ChannelSet::kOffset)))
        return false;
    // A mark the producer cursor covers shows here.
    for (uint32_t c = 0; c < scan; ++c) {
        const uint64_t fin = load_cursor(fin_offset(c));
        if (c >= rx_channels_ || c >= nch) {
            if (fin != 0) {
                violation(ResetReason::channel, make_error_code(errc::bad_cursor), c);
                return false;
            }
            continue;
        }
        if (!take_peer_fin(*channels_[c], fin))
            return false;
    }
    // After a close mark: the set stored before it, or after a reopen.
    if (peer_channels_stale_ && !take_peer_channels(load_cursor(ChannelSet::kOffset)))
        return false;
    for (uint32_t c = 0; c < nch; ++c) {
        ChannelImpl& ch = *channels_[c];
        if (cons[c] == ch.tx_->consumer() && !every_cursor)
            continue;
        if (!ch.tx_->update_consumer(cons[c])) {
            violation(ResetReason::consumer, make_error_code(errc::bad_cursor), c);
            return false;
        }
        ch.moved_ = true;
        complete_sends(ch, cons[c]);
    }
    // Only channels whose cursors moved have work here: what the application asks for is
    // served when it asks.
    for (auto& ch : channels_) {
        const bool moved = std::exchange(ch->moved_, false);
        if (!(moved || every_cursor) || (!ch->open_ && ch->unsent_.empty() && !ch->skip_))
            continue;
        if (!service_rx(*ch) || !service_tx(*ch))
            return false;
        if (ch->skip_ && !service_rx(*ch))  // our close mark just went out
            return false;
    }
    return true;
}

template <class Op>
void Link::end_of_stream(Op& op)
{
    const auto eof = make_error_code(errc::end_of_stream);
    if (op.whole)
        defer([h = std::move(op.whole), eof] { h(eof, {}); });
    else
        defer([h = std::move(op.into), eof] { h(eof, 0); });
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
            const bool eof = ch.inbox_.front().eof;
            auto message = std::move(ch.inbox_.front().message);
            ch.inbox_.pop_front();
            if (eof) {
                end_of_stream(op);
                continue;
            }
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
    if (!ch.rx_)
        return true;
    RxRing& rx = *ch.rx_;
    const auto at_fin = [&] {
        return ch.rx_fin_ && rx.cursor() == *ch.rx_fin_ - kFinMarkSize &&
               rx.producer() >= *ch.rx_fin_;
    };
    for (;;) {
        // The peer's data up to its pending mark was written in the mark's mode, what
        // follows its last mark in the mode its channel set announces. A ring is read
        // only in the mode it was written in.
        const bool known = ch.rx_fin_ || ch.peer_open_;
        const ChannelMode written = ch.rx_fin_ ? ch.rx_fin_mode_ : ch.peer_mode_;
        if (ch.skip_ || ch.mismatch_ || (ch.open_ && known && written != ch.mode_)) {
            // We closed, or cannot read it: drop it, through the peer's next mark. While
            // the modes disagree nothing is read and marks pass unreported: the writer
            // failed its sends, and waits for us to pass its marks.
            discard_rx(ch);
            if (!at_fin())
                break;
            pass_fin(ch);
            continue;
        }
        if (!ch.open_ || ch.mismatch_)
            break;
        if (!known) {
            // Nothing more to read from the ring, but what was read ahead still goes out.
            while (!ch.receivers_.empty() && !ch.inbox_.empty()) {
                auto op = std::move(ch.receivers_.front());
                ch.receivers_.pop_front();
                auto in = std::move(ch.inbox_.front());
                ch.inbox_.pop_front();
                ch.inbox_bytes_ -= in.message.size();
                uncharge(ch, in.message.size());
                if (in.eof)
                    end_of_stream(op);
                else
                    hand_over(ch, op, std::move(in.message));
            }
            break;
        }
        if (ch.mode_ == ChannelMode::message) {
            if (!serve_messages(ch))
                return false;
            if (!at_fin() || (ch.receivers_.empty() && !ch.read_ahead_))
                break;
            if (ch.reader_.in_message()) {
                violation(ResetReason::record, make_error_code(errc::bad_record), ch.index_);
                return false;
            }
            if (!ch.receivers_.empty()) {
                auto op = std::move(ch.receivers_.front());
                ch.receivers_.pop_front();
                end_of_stream(op);
            } else {
                ch.inbox_.push_back({{}, rx.cursor(), true});
            }
            pass_fin(ch);
            continue;
        }
        const auto ring = rx_ring(ch.index_);
        while (!ch.reads_.empty() && rx.available() > 0) {
            auto op = std::move(ch.reads_.front());
            ch.reads_.pop_front();
            std::size_t n = 0;
            while (n < op.buffer.size() && rx.available() > 0) {
                const std::size_t k = std::min(op.buffer.size() - n, rx.contiguous());
                std::memcpy(op.buffer.data() + n, ring.data() + rx.read_offset(), k);
                rx.consume(k);
                n += k;
            }
            ++ch.stats_.messages_received;
            ch.stats_.bytes_received += n;
            defer([h = std::move(op.handler), n] { h({}, n); });
        }
        if (!at_fin() || ch.reads_.empty())
            break;
        auto op = std::move(ch.reads_.front());
        ch.reads_.pop_front();
        defer([h = std::move(op.handler)] { h(make_error_code(errc::end_of_stream), 0); });
        pass_fin(ch);
    }
    // Credit goes back only for what the application has: a message waiting in the inbox
    // still holds its room, so that a confirmed send was really received. A closed end
    // releases only what it dropped (discard_rx, pass_fin): what it read ahead before it
    // closed goes back once its close mark is out.
    if (ch.open_ && ch.mode_ == ChannelMode::message)
        rx.release(ch.inbox_.empty() ? rx.cursor() : ch.inbox_.front().begin);
    else if (ch.open_)
        rx.release_all();
    if (rx.should_publish())
        ch.cons_dirty_ = true;
    // Room handed back to the budget: messages that waited for it may be taken now.
    if (rx_freed_ && !rx_waking_)
        return wake_budget_waiters();
    return true;
}

void Link::discard_rx(ChannelImpl& ch)
{
    RxRing& rx = *ch.rx_;
    rx.consume(static_cast<std::size_t>(rx.available()));
    rx.release_all();
    ch.reader_ = MessageReader(ch.reader_.max_message());
    ch.inbox_.clear();
    ch.inbox_bytes_ = 0;
    forget_budget(ch);
}

void Link::pass_fin(ChannelImpl& ch)
{
    RxRing& rx = *ch.rx_;
    rx.clear_stop();
    rx.consume(kFinMarkSize);
    if (ch.skip_)
        rx.release_all();
    ch.rx_fin_.reset();
    ch.skip_ = false;
}

}  // namespace ism::link
