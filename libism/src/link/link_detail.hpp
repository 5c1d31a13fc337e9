// SPDX-License-Identifier: MIT
// The link's internals shared by its source files: a channel's state, the deferral
// guard of every entry point, and the DMB's offsets. Not installed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "ism/byte_order.hpp"
#include "ism/link/link.hpp"
#include "ism/link/message_reader.hpp"
#include "ism/link/ring.hpp"
#include "ism/link/wire.hpp"

namespace ism::link {
namespace detail {

// Pieces up to this size are stored together with their header.
inline constexpr std::size_t kSmallPiece = 1024 - kRecordHeaderSize;

inline std::array<std::byte, 8> be64_bytes(uint64_t v)
{
    std::array<std::byte, 8> b{};
    store_be64(b, 0, v);
    return b;
}

inline std::size_t prod_offset(uint32_t c)
{
    return kProducerCursorsOffset + std::size_t{8} * c;
}

inline std::size_t cons_offset(uint32_t c)
{
    return kConsumerCursorsOffset + std::size_t{8} * c;
}

inline std::size_t fin_offset(uint32_t c)
{
    return kFinOffset + std::size_t{8} * c;
}

}  // namespace detail

// One channel's state: the public Channel is its face.
class ChannelImpl final : public Channel {
public:
    ChannelImpl(Link& link, uint32_t index, std::size_t max_message) noexcept
        : Channel(link, index), reader_(max_message)
    {
    }

    struct SendOp {
        OpId id = 0;
        std::span<const std::byte> data;
        std::size_t done = 0;
        bool started = false;
        uint64_t end = 0;  // producer cursor after its last byte
        SendHandler handler;
        bool when_written = false;  // async_write: `handler` runs once it is all written
        ChannelMode mode = ChannelMode::message;  // the mode it is written in
        // An end-of-stream mark instead of data (docs/protocol.md section 5, "Closing"):
        // no handler, written once the peer passed our previous one.
        bool fin = false;
        bool fin_close = false;  // ... that also says our whole end closed
    };
    struct ReadOp {
        OpId id = 0;
        std::span<std::byte> buffer;
        ReadHandler handler;
    };
    // A message receive: into a vector (`whole`) or into the caller's buffer (`into`).
    struct RecvOp {
        OpId id = 0;
        ReceiveHandler whole;
        std::span<std::byte> buffer;
        ReadHandler into;
        bool started = false;  // its message is being copied in
        std::size_t length = 0;
    };

    void reset_rings() noexcept;
    OpId send(std::span<const std::byte> data, SendHandler done, bool when_written);
    // Completes `op` with `why` (it may or may not have arrived) and counts it failed.
    void fail_send(SendOp& op, std::error_code why);
    /// Queues an end-of-stream mark after every send queued before it.
    void queue_fin(bool close);

    // The peer's end of this channel, as its control block announces it.
    bool peer_open_ = false;
    ChannelMode peer_mode_ = ChannelMode::message;
    bool mismatch_ = false;  // both open, in different modes: nothing flows

    // Sessions (docs/protocol.md section 5, "Closing a channel").
    bool tx_open_ = false;            // our sending side is open: a fin would end it
    uint64_t fin_end_ = 0;            // our last mark's end: the next waits for cons >= it
    uint64_t peer_fin_word_ = 0;      // the peer's fin word as last taken
    std::optional<uint64_t> rx_fin_;  // end of the peer's mark not yet passed
    ChannelMode rx_fin_mode_ = ChannelMode::message;  // the mode of the data before it
    bool skip_ = false;  // we closed: drop the peer's data through its next mark
    // What our channel set announces: the end as it was until a close mark is out.
    bool set_open_ = false;
    ChannelMode set_mode_ = ChannelMode::message;
    bool close_pending_ = false;  // a close mark is queued, not yet written

    // Sending: into the ring in the peer's DMB.
    std::optional<TxRing> tx_;
    std::deque<SendOp> unsent_;       // front may be partly written
    std::deque<SendOp> unconfirmed_;  // written, waiting for the peer's consumer cursor
    bool prod_dirty_ = false;
    bool moved_ = false;  // a cursor in our DMB moved: the channel has work

    // Receiving: out of the ring in our DMB.
    std::optional<RxRing> rx_;
    MessageReader reader_;
    struct Inbound {
        std::vector<std::byte> message;
        uint64_t begin = 0;  // ring cursor of its first record
        bool eof = false;    // not a message: the peer's end of stream
    };
    std::deque<Inbound> inbox_;
    std::size_t inbox_bytes_ = 0;
    std::size_t held_ = 0;      // charged to the link's receive budget: inbox and assembly
    bool budget_wait_ = false;  // a message waits in the ring for room in the budget
    std::deque<RecvOp> receivers_;
    bool read_ahead_ = false;  // the last receive asked for a vector: read ahead for it
    std::deque<ReadOp> reads_;
    bool cons_dirty_ = false;
};

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

}  // namespace ism::link
