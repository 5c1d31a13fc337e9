// SPDX-License-Identifier: MIT
// The link state machine: handshake, data path, credit, keepalive, peer loss and resets
// (docs/protocol.md sections 3 to 7).
#include "ism/link/link.hpp"

#include <algorithm>
#include <utility>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>

#include "device/regs.hpp"

namespace ism::link {
namespace {

using device::regs::put_be64;

constexpr std::size_t kKeepaliveOffset = 24;
constexpr std::size_t kCursorAreaSize = kRingAreaOffset - kControlBlockSize;
// Pieces up to this size are stored together with their header.
constexpr std::size_t kSmallPiece = 1024 - kRecordHeaderSize;

std::array<std::byte, 8> be64_bytes(uint64_t v)
{
    std::array<std::byte, 8> b{};
    put_be64(b, 0, v);
    return b;
}

std::size_t prod_offset(uint32_t c)
{
    return kProducerCursorsOffset + std::size_t{8} * c;
}

std::size_t cons_offset(uint32_t c)
{
    return kConsumerCursorsOffset + std::size_t{8} * c;
}

ResetReason reason_for_control(std::error_code ec)
{
    return ec == errc::proto_version ? ResetReason::version : ResetReason::control;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Options

Result<void> LinkOptions::validate() const
{
    if (!std::has_single_bit(dmb_size) || dmb_size < kMinDmbSize || dmb_size > kMaxDmbSize ||
        channels == 0 || channels > kMaxChannels ||
        ring_size_for(dmb_size, channels) < kMinRingSize || keepalive_interval.count() <= 0 ||
        keepalive_interval.count() > kMaxKeepaliveMs || dead_after <= keepalive_interval ||
        peer_keepalive_limit < keepalive_interval ||
        peer_keepalive_limit.count() > kMaxKeepaliveMs || offer_first.count() <= 0 ||
        offer_max < offer_first || max_message == 0 || max_message > kMaxMessageSize)
        return fail(errc::bad_argument);
    return {};
}

// ---------------------------------------------------------------------------------------
// Deferred handlers: every entry point settles on the way out, so that handlers run once
// the link's state is consistent and may call back into it.

class Link::Settle {
public:
    explicit Settle(Link& link) noexcept : link_(link) { ++link_.depth_; }
    ~Settle()
    {
        if (link_.depth_ == 1)
            link_.settle();
        --link_.depth_;
    }
    Settle(const Settle&) = delete;
    Settle& operator=(const Settle&) = delete;

private:
    Link& link_;
};

void Link::settle()
{
    // Handlers first: a consumer cursor goes out only after the messages it releases
    // were handed over, and sends issued by handlers share the batch's one signal.
    for (;;) {
        auto batch = std::move(deferred_);
        deferred_.clear();
        for (auto& fn : batch)
            fn();
        // A handler that re-armed may have been handed the next message, whose own
        // handler is now deferred: publish the cursor only once every handover ran.
        if (!deferred_.empty())
            continue;
        if (up_)
            flush_cursors();
        if (deferred_.empty())
            return;
    }
}

void Link::emit(LinkEvent event)
{
    if (on_event_)
        defer([this, event] {
            if (on_event_)
                on_event_(event);
        });
}

// ---------------------------------------------------------------------------------------
// Construction and handshake

Link::Link(Port& port, const LinkOptions& options)
    : port_(port), opt_(options), rng_(std::random_device{}())
{
    channels_.reserve(opt_.channels);
    for (uint32_t c = 0; c < opt_.channels; ++c)
        channels_.push_back(std::unique_ptr<Channel>(new Channel(*this, c, opt_.max_message)));
}

Link::~Link()
{
    if (have_dmb_)
        port_.unregister_dmb(dmb_.token);
}

Result<void> Link::start(Clock::time_point now)
{
    now_ = now;
    if (auto v = opt_.validate(); !v)
        return v;
    Settle settle(*this);
    return begin_epoch(now);
}

Channel& Link::open_channel(uint32_t index, ChannelMode mode)
{
    Settle settle(*this);
    Channel& ch = *channels_.at(index);
    if (!ch.open_) {
        ch.open_ = true;
        ch.mode_ = mode;
        check_modes(ch);
        // The peer learns of it before any data we send on it (stores are ordered).
        (void)announce_channels();
    }
    return ch;
}

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
        ch->peer_open_ = (set->open & bit) != 0;
        ch->peer_mode_ = (set->stream & bit) != 0 ? ChannelMode::stream : ChannelMode::message;
        check_modes(*ch);
    }
    return true;
}

void Link::check_modes(Channel& ch)
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

bool Link::reserved_area_clear() const noexcept
{
    const auto area =
        dmb_.memory.subspan(kReservedAreaOffset, kRingAreaOffset - kReservedAreaOffset);
    std::array<std::byte, kRingAreaOffset - kReservedAreaOffset> copy;
    std::memcpy(copy.data(), area.data(), copy.size());
    return std::all_of(copy.begin(), copy.end(), [](std::byte b) { return b == std::byte{0}; });
}

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
    if (!have_dmb_)
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
            emit({LinkEvent::Kind::reset_received, make_error_code(errc::link_reset), reason, 0});
            restart(make_error_code(errc::link_reset), std::nullopt, 0, now);
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
    if (reason) {
        const uint64_t reset =
            dmb_.token | (uint64_t{epoch_} << 16) | static_cast<uint16_t>(*reason);
        (void)port_.send_event(kEventReset, reset);
        emit({LinkEvent::Kind::reset_sent, why, *reason, channel});
    }
    const bool was_up = up_;
    if (was_up && have_dmb_)
        harvest_confirmations();
    // A reset either side sent fails the waiters with link_reset, peer loss with peer_gone.
    const std::error_code waiters = reason || why == errc::link_reset
                                        ? make_error_code(errc::link_reset)
                                        : make_error_code(errc::peer_gone);
    for (auto& ch : channels_) {
        fail_waiters(*ch, waiters);
        ch->reset_rings();
    }
    up_ = accepted_ = wrote_cb_ = have_peer_ = false;
    rx_channels_ = rx_ring_ = tx_ring_ = peer_max_message_ = 0;
    peer_channels_ = 0;
    bad_control_since_.reset();
    if (was_up) {
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
    (void)begin_epoch(now);
}

void Link::on_peer_disabled(Clock::time_point now)
{
    now_ = now;
    Settle settle(*this);
    if (up_ || have_peer_)
        restart(make_error_code(errc::peer_gone), std::nullopt, 0, now);
}

void Link::tick(Clock::time_point now)
{
    now_ = now;
    Settle settle(*this);
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
    if (!have_dmb_)
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
        Channel& ch = *channels_[c];
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
        Channel& ch = *channels_[c];
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

bool Link::service_rx(Channel& ch)
{
    // A ring is read only in the mode its writer announced.
    if (!ch.rx_ || !ch.peer_open_ || ch.mismatch_)
        return true;
    if (ch.mode_ == ChannelMode::message) {
        // Pull records only for a reader that waits or a bounded inbox: a reader that
        // stalls leaves its data in the ring, and the writer runs out of credit.
        if (!ch.receivers_.empty() || ch.inbox_bytes_ < rx_ring_) {
            auto r =
                ch.reader_.poll(rx_ring(ch.index_), *ch.rx_, [&ch](std::vector<std::byte>&& m) {
                    ch.inbox_bytes_ += m.size();
                    ch.inbox_.push_back({std::move(m), ch.reader_.message_begin()});
                });
            if (!r) {
                violation(ResetReason::record, r.error(), ch.index_);
                return false;
            }
        }
        while (!ch.receivers_.empty() && !ch.inbox_.empty()) {
            auto handler = std::move(ch.receivers_.front());
            ch.receivers_.pop_front();
            auto message = std::move(ch.inbox_.front().message);
            ch.inbox_.pop_front();
            ch.inbox_bytes_ -= message.size();
            ++ch.stats_.messages_received;
            ch.stats_.bytes_received += message.size();
            defer([h = std::move(handler), m = std::move(message)]() mutable {
                h({}, std::move(m));
            });
        }
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
    return true;
}

bool Link::service_tx(Channel& ch)
{
    if (ch.mismatch_)
        return true;
    while (!ch.unsent_.empty()) {
        Channel::SendOp& op = ch.unsent_.front();
        const bool ok =
            ch.mode_ == ChannelMode::message ? write_message(ch, op) : write_stream(ch, op);
        if (!up_)
            return false;
        if (!ok)
            return true;  // out of credit: wait for the peer's consumer cursor
        op.end = ch.tx_->producer();
        ch.unconfirmed_.push_back(std::move(op));
        ch.unsent_.pop_front();
        // An empty stream send ends where the peer already confirmed.
        complete_sends(ch, ch.tx_->consumer());
    }
    return true;
}

bool Link::store_peer(uint64_t offset, std::span<const std::byte> data, bool signal)
{
    auto r = port_.store(peer_.token, offset, data, signal);
    if (!r) {
        lose(r.error());
        return false;
    }
    return true;
}

bool Link::write_message(Channel& ch, Channel::SendOp& op)
{
    TxRing& tx = *ch.tx_;
    const uint64_t base = kRingAreaOffset + uint64_t{ch.index_} * tx_ring_;
    while (!op.started || op.done < op.data.size()) {
        const std::size_t remaining = op.data.size() - op.done;
        const std::size_t at = tx.write_offset();
        const std::size_t to_end = tx_ring_ - at;
        const std::size_t need = remaining == 0 ? kRecordHeaderSize : kRecordHeaderSize + 8;
        if (to_end < need) {
            // Too little room before the ring's end: pad to it, go on at offset 0.
            if (tx.free_space() < to_end)
                return false;
            static const std::array<std::byte, kRecordHeaderSize> padding{};
            if (!store_peer(base + at, padding, false))
                return false;
            tx.produce(to_end);
            ch.prod_dirty_ = true;
            continue;
        }
        const std::size_t room = std::min(tx.free_space(), to_end);
        if (room < need)
            return false;
        // Pieces of at most a quarter ring, each published as it is written once a quarter
        // is pending: the reader copies one out while the next goes in.
        const std::size_t piece =
            std::min({remaining, (room - kRecordHeaderSize) & ~std::size_t{7}, pipeline_piece()});
        RecordHeader h;
        h.length = static_cast<uint32_t>(piece);
        h.flags = static_cast<uint8_t>((op.started ? 0 : kRecordFirst) |
                                       (piece == remaining ? kRecordLast : 0));
        if (piece <= kSmallPiece) {
            // Header and payload in one store: small messages cost one store, not two.
            std::array<std::byte, kRecordHeaderSize + kSmallPiece> record;
            h.encode(std::span(record).first<kRecordHeaderSize>());
            if (piece > 0)
                std::memcpy(record.data() + kRecordHeaderSize, op.data.data() + op.done, piece);
            if (!store_peer(base + at, std::span(record).first(kRecordHeaderSize + piece), false))
                return false;
        } else {
            std::array<std::byte, kRecordHeaderSize> raw;
            h.encode(raw);
            if (!store_peer(base + at, raw, false) ||
                !store_peer(base + at + kRecordHeaderSize, op.data.subspan(op.done, piece), false))
                return false;
        }
        tx.produce(h.footprint());
        op.done += piece;
        op.started = true;
        ch.prod_dirty_ = true;
        if (!publish_early(ch))
            return false;
    }
    return true;
}

bool Link::write_stream(Channel& ch, Channel::SendOp& op)
{
    TxRing& tx = *ch.tx_;
    const uint64_t base = kRingAreaOffset + uint64_t{ch.index_} * tx_ring_;
    while (op.done < op.data.size()) {
        const std::size_t n =
            std::min({op.data.size() - op.done, tx.free_space(), tx_ring_ - tx.write_offset()});
        if (n == 0)
            return false;
        if (!store_peer(base + tx.write_offset(), op.data.subspan(op.done, n), false))
            return false;
        tx.produce(n);
        op.done += n;
        ch.prod_dirty_ = true;
        if (!publish_early(ch))
            return false;
    }
    return true;
}

std::size_t Link::pipeline_piece() const noexcept
{
    return std::max<std::size_t>(tx_ring_ / 4 - kRecordHeaderSize, kSmallPiece) & ~std::size_t{7};
}

bool Link::publish_early(Channel& ch)
{
    // A quarter ring written and not yet published: publish it now, with the signal, so
    // that the reader starts on it. The rest of the batch still goes out with one signal.
    const uint64_t prod = ch.tx_->producer();
    if (prod - ch.tx_->published() < tx_ring_ / 4)
        return true;
    const std::size_t at = prod_offset(ch.index_);
    put_be64(cursor_shadow_, at - kProducerCursorsOffset, prod);
    if (!store_peer(at, std::span(cursor_shadow_).subspan(at - kProducerCursorsOffset, 8), true))
        return false;
    ch.tx_->mark_published();
    ch.prod_dirty_ = false;
    return true;
}

void Link::flush_cursors()
{
    // Every cursor of the batch goes out in one store with the signal, so that one store
    // and one interrupt cover the whole batch. The store spans from the first changed
    // cursor to the last; the unchanged ones between are rewritten from the shadow of
    // what we published (we are the only writer of the peer's cursor area).
    std::size_t lo = cursor_shadow_.size();
    std::size_t hi = 0;
    auto put = [&](std::size_t offset, uint64_t value) {
        const std::size_t at = offset - kProducerCursorsOffset;
        put_be64(cursor_shadow_, at, value);
        lo = std::min(lo, at);
        hi = std::max(hi, at + 8);
    };
    for (auto& ch : channels_) {
        if (ch->prod_dirty_ && ch->tx_) {
            put(prod_offset(ch->index_), ch->tx_->producer());
            ch->tx_->mark_published();
            ch->prod_dirty_ = false;
        }
        if (ch->cons_dirty_ && ch->rx_) {
            put(cons_offset(ch->index_), ch->rx_->publish());
            ch->cons_dirty_ = false;
        }
    }
    if (hi > lo)
        (void)store_peer(kProducerCursorsOffset + lo,
                         std::span(cursor_shadow_).subspan(lo, hi - lo), true);
}

void Link::complete_sends(Channel& ch, uint64_t cons)
{
    while (!ch.unconfirmed_.empty() && ch.unconfirmed_.front().end <= cons) {
        auto op = std::move(ch.unconfirmed_.front());
        ch.unconfirmed_.pop_front();
        ++ch.stats_.messages_sent;
        ch.stats_.bytes_sent += op.data.size();
        defer([h = std::move(op.handler)] { h({}); });
    }
}

void Link::harvest_confirmations()
{
    // The peer may have confirmed sends just before it went: those were delivered and
    // complete as such; only the rest fail. A cursor that does not validate confirms
    // nothing.
    for (auto& ch : channels_) {
        if (!ch->tx_)
            continue;
        const uint64_t cons = load_cursor(cons_offset(ch->index_));
        if (ch->tx_->update_consumer(cons))
            complete_sends(*ch, cons);
    }
}

void Link::fail_waiters(Channel& ch, std::error_code why)
{
    auto fail_send = [&](Channel::SendOp& op) {
        ++ch.stats_.sends_failed;
        ch.stats_.bytes_failed += op.data.size();
        defer([h = std::move(op.handler), why] { h(why); });
    };
    for (auto& op : ch.unconfirmed_)
        fail_send(op);
    for (auto& op : ch.unsent_)
        fail_send(op);
    ch.unconfirmed_.clear();
    ch.unsent_.clear();
    for (auto& h : ch.receivers_)
        defer([h = std::move(h), why] { h(why, {}); });
    ch.receivers_.clear();
    for (auto& op : ch.reads_)
        defer([h = std::move(op.handler), why] { h(why, 0); });
    ch.reads_.clear();
}

// ---------------------------------------------------------------------------------------
// Channel

void Channel::reset_rings() noexcept
{
    tx_.reset();
    rx_.reset();
    reader_ = MessageReader(reader_.max_message());
    inbox_.clear();
    inbox_bytes_ = 0;
    prod_dirty_ = cons_dirty_ = false;
    moved_ = false;
    peer_open_ = mismatch_ = false;
    peer_mode_ = ChannelMode::message;
}

void Channel::async_send(std::span<const std::byte> data, SendHandler done)
{
    Link::Settle settle(*link_);
    std::error_code refused;
    if (!open_)
        refused = make_error_code(errc::bad_argument);
    else if (mode_ == ChannelMode::message && data.size() > reader_.max_message())
        refused = make_error_code(errc::message_too_large);
    else if (!link_->up_)
        refused = make_error_code(errc::peer_gone);
    else if (index_ >= link_->rx_channels_)
        refused = make_error_code(errc::no_peer_channel);  // writing would reset the link
    else if (mismatch_)
        refused = make_error_code(errc::mode_mismatch);
    else if (mode_ == ChannelMode::message && data.size() > link_->peer_max_message_)
        refused = make_error_code(errc::message_too_large);  // the peer would reset the link
    if (refused) {
        ++stats_.sends_failed;
        stats_.bytes_failed += data.size();
        link_->defer([h = std::move(done), refused] { h(refused); });
        return;
    }
    unsent_.push_back(SendOp{data, 0, false, 0, std::move(done)});
    if (unsent_.size() == 1)
        (void)link_->service_tx(*this);
}

void Channel::async_receive(ReceiveHandler done)
{
    Link::Settle settle(*link_);
    if (!open_ || mode_ != ChannelMode::message) {
        link_->defer([h = std::move(done)] { h(make_error_code(errc::bad_argument), {}); });
        return;
    }
    if (mismatch_) {
        link_->defer([h = std::move(done)] { h(make_error_code(errc::mode_mismatch), {}); });
        return;
    }
    receivers_.push_back(std::move(done));
    if (link_->up_)
        (void)link_->service_rx(*this);
}

void Channel::async_read_some(std::span<std::byte> buffer, ReadHandler done)
{
    Link::Settle settle(*link_);
    if (!open_ || mode_ != ChannelMode::stream || buffer.empty()) {
        link_->defer([h = std::move(done)] { h(make_error_code(errc::bad_argument), 0); });
        return;
    }
    if (mismatch_) {
        link_->defer([h = std::move(done)] { h(make_error_code(errc::mode_mismatch), 0); });
        return;
    }
    reads_.push_back(ReadOp{buffer, std::move(done)});
    if (link_->up_)
        (void)link_->service_rx(*this);
}

}  // namespace ism::link
