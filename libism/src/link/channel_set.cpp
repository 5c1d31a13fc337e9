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
        if (!ch->set_open_)
            continue;
        set.open |= uint32_t{1} << ch->index_;
        if (ch->set_mode_ == ChannelMode::stream)
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
    if (word == peer_channels_ && !peer_channels_stale_)
        return true;
    peer_channels_stale_ = false;
    auto set = ChannelSet::unpack(word, rx_channels_);
    if (!set) {
        violation(ResetReason::control, make_error_code(errc::bad_control_block), 0);
        return false;
    }
    peer_channels_ = word;
    for (auto& ch : channels_) {
        const uint32_t bit = uint32_t{1} << ch->index_;
        const bool was_open = ch->peer_open_;
        ch->peer_open_ = (set->open & bit) != 0;
        if (ch->peer_open_ != was_open && ch->on_peer_)
            defer([c = ch.get(), open = ch->peer_open_] {
                if (c->on_peer_)
                    c->on_peer_(open);
            });
        ch->peer_mode_ = (set->stream & bit) != 0 ? ChannelMode::stream : ChannelMode::message;
        check_modes(*ch);
    }
    return true;
}

void Link::check_modes(ChannelImpl& ch)
{
    const bool mismatch = ch.open_ && ch.peer_open_ && ch.mode_ != ch.peer_mode_;
    if (mismatch == ch.mismatch_)
        return;
    ch.mismatch_ = mismatch;
    if (!mismatch)
        return;
    // Not a protocol violation: two applications disagree about one channel. Nothing
    // flows on it until one of them closes and reopens it in the other's mode; each side
    // ends its stream so that the other drops what it cannot read. The others go on.
    const auto why = make_error_code(errc::mode_mismatch);
    fail_receivers(ch, why);
    end_tx_session(ch, why);
    emit({LinkEvent::Kind::channel_error, why, ResetReason::channel, ch.index_});
}

bool Link::take_peer_fin(ChannelImpl& ch, uint64_t word)
{
    if (word == ch.peer_fin_word_)
        return true;
    // A new mark only once we passed the last one (the writer waits for our cursor), at
    // or after what we read, and within the credit we returned.
    const uint64_t end = word & kFinCursorMask;
    const bool stream = (word & kFinStream) != 0;
    RxRing& rx = *ch.rx_;
    if (ch.rx_fin_ || end < kFinMarkSize || end - kFinMarkSize < rx.cursor() ||
        end - rx.returned() > rx_ring_ || (!stream && end % 8 != 0)) {
        violation(ResetReason::producer, make_error_code(errc::bad_cursor), ch.index_);
        return false;
    }
    ch.peer_fin_word_ = word;
    ch.rx_fin_ = end;
    ch.rx_fin_mode_ = stream ? ChannelMode::stream : ChannelMode::message;
    rx.set_stop(end - kFinMarkSize);
    ch.moved_ = true;
    if ((word & kFinClose) == 0)
        return true;
    // The peer closed its end: it drops what we send up to our next mark. Sends not yet
    // confirmed fail (they may or may not have been read), and our stream ends so that
    // the peer knows where the drop stops.
    end_tx_session(ch, make_error_code(errc::peer_closed));
    peer_channels_stale_ = true;  // the set loaded after this tells if it opened again
    if (ch.peer_open_) {
        // Told at once; the channel set taken next tells whether it opened again.
        ch.peer_open_ = false;
        if (ch.on_peer_)
            defer([c = &ch] {
                if (c->on_peer_)
                    c->on_peer_(false);
            });
    }
    return true;
}

void Link::end_tx_session(ChannelImpl& ch, std::error_code why)
{
    for (auto& op : ch.unconfirmed_)
        ch.fail_send(op, why);
    ch.unconfirmed_.clear();
    // A send begun is written to its end (a record stream is never cut), unreported;
    // marks already queued stay.
    std::deque<ChannelImpl::SendOp> keep;
    for (auto& op : ch.unsent_) {
        if (op.fin) {
            keep.push_back(std::move(op));
            continue;
        }
        ch.fail_send(op, why);
        if (op.started || op.done != 0)
            keep.push_back(std::move(op));
    }
    ch.unsent_ = std::move(keep);
    if (ch.tx_open_ && ch.open_ && up_) {
        ch.queue_fin(false);
        ch.tx_open_ = true;  // what we send next is a new stream
    }
}

}  // namespace ism::link
