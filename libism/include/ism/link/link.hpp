// SPDX-License-Identifier: MIT
// Link: one end of the DMB transport between two ISM functions, with multiplexed
// channels (docs/protocol.md, version 3).
//
// The link is a state machine with no thread and no event loop of its own: its owner
// calls on_event() for the peer's OFFER/RESET events, on_peer_disabled() for the device's
// "GID disabled" event, poll() when our DMB was signalled (or continuously, in polling
// mode) and tick() at next_deadline(). ism/link/endpoint.hpp does all of that on a
// Boost.Asio event loop. It reaches the device only through a Port.
//
// Delivery: a send completes with success only once the peer has consumed every byte of
// it (its consumer cursor passed the end); when the link goes down first, it completes
// with errc::peer_gone (or errc::link_reset after a protocol violation). Bytes are never
// sent twice, so a success means delivered exactly once and an error means the message
// may or may not have arrived.
// After a loss the link starts a new epoch by itself; channels are told (down, then up).
//
// Threading: everything runs on the owner's one thread. Handlers are invoked after the
// link's own state is settled, so they may call back into the link (send, receive).
// A Link must not be destroyed from inside one of its handlers. Handlers must not block:
// the keepalive goes out from the same thread, and a handler blocking longer than the
// peer's dead_after makes the peer declare us dead (docs/protocol.md section 6).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include "ism/link/channel.hpp"
#include "ism/link/port.hpp"
#include "ism/link/wire.hpp"
#include "ism/result.hpp"

namespace ism::link {

using Clock = std::chrono::steady_clock;

inline constexpr std::size_t kMinDmbSize = std::size_t{16} << 10;
inline constexpr std::size_t kMaxDmbSize = std::size_t{1} << 20;

struct LinkOptions {
    uint64_t peer_gid = 0;                        // the configured peer (used by the Endpoint)
    std::size_t dmb_size = std::size_t{1} << 20;  // our DMB: a power of two, 16 KiB .. 1 MiB
    uint32_t channels = 16;                       // 1..32; each ring is (dmb - 1024) / channels
    std::chrono::milliseconds keepalive_interval{1000};  // 1 ms .. 1 h, announced to the peer
    // No keepalive for this long: the peer is dead. A peer that announces a longer
    // keepalive interval is given three of its intervals, but of at most
    // peer_keepalive_limit: a peer announcing an hour is not given three hours.
    std::chrono::milliseconds dead_after{3000};
    std::chrono::milliseconds peer_keepalive_limit{10000};  // >= keepalive_interval
    std::chrono::milliseconds offer_first{100};  // OFFER retry: first interval, doubling...
    std::chrono::milliseconds offer_max{1000};   // ...up to this
    // Largest message a channel accepts; announced to the peer, whose sends larger than
    // this fail on its side with errc::message_too_large.
    std::size_t max_message = kMaxMessageSize;
    // Sends a channel holds at most (written or not, not yet confirmed); more are
    // refused with errc::send_queue_full.
    std::size_t send_queue = 1024;
    // Receive budget: bytes the link holds outside its rings, over all its channels, in
    // messages being assembled for async_receive(handler) and messages read out ahead,
    // waiting for the application (docs/protocol.md section 9). A message that does not
    // fit stays in its ring, holding its channel's credit: the peer's sender waits, nothing
    // is lost. Receives into the caller's buffer copy straight from the ring and cost none
    // of it. A message larger than the budget reaches async_receive(handler) only while the
    // link holds nothing else. The default, 4 MiB, is four times the largest DMB (every
    // ring's worth of small messages read ahead, several times over) and a 64th of the
    // 32 × 16 MiB the link could hold without it.
    std::size_t rx_budget = std::size_t{4} << 20;

    /// Checks ranges and that every ring gets at least kMinRingSize bytes.
    [[nodiscard]] Result<void> validate() const;
};

/// What the link tells its owner (ismd logs these).
struct LinkEvent {
    enum class Kind : uint8_t {
        up,              // handshake complete (again)
        down,            // peer lost or link reset: `error` says why
        reset_sent,      // we reset the link: the peer broke `reason` on `channel`
        reset_received,  // the peer reset the link with `reason`
        offer_refused,   // an OFFER we could not accept (`reason`: version or control)
        channel_error,   // `channel` is unusable, the link is fine: `error` says why
                         // (errc::mode_mismatch)
    };
    Kind kind = Kind::down;
    std::error_code error;
    ResetReason reason = ResetReason::control;
    uint32_t channel = 0;
};

class ChannelImpl;

class Link {
public:
    using EventHandler = std::function<void(const LinkEvent&)>;

