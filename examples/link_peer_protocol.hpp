// SPDX-License-Identifier: MIT
// The test message format that ism-link-peer and the link integration tests share.
//
// A message is a 16-byte header, channel (u32 BE), reserved u32 0, seq (u64 BE),
// followed by a payload whose every byte is a function of (channel, seq, offset), so that
// either side can check a message it did not build. An empty message (no header at all)
// is also allowed: it exercises the link's empty records and carries no sequence number.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ism/byte_order.hpp"

namespace ism::link_peer {

inline constexpr std::size_t kHeaderSize = 16;

struct Header {
    uint32_t channel = 0;
    uint64_t seq = 0;
};

/// Byte `offset` of the payload of message `seq` on `channel`. Every input moves every
/// output byte, so a message delivered on the wrong channel, out of order or shifted by
/// any number of bytes does not verify.
inline std::byte payload_byte(uint32_t channel, uint64_t seq, std::size_t offset) noexcept
{
    const uint64_t o = offset;
    const uint64_t v =
        o * 7 + (o >> 8) * 13 + (o >> 16) * 5 + seq * 31 + (seq >> 8) * 3 + uint64_t{channel} * 101;
    return static_cast<std::byte>(v & 0xFF);
}

/// A header and `payload_size` payload bytes for (channel, seq).
inline std::vector<std::byte> make_message(uint32_t channel, uint64_t seq, std::size_t payload_size)
{
    std::vector<std::byte> m(kHeaderSize + payload_size);
    const std::span<std::byte> s(m);
    store_be32(s, 0, channel);
    store_be32(s, 4, 0);
    store_be64(s, 8, seq);
    for (std::size_t i = 0; i < payload_size; ++i)
        m[kHeaderSize + i] = payload_byte(channel, seq, i);
    return m;
}

/// The header of `message`, if it has one with the reserved word zero.
inline std::optional<Header> parse_header(std::span<const std::byte> message) noexcept
{
    if (message.size() < kHeaderSize || load_be32(message, 4) != 0)
        return std::nullopt;
    return Header{load_be32(message, 0), load_be64(message, 8)};
}

/// True when the payload after the header is exactly what make_message() builds.
inline bool payload_ok(std::span<const std::byte> message, const Header& h) noexcept
{
    for (std::size_t i = kHeaderSize; i < message.size(); ++i) {
        if (message[i] != payload_byte(h.channel, h.seq, i - kHeaderSize))
            return false;
    }
    return true;
}

}  // namespace ism::link_peer
