// SPDX-License-Identifier: MIT
// Message-mode receive path of one channel: records out of the ring in our own DMB,
// pieces reassembled into messages (docs/protocol.md section 5).
//
// The ring is memory the peer writes. Each record header is copied out once, parsed and
// checked against what the producer cursor published before anything is trusted; payload
// bytes are copied once into the message being assembled. A malformed record is an error
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

    explicit MessageReader(std::size_t max_message = kMaxMessageSize) noexcept
        : max_message_(max_message)
    {
    }

    /// Consumes every whole record the producer published in `ring` (the channel's ring
    /// in our DMB, exactly ring_size bytes) and hands each completed message to `deliver`.
    Result<void> poll(std::span<const std::byte> ring, RxRing& rx, const Deliver& deliver);

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

private:
    // Walks the published records, handing each piece to `piece` (which returns true to
    // stop after it); checks and skips padding.
    template <class Piece>
    Result<bool> walk(std::span<const std::byte> ring, RxRing& rx, Piece&& piece);
    Result<void> check_piece(const RecordHeader& h);
    Result<void> take_piece(const RecordHeader& h, std::span<const std::byte> payload,
                            const Deliver& deliver);

    std::size_t max_message_;
    bool in_message_ = false;
    uint64_t begin_ = 0;
    std::vector<std::byte> partial_;
    std::size_t length_ = 0;  // bytes of the message begun
};

}  // namespace ism::link