    Link(Port& port, const LinkOptions& options);
    ~Link();
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    /// Registers our DMB and starts offering it to the peer.
    Result<void> start(Clock::time_point now);
    /// Closes our end for good: completes every pending operation with
    /// std::errc::operation_canceled, sends RESET (reason shutdown) so that the peer
    /// knows at once, and unregisters our DMB. Later operations complete the same way;
    /// the link no longer reacts to anything. ~Link does it too.
    void shutdown();
    /// A service found that the peer broke the service's own protocol on `channel` (a
    /// frame it cannot parse, a reply to nothing): resets the link as the link does for
    /// its own violations (docs/protocol.md section 7, reason 8): RESET to the peer,
    /// every waiter fails with errc::link_reset, and a new epoch starts clean for every
    /// channel. Nothing happens while the link is down or stopped.
    void reset(uint32_t channel, std::error_code why);
    /// Opens channel `index` (< options.channels) in `mode`; data the peer sent on it
    /// before waits in its ring. Opening an open channel returns it unchanged; a closed
    /// one (Channel::close) opens again, in either mode.
    Channel& open_channel(uint32_t index, ChannelMode mode);
    /// Channel `index` if it was opened, else null.
    [[nodiscard]] const Channel* channel(uint32_t index) const noexcept;

    /// A software event from the peer's GID.
    void on_event(uint32_t code, uint64_t info, Clock::time_point now);
    /// The device reported the peer's GID disabled.
    void on_peer_disabled(Clock::time_point now);
    /// Our DMB may have changed: read cursors, deliver, return credit, send.
    void poll(Clock::time_point now);
    /// Timers: OFFER retries, keepalive, dead-peer detection.
    void tick(Clock::time_point now);
    [[nodiscard]] Clock::time_point next_deadline() const noexcept;

    void set_event_handler(EventHandler handler) { on_event_ = std::move(handler); }

    [[nodiscard]] bool up() const noexcept { return up_; }
    [[nodiscard]] const LinkOptions& options() const noexcept { return opt_; }
    /// Our current DMB (token 0 while none is registered).
    [[nodiscard]] uint64_t own_token() const noexcept { return have_dmb_ ? dmb_.token : 0; }
    [[nodiscard]] uint16_t epoch() const noexcept { return epoch_; }
    [[nodiscard]] uint8_t version() const noexcept { return version_; }
    /// Handshakes completed so far (1 after the first, +1 per recovery).
    [[nodiscard]] uint64_t ups() const noexcept { return ups_; }
    /// Bytes charged to the receive budget now (LinkOptions::rx_budget): messages being
    /// assembled and messages read out, not yet handed to the application.
    [[nodiscard]] std::size_t rx_held() const noexcept { return rx_held_; }
    /// The most rx_held() has been since the link was made.
    [[nodiscard]] std::size_t rx_held_peak() const noexcept { return rx_held_peak_; }
    /// Handlers run so far. A poll() that ran none gave the application nothing: its
    /// owner may poll on without first running the rest of its event loop.
    [[nodiscard]] uint64_t handlers_run() const noexcept { return handlers_run_; }

    /// Handlers must not throw. One that does is caught (it cannot reach poll(), tick()
    /// or a destructor, and the handlers after it still run) and kept here: the number
    /// caught, and the first one not yet taken.
    [[nodiscard]] uint64_t handler_exceptions() const noexcept { return handler_exceptions_; }
    std::exception_ptr take_handler_exception() noexcept
    {
        return std::exchange(handler_exception_, nullptr);
    }

private:
    friend class Channel;
    friend class ChannelImpl;
    class Settle;

    struct PeerEnd {
        uint64_t token = 0;
        uint16_t epoch = 0;
        std::size_t dmb_size = 0;
    };

    Result<void> begin_epoch(Clock::time_point now);
    void send_offer(Clock::time_point now);
    [[nodiscard]] Offer our_offer() const noexcept;
    void take_offer(const Offer& offer, uint8_t version, Clock::time_point now);
    bool write_control(bool fresh);
    void read_control(Clock::time_point now);
    void go_up(Clock::time_point now);
    [[nodiscard]] ChannelSet our_channels() const noexcept;
    bool announce_channels();
    bool take_peer_channels(uint64_t word);
    void check_modes(ChannelImpl& ch);
    bool take_peer_fin(ChannelImpl& ch, uint64_t word);
    void end_tx_session(ChannelImpl& ch, std::error_code why);
    bool write_fin(ChannelImpl& ch);
    void pass_fin(ChannelImpl& ch);
    void discard_rx(ChannelImpl& ch);
    [[nodiscard]] bool reserved_area_clear() const noexcept;
    /// Tears the epoch down: sends RESET(`reason`) when given, fails every waiter (with
    /// link_reset after a reset either side sent, peer_gone otherwise), drops our DMB and
    /// starts a new epoch.
    void restart(std::error_code why, std::optional<ResetReason> reason, uint32_t channel,
                 Clock::time_point now);
    // Both run at the time the owner last gave (now_): the link reads no clock itself.
    void lose(std::error_code why) { restart(why, std::nullopt, 0, now_); }
    void violation(ResetReason reason, std::error_code why, uint32_t channel)
    {
        restart(why, reason, channel, now_);
    }

