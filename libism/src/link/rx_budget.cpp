// SPDX-License-Identifier: MIT
// The receive budget (LinkOptions::rx_budget, docs/protocol.md section 9). What a link
// holds outside its rings (messages being assembled, messages read out ahead of the
// application) is charged to one count per link, at a message's first record, with the
// total length that record announces. A message that does not fit is not taken: it stays
// in its ring and holds its channel's credit, so that the peer's sender waits.
//
// Three rules keep that from stopping anything for good:
// - Read ahead (no receiver waiting) takes one-record messages only. Those lie whole in
//   the ring until they are handed over (a message in the inbox holds its room), so they
//   can be dropped again and read later: a receiver waiting for room evicts them.
// - The first receiver that waits for room has it kept: other messages are taken only
//   while they fit beside it, so that it is not starved by a busy channel.
// - A message larger than the whole budget is taken for a receiver when the link holds
//   nothing else. Receives into the caller's buffer are served from the ring and are
//   never charged.
#include <algorithm>
#include <utility>

#include "link_detail.hpp"

namespace ism::link {

namespace {

// A receiver asks for the channel's next message in a vector, and none is read out yet.
bool wants_vector(const ChannelImpl& ch) noexcept
{
    return ch.inbox_.empty() && !ch.receivers_.empty() && ch.receivers_.front().whole;
}

}  // namespace

bool Link::admit(ChannelImpl& ch, std::size_t total, bool whole)
{
    const bool demand = wants_vector(ch);
    if (!demand && !whole)
        return false;  // a message of several pieces waits for its receiver
    // A waiter that no longer waits (its receive was cancelled) keeps nothing.
    if (rx_waiter_ && *rx_waiter_ != ch.index_ && !wants_vector(*channels_[*rx_waiter_]))
        rx_waiter_.reset();
    const std::size_t kept = rx_waiter_ && *rx_waiter_ != ch.index_ ? rx_waiter_needs_ : 0;
    const std::size_t budget = opt_.rx_budget;
    const auto fits = [&](std::size_t held) {
        return kept <= budget && held + total <= budget - kept;
    };
    // One message larger than the whole budget goes through when it is all the link holds.
    const auto alone = [&](std::size_t held) { return demand && kept == 0 && held == 0; };
    // Messages read ahead make way, but only when that lets this one in: evicting for a
    // receiver that still waits would have them read again and evicted again, forever.
    if (demand && !fits(rx_held_)) {
        const std::size_t after = rx_held_ - evictable(ch);
        if (after < rx_held_ && (fits(after) || alone(after)))
            evict(ch, total + kept);
    }
    if (!fits(rx_held_) && !alone(rx_held_)) {
        ch.budget_wait_ = true;
        if (demand && !rx_waiter_) {
            rx_waiter_ = ch.index_;
            rx_waiter_needs_ = total;
        }
        return false;
    }
    if (rx_waiter_ == ch.index_)
        rx_waiter_.reset();
    charge(ch, total);
    return true;
}

void Link::charge(ChannelImpl& ch, std::size_t n) noexcept
{
    ch.held_ += n;
    rx_held_ += n;
    rx_held_peak_ = std::max(rx_held_peak_, rx_held_);
}

void Link::uncharge(ChannelImpl& ch, std::size_t n) noexcept
{
    n = std::min(n, ch.held_);
    ch.held_ -= n;
    rx_held_ -= n;
    if (n > 0)
        rx_freed_ = true;
}

namespace {

// Messages read ahead whose room was not given back yet are still in their ring, as the
// writer stored them: the inbox from the first of them on can be dropped and read again.
// Not across an end of stream: its mark was passed (docs/protocol.md section 5), and its
// bytes are no record, so only what was read after the last one can be read again.
auto evictable_from(ChannelImpl& d)
{
    if (!d.rx_ || d.reader_.in_message())
        return d.inbox_.end();
    const uint64_t released = d.rx_->released();
    const auto last_eof =
        std::find_if(d.inbox_.rbegin(), d.inbox_.rend(), [](const auto& m) { return m.eof; });
    return std::find_if(last_eof.base(), d.inbox_.end(),
                        [&](const auto& m) { return m.begin >= released; });
}

}  // namespace

std::size_t Link::evictable(const ChannelImpl& keep) const
{
    std::size_t n = 0;
    for (const auto& d : channels_) {
        if (d.get() == &keep)
            continue;
        for (auto it = evictable_from(*d); it != d->inbox_.end(); ++it)
            n += it->message.size();
    }
    return n;
}

void Link::evict(const ChannelImpl& keep, std::size_t need)
{
    for (auto& d : channels_) {
        if (rx_held_ + need <= opt_.rx_budget)
            return;
        if (d.get() == &keep)
            continue;
        const auto from = evictable_from(*d);
        if (from == d->inbox_.end())
            continue;
        d->rx_->rewind(from->begin);
        for (auto it = from; it != d->inbox_.end(); ++it) {
            d->inbox_bytes_ -= it->message.size();
            uncharge(*d, it->message.size());
        }
        d->inbox_.erase(from, d->inbox_.end());
        d->budget_wait_ = true;
    }
}

bool Link::wake_budget_waiters()
{
    if (rx_waking_)
        return true;
    rx_waking_ = true;
    bool ok = true;
    const auto serve = [&](ChannelImpl& c) {
        if (ok && up_ && std::exchange(c.budget_wait_, false))
            ok = service_rx(c);
    };
    while (ok && up_ && std::exchange(rx_freed_, false)) {
        // The waiter first: the room was kept for it.
        if (rx_waiter_)
            serve(*channels_[*rx_waiter_]);
        for (auto& c : channels_)
            serve(*c);
    }
    rx_waking_ = false;
    return ok;
}

void Link::forget_budget(ChannelImpl& ch) noexcept
{
    uncharge(ch, ch.held_);
    ch.budget_wait_ = false;
    if (rx_waiter_ == ch.index_)
        rx_waiter_.reset();
}

}  // namespace ism::link
