// SPDX-License-Identifier: MIT
// Message-mode receive path of one channel: records out of the ring in our own DMB,
// pieces reassembled into messages (docs/protocol.md section 5).
//
// The ring is memory the peer writes. Each record header is copied out once, parsed and
// checked against what the producer cursor published before anything is trusted; payload
// bytes are copied once into the message being assembled. The first piece of a message
// of several carries the message's total length (protocol version 3): it is copied out
// once too, checked against max_message, and the message is allocated once at that size;
// the pieces must then add up to it exactly. A malformed record is an error
// (errc::bad_record) after which the channel's link must be reset; nothing is read
// outside the ring, whatever the peer wrote.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "ism/link/ring.hpp"
#include "ism/link/wire.hpp"
#include "ism/result.hpp"

namespace ism::link {

class MessageReader {
public:
    using Deliver = std::function<void(std::vector<std::byte>&& message)>;
    /// Asked at a message's first record, before any byte of the message is taken:
    /// `total` is its length (checked against max_message), `whole` true when the message
    /// is that one record. False leaves the record in the ring, unread: poll() stops there
    /// and asks again about the same message the next time.
    using Admit = std::function<bool(std::size_t total, bool whole)>;

    explicit MessageReader(std::size_t max_message = kMaxMessageSize) noexcept
        : max_message_(max_message)
    {
    }

    /// Consumes every whole record the producer published in `ring` (the channel's ring
    /// in our DMB, exactly ring_size bytes) and hands each completed message to `deliver`,
    /// in a vector allocated once at the message's length. Every message is taken.
    Result<void> poll(std::span<const std::byte> ring, RxRing& rx, const Deliver& deliver);
    /// The same, taking a new message only when `admit` agrees (see Admit); the pieces of
    /// a message begun are always taken.
    Result<void> poll(std::span<const std::byte> ring, RxRing& rx, const Admit& admit,
                      const Deliver& deliver);

    /// Consumes the records of one message (the next one, or the rest of the one begun)
    /// copying its payload straight into `into`: one copy, no allocation. Stops after its
    /// LAST record (true) or when nothing more is published (false: call again with the
    /// same buffer). `length` counts the message's bytes so far; a message longer than
    /// `into` is consumed whole, only its first into.size() bytes copied, and `length`
    /// ends above into.size(). Not to be mixed with poll() inside one message.
    Result<bool> poll_into(std::span<const std::byte> ring, RxRing& rx, std::span<std::byte> into,
                           std::size_t& length);
    /// True while a message has begun and its LAST record has not been read.
    [[nodiscard]] bool in_message() const noexcept { return in_message_; }

    [[nodiscard]] std::size_t max_message() const noexcept { return max_message_; }
    /// While `deliver` runs: the ring cursor where the delivered message's first record
    /// began (its room must not go back to the writer before the message is handed on).
    [[nodiscard]] uint64_t message_begin() const noexcept { return begin_; }
    /// Bytes of a message whose last piece has not arrived yet.
    [[nodiscard]] std::size_t partial_size() const noexcept { return partial_.size(); }
    /// Room allocated for the message being assembled by poll(): its total length.
    [[nodiscard]] std::size_t partial_capacity() const noexcept { return partial_.capacity(); }

private:
    enum class Step : uint8_t { next, stop, wait };
    // Walks the published records, handing each piece's data to `piece`, which says
    // whether to go on (next), stop after it (stop) or leave it unread (wait, only at a
    // first record); checks and skips padding.
    template <class Piece>
    Result<bool> walk(std::span<const std::byte> ring, RxRing& rx, Piece&& piece);
    // Checks a piece against the message begun (or begins one: total_, length_) and
    // returns its data: the payload less the total a first piece of several carries.
    Result<std::span<const std::byte>> check_piece(const RecordHeader& h,
                                                   std::span<const std::byte> payload);
    void take_piece(const RecordHeader& h, std::span<const std::byte> data, const Deliver& deliver);

    std::size_t max_message_;
    bool in_message_ = false;
    uint64_t begin_ = 0;
    std::vector<std::byte> partial_;
    std::size_t total_ = 0;   // length of the message begun, as its first record said
    std::size_t length_ = 0;  // bytes of it taken so far
};

}  // namespace ism::link
