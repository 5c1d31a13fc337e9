// SPDX-License-Identifier: MIT
// Which channels each side has open and in which mode (docs/protocol.md section 4,
// "channel set", and section 5, "Agreed limits and channel modes").
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <utility>

#include "link_detail.hpp"

namespace ism::link {

using namespace detail;

ChannelSet Link::our_channels() const noexcept
{
    ChannelSet set;
    for (const auto& ch : channels_) {
        if (!ch->open_)
            continue;
        set.open |= uint32_t{1} << ch->index_;
        if (ch->mode_ == ChannelMode::stream)
            set.stream |= uint32_t{1} << ch->index_;
    }
    return set;
}

bool Link::announce_channels()
{
    // Before our control block is in the peer's DMB there is nothing to update: the
    // control block carries the set when it is written.
    if (!have_peer_ || !wrote_cb_)
        return true;
    auto r = port_.store(peer_.token, ChannelSet::kOffset, be64_bytes(our_channels().pack()), true);
    if (!r) {
        if (up_)
            lose(r.error());
        return false;
    }
    return true;
}

bool Link::take_peer_channels(uint64_t word)
{
    if (word == peer_channels_)
        return true;
    auto set = ChannelSet::unpack(word, rx_channels_);
    // A channel the peer opened stays open for the epoch.
    const auto old_open = static_cast<uint32_t>(peer_channels_ >> 32);
    if (!set || (old_open & ~set->open) != 0) {
        violation(ResetReason::control, make_error_code(errc::bad_control_block), 0);
        return false;
    }
    peer_channels_ = word;
    for (auto& ch : channels_) {
        const uint32_t bit = uint32_t{1} << ch->index_;
        const bool was_open = ch->peer_open_;
        ch->peer_open_ = (set->open & bit) != 0;
        if (ch->peer_open_ && !was_open && ch->on_peer_)
            defer([c = ch.get()] {
                if (c->on_peer_)
                    c->on_peer_(true);
            });
        ch->peer_mode_ = (set->stream & bit) != 0 ? ChannelMode::stream : ChannelMode::message;
        check_modes(*ch);
    }
    return true;
}

void Link::check_modes(ChannelImpl& ch)
{
    if (ch.mismatch_ || !ch.open_ || !ch.peer_open_ || ch.mode_ == ch.peer_mode_)
        return;
    // Not a protocol violation: two applications disagree about one channel. Nothing
    // flows on it (its ring is left unread) until the next epoch; the others go on.
    ch.mismatch_ = true;
    const auto why = make_error_code(errc::mode_mismatch);
    fail_waiters(ch, why);
    emit({LinkEvent::Kind::channel_error, why, ResetReason::channel, ch.index_});
}

}  // namespace ism::link
