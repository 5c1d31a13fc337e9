// SPDX-License-Identifier: MIT
// The link's wire format (docs/protocol.md, version 3): events, the control block, the
// cursor areas and message records in a DMB.
//
// The peer writes this memory. Every parse function takes bytes that were already copied
// out of the DMB once, and returns a checked value type or an error naming what was wrong;
// nothing here keeps a pointer into the DMB. Encoders write big-endian bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ism/result.hpp"

namespace ism::link {

inline constexpr uint8_t kProtocolVersion = 3;
inline constexpr uint32_t kControlMagic = 0x49534D4C;  // "ISML"

// Events (SIGNAL_IEQ codes).
inline constexpr uint32_t kEventOffer = 0x49534C01;
inline constexpr uint32_t kEventReset = 0x49534C02;

// DMB layout.
inline constexpr std::size_t kControlBlockSize = 64;
inline constexpr std::size_t kProducerCursorsOffset = 64;
inline constexpr std::size_t kConsumerCursorsOffset = 320;
// u64 fin[32]: where each channel's latest end-of-stream mark ends (docs/protocol.md
// section 5, "Closing a channel").
inline constexpr std::size_t kFinOffset = 576;
inline constexpr std::size_t kReservedAreaOffset = 832;  // to kRingAreaOffset: zero
inline constexpr std::size_t kRingAreaOffset = 1024;
// Both cursor areas and the reserved bytes after them: what a new epoch zeroes.
inline constexpr std::size_t kCursorAreaSize = kRingAreaOffset - kControlBlockSize;
// The control block's `keepalive` counter, the one field stored on its own after the
// handshake (docs/protocol.md section 6).
inline constexpr std::size_t kKeepaliveOffset = 24;
inline constexpr uint32_t kMaxChannels = 32;
inline constexpr uint32_t kMinRingSize = 4096;
inline constexpr uint32_t kRingAlign = 64;
inline constexpr std::size_t kMaxMessageSize = std::size_t{16} << 20;
inline constexpr uint32_t kMaxKeepaliveMs = 3'600'000;  // an hour
inline constexpr unsigned kMinDmbShift = 14;            // 16 KiB
inline constexpr unsigned kMaxDmbShift = 20;            // 1 MiB

// A fin word: bit 63 CLOSE (the writer closed its whole end, not only its sending side),
// bit 62 STREAM (the data before the mark was written in byte-stream mode), bits 0..61
// the producer cursor just after the 8-byte mark.
inline constexpr uint64_t kFinClose = uint64_t{1} << 63;
inline constexpr uint64_t kFinStream = uint64_t{1} << 62;
inline constexpr uint64_t kFinCursorMask = kFinStream - 1;
inline constexpr std::size_t kFinMarkSize = 8;

// Message records.
inline constexpr std::size_t kRecordHeaderSize = 8;
inline constexpr uint8_t kRecordFirst = 0x01;
inline constexpr uint8_t kRecordLast = 0x02;
// The first piece of a message of several (FIRST without LAST) begins its payload with
// the message's total length, u64 big-endian, counted in the record's length (version 3).
inline constexpr std::size_t kRecordTotalSize = 8;

/// Why a link was reset (carried in RESET events and reported to the link's owner).
enum class ResetReason : uint16_t {
    version = 1,
    control = 2,
    producer = 3,
    consumer = 4,
    record = 5,
    channel = 6,
    shutdown = 7,  // not a violation: the sender is closing its end (Link::shutdown)
    service = 8,   // a service found the peer broke the service's protocol (Link::reset)
};

/// OFFER's info: log2(dmb_size) << 48 | token | epoch << 16 | lowest version << 8 |
/// highest version.
struct Offer {
    uint64_t token = 0;
    uint16_t epoch = 0;
    uint8_t min_version = 0;
    uint8_t max_version = 0;
    std::size_t dmb_size = 0;  // the sender's DMB: a power of two, 16 KiB .. 1 MiB

    [[nodiscard]] uint64_t pack() const noexcept;
    /// Refuses a token not of the hardware form, epoch 0, an empty version range, a DMB
    /// size out of range, or reserved bits set.
    static Result<Offer> unpack(uint64_t info);
};

/// Picks the highest version both sides speak.
Result<uint8_t> negotiate(const Offer& ours, const Offer& theirs);

/// The control block's one 8-byte field that changes while the link is up (besides the
/// keepalive): bit c of `open` is set while the writer has channel c open, bit c of
/// `stream` when it is open in byte-stream mode (a subset of `open`).
struct ChannelSet {
    uint32_t open = 0;
    uint32_t stream = 0;

    static constexpr std::size_t kOffset = 40;  // in the control block, 8-byte aligned
    [[nodiscard]] uint64_t pack() const noexcept { return uint64_t{open} << 32 | stream; }
    /// Refuses stream bits outside `open` and bits of channels >= nr_channels.
    static Result<ChannelSet> unpack(uint64_t word, uint32_t nr_channels);
    friend bool operator==(const ChannelSet&, const ChannelSet&) = default;
};

struct ControlBlock {
    uint8_t version = kProtocolVersion;
    uint8_t nr_channels = 0;
    uint16_t writer_epoch = 0;
    uint16_t peer_epoch = 0;
    uint32_t ring_size = 0;
    uint64_t writer_token = 0;
    uint64_t keepalive = 0;
    uint32_t keepalive_ms = 1000;  // how often the writer increments `keepalive`
    uint32_t max_message = 0;      // the largest message the writer accepts (1 .. 16 MiB)
    ChannelSet channels;           // what the writer has open, and in which mode

    void encode(std::span<std::byte, kControlBlockSize> out) const noexcept;
    /// Checks magic, version, reserved bytes, channel count, ring geometry against the
    /// size of the DMB it was found in, the token form, max_message and the channel set.
    static Result<ControlBlock> parse(std::span<const std::byte, kControlBlockSize> in,
                                      std::size_t dmb_size);
};

/// Ring size the writer uses for a receiver's DMB of `dmb_size` bytes and `nr_channels`.
uint32_t ring_size_for(std::size_t dmb_size, uint32_t nr_channels) noexcept;

struct RecordHeader {
    uint32_t length = 0;  // payload bytes of this piece (0 with flags 0: padding to ring end)
    uint8_t flags = 0;

    [[nodiscard]] bool is_padding() const noexcept { return length == 0 && flags == 0; }
    /// Bytes the record takes in the ring: header, payload, padding to 8.
    [[nodiscard]] std::size_t footprint() const noexcept;
    void encode(std::span<std::byte, kRecordHeaderSize> out) const noexcept;
    /// Checks flags and reserved bytes and that the piece fits in `ring_size`.
    static Result<RecordHeader> parse(std::span<const std::byte, kRecordHeaderSize> in,
                                      uint32_t ring_size);
};

}  // namespace ism::link
