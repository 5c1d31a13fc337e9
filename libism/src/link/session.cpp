// SPDX-License-Identifier: MIT
// Sessions and epochs: handshake, control blocks, keepalive, peer loss and resets
// (docs/protocol.md sections 3, 4, 6 and 7).
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <utility>

#include "link_detail.hpp"

namespace ism::link {

using namespace detail;

namespace {

ResetReason reason_for_control(std::error_code ec)
{
    return ec == errc::proto_version ? ResetReason::version : ResetReason::control;
}

}  // namespace

Result<void> Link::begin_epoch(Clock::time_point now)
{
    auto dmb = port_.register_dmb(opt_.dmb_size);
    if (!dmb) {
        // Try again at the next OFFER time: the device may free a DMB later.
        next_offer_ = now + opt_.offer_max;
        return tl::unexpected(dmb.error());
    }
    dmb_ = *dmb;
    have_dmb_ = true;
    const uint16_t previous = epoch_;
    do {
        epoch_ = static_cast<uint16_t>(rng_());
    } while (epoch_ == 0 || epoch_ == previous);
    offering_ = true;
    offer_backoff_ = opt_.offer_first;
    send_offer(now);
    return {};
}

Offer Link::our_offer() const noexcept
{
    return Offer{dmb_.token, epoch_, kProtocolVersion, kProtocolVersion, dmb_.memory.size()};
}

void Link::send_offer(Clock::time_point now)
{
    // A lost or refused event is simply retried: the peer may not be there yet.
    (void)port_.send_event(kEventOffer, our_offer().pack());
    next_offer_ = now + offer_backoff_;
    offer_backoff_ = std::min(offer_backoff_ * 2, opt_.offer_max);
}

void Link::on_event(uint32_t code, uint64_t info, Clock::time_point now)
{
    now_ = now;
    Settle settle(*this);
    if (!have_dmb_ || stopped_)
        return;
    if (code == kEventReset) {
        const uint64_t token = info & 0x0000'FFFF'0000'0000ULL;
        const auto epoch = static_cast<uint16_t>(info >> 16);
        const auto reason = static_cast<ResetReason>(info & 0xFFFF);
        if (reason == ResetReason::version) {
            // The peer cannot speak our versions: nothing to tear down, keep offering.
            emit(
                {LinkEvent::Kind::reset_received, make_error_code(errc::proto_version), reason, 0});
            return;
        }
        if (have_peer_ && token == peer_.token && epoch == peer_.epoch) {
            // A peer closing its end is gone, not broken.
            const auto why = make_error_code(reason == ResetReason::shutdown ? errc::peer_gone
                                                                             : errc::link_reset);
            emit({LinkEvent::Kind::reset_received, why, reason, 0});
            restart(why, std::nullopt, 0, now);
        }
        return;
    }
    if (code != kEventOffer)
        return;
    auto offer = Offer::unpack(info);
    if (!offer) {
        emit({LinkEvent::Kind::offer_refused, offer.error(), ResetReason::control, 0});
        return;
    }
    const auto refuse = [&](ResetReason reason, std::error_code why) {
        const uint64_t reset =
            dmb_.token | (uint64_t{epoch_} << 16) | static_cast<uint16_t>(reason);
        (void)port_.send_event(kEventReset, reset);
        emit({LinkEvent::Kind::offer_refused, why, reason, 0});
    };
    auto version = negotiate(our_offer(), *offer);
    if (!version) {
        refuse(ResetReason::version, version.error());
        return;
    }
    if (ring_size_for(offer->dmb_size, opt_.channels) < kMinRingSize) {
        refuse(ResetReason::control, make_error_code(errc::bad_control_block));
        return;
    }
    if (have_peer_ && offer->token == peer_.token && offer->epoch == peer_.epoch) {
        // A duplicate (a retry crossed our answer): answer again, idempotently.
        if (!write_control(false))
            return;
        read_control(now);
        return;
    }
    if (up_) {
        // The peer restarted: the old link is gone for good.
        restart(make_error_code(errc::peer_gone), std::nullopt, 0, now);
        if (!have_dmb_)
            return;
    }
    take_offer(*offer, *version, now);
}

void Link::take_offer(const Offer& offer, uint8_t version, Clock::time_point now)
{
    peer_ = PeerEnd{offer.token, offer.epoch, offer.dmb_size};
    have_peer_ = true;
    version_ = version;
    tx_ring_ = ring_size_for(peer_.dmb_size, opt_.channels);
    // Whatever the peer's former incarnation wrote into our DMB no longer counts.
    if (accepted_) {
        accepted_ = false;
        offering_ = true;
    }
    wrote_cb_ = write_control(true);
    read_control(now);
    // A peer that is new to us may not have our OFFER (it may have started after we
    // sent it): answer at once rather than at the next retry.
    if (have_dmb_ && !accepted_) {
        offer_backoff_ = opt_.offer_first;
        send_offer(now);
    }
}

bool Link::write_control(bool fresh)
{
    ControlBlock cb;
    cb.version = version_;
    cb.nr_channels = static_cast<uint8_t>(opt_.channels);
    cb.writer_epoch = epoch_;
    cb.peer_epoch = peer_.epoch;
    cb.ring_size = tx_ring_;
    cb.writer_token = dmb_.token;
    cb.keepalive = keepalive_out_;
    cb.keepalive_ms = static_cast<uint32_t>(opt_.keepalive_interval.count());
    cb.max_message = static_cast<uint32_t>(opt_.max_message);
    cb.channels = our_channels();
    std::array<std::byte, kControlBlockSize> raw{};
    cb.encode(raw);
    Result<void> r;
    if (fresh) {
        // Cursors first: the control block that follows tells the peer they are valid.
        static const std::array<std::byte, kCursorAreaSize> zeros{};
        r = port_.store(peer_.token, kControlBlockSize, zeros, false);
        cursor_shadow_.fill(std::byte{0});
    }
    if (r)
        r = port_.store(peer_.token, 0, raw, true);
    if (!r) {
        if (up_) {
            lose(r.error());
            return false;
        }
        // The DMB the peer offered is gone: wait for its next OFFER.
        have_peer_ = false;
        wrote_cb_ = false;
        return false;
    }
    return true;
}

void Link::read_control(Clock::time_point now)
{
    std::array<std::byte, kControlBlockSize> raw;
    std::memcpy(raw.data(), dmb_.memory.data(), raw.size());
    std::atomic_thread_fence(std::memory_order_acquire);
    const bool empty =
        std::all_of(raw.begin(), raw.end(), [](std::byte b) { return b == std::byte{0}; });
    if (empty) {
        if (up_)
            violation(ResetReason::control, make_error_code(errc::bad_control_block), 0);
        return;
    }
    auto cb = ControlBlock::parse(raw, dmb_.memory.size());
    if (!cb) {
        // While the handshake runs a control block may be read half written; tick()
        // resets only when it stays malformed.
        if (up_) {
            violation(reason_for_control(cb.error()), cb.error(), 0);
        } else {
            if (!bad_control_since_)
                bad_control_since_ = now;
            bad_control_error_ = cb.error();
        }
        return;
    }
    bad_control_since_.reset();
    const bool ours = have_peer_ && cb->writer_epoch == peer_.epoch &&
                      cb->writer_token == peer_.token && cb->peer_epoch == epoch_;
    if (!ours) {
        // Before the handshake completes this is an older incarnation's block, which
        // the peer overwrites once it sees our OFFER; afterwards nothing but the
        // keepalive and the channel set may change.
        if (up_)
            violation(ResetReason::control, make_error_code(errc::bad_control_block), 0);
        return;
    }
    // The peer zeroed the area before it wrote this control block.
    if (!reserved_area_clear()) {
        violation(ResetReason::control, make_error_code(errc::bad_control_block), 0);
        return;
    }
    if (!accepted_) {
        accepted_ = true;
        offering_ = false;
        rx_channels_ = cb->nr_channels;
        rx_ring_ = cb->ring_size;
        keepalive_in_ = cb->keepalive;
        keepalive_seen_ = now;
        // A peer that keeps alive less often than we expect is not dead for it: wait
        // three of its intervals at least, but of no more than our limit.
        const auto peer_interval =
            std::min(std::chrono::milliseconds(cb->keepalive_ms), opt_.peer_keepalive_limit);
        dead_after_ = std::max(opt_.dead_after, 3 * peer_interval);
        peer_keepalive_ms_ = cb->keepalive_ms;
        peer_max_message_ = cb->max_message;
        peer_channels_ = 0;
    } else if (cb->nr_channels != rx_channels_ || cb->ring_size != rx_ring_ ||
               cb->keepalive_ms != peer_keepalive_ms_ || cb->max_message != peer_max_message_) {
        violation(ResetReason::control, make_error_code(errc::bad_control_block), 0);
        return;
    }
    if (!take_peer_channels(cb->channels.pack()))
        return;
    if (cb->keepalive != keepalive_in_) {
        keepalive_in_ = cb->keepalive;
        keepalive_seen_ = now;
    }
    if (!up_ && wrote_cb_)
        go_up(now);
}

void Link::go_up(Clock::time_point now)
{
    up_ = true;
    ++ups_;
    keepalive_seen_ = now;
    next_keepalive_ = now + opt_.keepalive_interval;
    for (auto& ch : channels_) {
        ch->tx_.emplace(tx_ring_);
        if (ch->index_ < rx_channels_)
            ch->rx_.emplace(rx_ring_);
    }
    emit({LinkEvent::Kind::up, {}, ResetReason::control, 0});
    for (auto& ch : channels_) {
        if (ch->open_ && ch->on_state_)
            defer([c = ch.get()] {
                if (c->on_state_)
                    c->on_state_(true);
            });
    }
    (void)service_all(true);
}

void Link::restart(std::error_code why, std::optional<ResetReason> reason, uint32_t channel,
                   Clock::time_point now)
{
    // A shutdown is the owner's own doing: no events about it, no state changes told.
    if (reason) {
        const uint64_t reset =
            dmb_.token | (uint64_t{epoch_} << 16) | static_cast<uint16_t>(*reason);
        (void)port_.send_event(kEventReset, reset);
        if (!stopped_)
            emit({LinkEvent::Kind::reset_sent, why, *reason, channel});
    }
    const bool was_up = up_;
    if (was_up && have_dmb_)
        harvest_confirmations();
    // A reset either side sent fails the waiters with link_reset, peer loss with peer_gone.
    std::error_code waiters = reason || why == errc::link_reset ? make_error_code(errc::link_reset)
                                                                : make_error_code(errc::peer_gone);
    if (stopped_)
        waiters = std::make_error_code(std::errc::operation_canceled);
    for (auto& ch : channels_) {
        fail_waiters(*ch, waiters);
        if (ch->peer_open_ && ch->on_peer_ && !stopped_)
            defer([c = ch.get()] {
                if (c->on_peer_)
                    c->on_peer_(false);
            });
        ch->reset_rings();
    }
    up_ = accepted_ = wrote_cb_ = have_peer_ = false;
    rx_channels_ = rx_ring_ = tx_ring_ = peer_max_message_ = 0;
    peer_channels_ = 0;
    bad_control_since_.reset();
    if (was_up && !stopped_) {
        emit({LinkEvent::Kind::down, why, reason.value_or(ResetReason::control), channel});
        for (auto& ch : channels_) {
            if (ch->open_ && ch->on_state_)
                defer([c = ch.get()] {
                    if (c->on_state_)
                        c->on_state_(false);
                });
        }
    }
    if (have_dmb_) {
        port_.unregister_dmb(dmb_.token);
        have_dmb_ = false;
        dmb_ = {};
    }
    // A new DMB, so that nothing the old peer writes late can reach the new epoch.
    if (!stopped_)
        (void)begin_epoch(now);
}

void Link::on_peer_disabled(Clock::time_point now)
{
    now_ = now;
    Settle settle(*this);
    if (!stopped_ && (up_ || have_peer_))
        restart(make_error_code(errc::peer_gone), std::nullopt, 0, now);
}

void Link::tick(Clock::time_point now)
{
    now_ = now;
    Settle settle(*this);
    if (stopped_)
        return;
    if (!have_dmb_) {
        if (now >= next_offer_)
            (void)begin_epoch(now);
        return;
    }
    // A safety net for a lost interrupt; cheap when nothing changed.
    read_control(now);
    if (up_ && !service_all(true))
        return;
    if (!have_dmb_)
        return;
    if (!up_) {
        // read_control() above cleared this if the block parses now.
        if (bad_control_since_ && now - *bad_control_since_ >= kControlGrace) {
            restart(bad_control_error_, reason_for_control(bad_control_error_), 0, now);
            return;
        }
        if (offering_ && now >= next_offer_)
            send_offer(now);
        return;
    }
    if (now - keepalive_seen_ >= dead_after_) {
        restart(make_error_code(errc::peer_gone), std::nullopt, 0, now);
        return;
    }
    if (now >= next_keepalive_) {
        ++keepalive_out_;
        next_keepalive_ = now + opt_.keepalive_interval;
        if (!store_peer(kKeepaliveOffset, be64_bytes(keepalive_out_), false))
            return;
    }
}

Clock::time_point Link::next_deadline() const noexcept
{
    if (stopped_)
        return Clock::time_point::max();
    if (!have_dmb_)
        return next_offer_;
    if (!up_) {
        auto next = offering_ ? next_offer_ : now_ + opt_.offer_max;
        if (bad_control_since_)
            next = std::min(next, *bad_control_since_ + kControlGrace);
        return next;
    }
    return std::min(next_keepalive_, keepalive_seen_ + dead_after_);
}

bool Link::reserved_area_clear() const noexcept
{
    const auto area =
        dmb_.memory.subspan(kReservedAreaOffset, kRingAreaOffset - kReservedAreaOffset);
    std::array<std::byte, kRingAreaOffset - kReservedAreaOffset> copy;
    std::memcpy(copy.data(), area.data(), copy.size());
    return std::all_of(copy.begin(), copy.end(), [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace ism::link
