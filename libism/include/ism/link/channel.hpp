// SPDX-License-Identifier: MIT
// Channel: one of a link's independent, flow-controlled channels (docs/protocol.md
// section 5), in message or byte-stream mode. A Channel belongs to its Link, which
// creates it (Link::open_channel) and outlives every reference to it; its state lives in
// the link's sources, not here.
//
// Handlers run on the link owner's thread, after the link's state is settled (never
// inline in the call that queued them). They must not block (see link.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <system_error>
#include <vector>

namespace ism::link {

enum class ChannelMode : uint8_t { message, stream };

struct ChannelStats {
    uint64_t messages_sent = 0;  // sends the peer confirmed (message mode: messages)
    uint64_t bytes_sent = 0;
    uint64_t sends_failed = 0;  // sends completed with an error: may or may not have arrived
    uint64_t bytes_failed = 0;
    uint64_t messages_received = 0;
    uint64_t bytes_received = 0;
};

class Link;

class Channel {
public:
    using SendHandler = std::function<void(std::error_code)>;
    using ReceiveHandler = std::function<void(std::error_code, std::vector<std::byte>)>;
    using ReadHandler = std::function<void(std::error_code, std::size_t)>;
    using StateHandler = std::function<void(bool up)>;
    /// Names one pending operation, for cancel(); never 0.
    using OpId = uint64_t;

    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;

    [[nodiscard]] uint32_t index() const noexcept { return index_; }
    [[nodiscard]] ChannelMode mode() const noexcept { return mode_; }

    /// Message mode: sends one message. Stream mode: sends the bytes. `data` must stay
    /// valid until `done` runs. Sends complete in order. Refused at once with
    /// bad_argument (channel not open), message_too_large (above our max_message or the
    /// one the peer announced), peer_gone (link down), no_peer_channel (the peer's end
    /// has fewer channels than this index) or mode_mismatch (the peer has the channel
    /// open in the other mode), channel_closed (our sending side is shut). A send
    /// pending when the peer closes its end completes with errc::peer_closed.
    OpId async_send(std::span<const std::byte> data, SendHandler done);
    /// Like async_send, but `done` runs as soon as every byte is in the peer's ring: the
    /// buffer is reusable then, without waiting a round trip for the peer's application.
    /// Whether it was delivered is not reported per send (the channel's stats and state
    /// handler tell of a loss); refusals and failures before the last byte went out are.
    /// Both are refused with send_queue_full while LinkOptions::send_queue are pending.
    OpId async_write(std::span<const std::byte> data, SendHandler done);
    /// Receives and reads complete with errc::end_of_stream once for each time the peer
    /// ended its sending side (shutdown_send, close), after everything it sent before; a
    /// receive after that waits for what the peer sends once it opens again.
    ///
    /// Message mode: the next message, in a vector of its own (one allocation and one
    /// copy more than the receive below).
    OpId async_receive(ReceiveHandler done);
    /// Message mode: the next message, copied once out of the ring straight into `buffer`
    /// (valid until `done` runs); `done` gets its length. A message longer than the
    /// buffer is dropped whole and `done` gets errc::message_too_large with the length
    /// it had: a buffer of the link's max_message never falls short.
    OpId async_receive(std::span<std::byte> buffer, ReadHandler done);
    /// Stream mode: at least one byte, at most buffer.size(), into `buffer` (valid until
    /// `done` runs).
    OpId async_read_some(std::span<std::byte> buffer, ReadHandler done);
    /// Ends our sending side (half-close): the peer's receives and reads complete with
    /// errc::end_of_stream after every byte and message sent before, while the other
    /// direction keeps flowing. Later sends are refused with errc::channel_closed until
    /// the channel is closed and opened again. Nothing happens on a closed channel.
    void shutdown_send();
    /// Closes our end (docs/protocol.md section 5, "Closing a channel"): every pending
    /// receive, read and send completes with std::errc::operation_canceled (a send whose
    /// bytes went out may still arrive; one begun is still written to its end), the peer
    /// reads end_of_stream after what we sent before and is told false, and what the peer
    /// sent that we did not read is dropped, up to the end of its current stream. The
    /// channel is opened again with Link::open_channel, in either mode; until then its
    /// operations are refused with bad_argument. Nothing happens on a closed channel.
    void close();
    /// Cancels a receive or read that has not begun taking a message or bytes, or a send
    /// none of whose bytes went out: it completes with std::errc::operation_canceled, and
    /// the channel stays usable. False when `op` is unknown, done or already begun.
    bool cancel(OpId op);
    /// Told false when the link goes down and true when it comes (back) up: changes only,
    /// Link::up() is the state now.
    void set_state_handler(StateHandler handler) { on_state_ = std::move(handler); }
    /// Told true when the peer opens its end of this channel (its channel set, docs/
    /// protocol.md section 4), false when the peer closes it (at once, not after the data
    /// it sent before: that is still delivered, then end_of_stream) and when the link
    /// that carried it goes down. A peer closing and reopening quickly is told false,
    /// then true. Changes only; peer_open() is the state now.
    void set_peer_handler(StateHandler handler) { on_peer_ = std::move(handler); }
    [[nodiscard]] bool peer_open() const noexcept;

    [[nodiscard]] const ChannelStats& stats() const noexcept { return stats_; }
    /// Sends not yet confirmed by the peer.
    [[nodiscard]] std::size_t pending_sends() const noexcept;
    /// Receives and reads waiting.
    [[nodiscard]] std::size_t pending_receives() const noexcept;

protected:
    Channel(Link& link, uint32_t index) noexcept : link_(&link), index_(index) {}
    ~Channel() = default;

    Link* link_;
    uint32_t index_;
    ChannelMode mode_ = ChannelMode::message;
    bool open_ = false;
    StateHandler on_state_;
    StateHandler on_peer_;
    ChannelStats stats_;
    OpId next_op_ = 0;

private:
    friend class Link;
};

}  // namespace ism::link