    bool service_all(bool every_cursor);
    bool service_rx(ChannelImpl& ch);
    bool serve_messages(ChannelImpl& ch);
    template <class Op>
    void end_of_stream(Op& op);
    template <class Op>
    void hand_over(ChannelImpl& ch, Op& op, std::vector<std::byte>&& message);
    // The receive budget (rx_budget.cpp).
    bool admit(ChannelImpl& ch, std::size_t total, bool whole);
    void charge(ChannelImpl& ch, std::size_t n) noexcept;
    void uncharge(ChannelImpl& ch, std::size_t n) noexcept;
    [[nodiscard]] std::size_t evictable(const ChannelImpl& keep) const;
    void evict(const ChannelImpl& keep, std::size_t need);
    bool wake_budget_waiters();
    void forget_budget(ChannelImpl& ch) noexcept;
    bool service_tx(ChannelImpl& ch);
    bool write_message(ChannelImpl& ch);
    bool write_stream(ChannelImpl& ch);
    [[nodiscard]] std::size_t pipeline_piece() const noexcept;
    bool publish_early(ChannelImpl& ch);
    bool store_peer(uint64_t offset, std::span<const std::byte> data, bool signal);
    void flush_cursors();
    void complete_sends(ChannelImpl& ch, uint64_t cons);
    void harvest_confirmations();
    void fail_waiters(ChannelImpl& ch, std::error_code why);
    void fail_receivers(ChannelImpl& ch, std::error_code why);

    [[nodiscard]] std::span<const std::byte> rx_ring(uint32_t c) const noexcept;
    [[nodiscard]] uint64_t load_cursor(std::size_t offset) const noexcept;
    void emit(LinkEvent event);
    void defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }
    void settle();

    Port& port_;
    LinkOptions opt_;
    EventHandler on_event_;
    std::vector<std::unique_ptr<ChannelImpl>> channels_;
    std::minstd_rand rng_;

    OwnDmb dmb_;
    bool have_dmb_ = false;
    uint16_t epoch_ = 0;

    PeerEnd peer_;
    bool have_peer_ = false;
    uint8_t version_ = 0;
    uint32_t tx_ring_ = 0;      // ring size in the peer's DMB (we announce it)
    uint32_t rx_channels_ = 0;  // geometry of our DMB, as the peer announced it
    uint32_t rx_ring_ = 0;
    uint32_t peer_max_message_ = 0;     // as the peer announced it
    uint64_t peer_channels_ = 0;        // the peer's ChannelSet word, as last taken
    bool peer_channels_stale_ = false;  // a close mark was seen: take the set again

    bool wrote_cb_ = false;  // our control block is in the peer's DMB for its epoch
    bool accepted_ = false;  // the peer's control block in our DMB names our epoch
    bool up_ = false;
    uint64_t ups_ = 0;

    // The peer's cursor area (prod[32], cons[32]) as we last stored it.
    std::array<std::byte, std::size_t{2} * 8 * kMaxChannels> cursor_shadow_{};

    bool offering_ = false;
    Clock::time_point next_offer_{};
    std::chrono::milliseconds offer_backoff_{};
    // A control block that does not parse during the handshake may be half written;
    // it resets the link only when it still fails kControlGrace later.
    static constexpr std::chrono::milliseconds kControlGrace{200};
    std::optional<Clock::time_point> bad_control_since_;
    std::error_code bad_control_error_;

    uint64_t keepalive_out_ = 0;
    uint64_t keepalive_in_ = 0;
    Clock::time_point keepalive_seen_{};
    uint32_t peer_keepalive_ms_ = 0;
    std::chrono::milliseconds dead_after_{};  // ours, or three of the peer's intervals
    Clock::time_point next_keepalive_{};

    // The receive budget: bytes charged over all channels, the most ever, and the one
    // channel whose receiver waits for room (it is kept free of other admissions).
    std::size_t rx_held_ = 0;
    std::size_t rx_held_peak_ = 0;
    std::optional<uint32_t> rx_waiter_;
    std::size_t rx_waiter_needs_ = 0;
    bool rx_freed_ = false;   // a charge went back: channels waiting for room may go on
    bool rx_waking_ = false;  // wake_budget_waiters() runs

    bool stopped_ = false;  // shutdown(): nothing more happens
    uint64_t handler_exceptions_ = 0;
    std::exception_ptr handler_exception_;
    Clock::time_point now_{};  // the time of the entry point running (or the last one)
    int depth_ = 0;
    std::vector<std::function<void()>> deferred_;
    std::vector<std::function<void()>> running_;  // the batch settle() runs (kept for its capacity)
    uint64_t handlers_run_ = 0;
};

}  // namespace ism::link
