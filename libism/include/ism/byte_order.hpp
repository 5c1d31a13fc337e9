// SPDX-License-Identifier: MIT
// Big-endian loads and stores on byte spans: the one home for byte order in libism.
//
// ISM's device structures (command area, SBA, event queue; docs/hardware.md) and the
// link's wire format (docs/protocol.md) are big-endian, as on s390. Code that reads or
// writes them goes byte by byte through these helpers and never casts a host struct onto
// the bytes, so the same code is right on s390x and on little-endian hosts. The device
// layer, the link, the examples and the tests use them.
//
// The emulated device (libism/src/sim) has its own copy on purpose, in
// libism/src/sim/byte_order.hpp: see there why.
//
// Precondition of every function: the bytes named are inside the span (`off + width <=
// bytes.size()`). Callers work on fixed layouts whose sizes they check once, when the
// bytes arrive; the helpers do not check again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ism {

/// The big-endian unsigned integer that fills `bytes` (at most 8 of them).
inline uint64_t load_be(std::span<const std::byte> bytes) noexcept
{
    uint64_t v = 0;
    for (std::byte b : bytes)
        v = (v << 8) | std::to_integer<uint64_t>(b);
    return v;
}

/// Writes the low `out.size()` bytes of `v` (at most 8) big-endian into `out`.
inline void store_be(std::span<std::byte> out, uint64_t v) noexcept
{
    for (std::size_t i = out.size(); i-- > 0; v >>= 8)
        out[i] = static_cast<std::byte>(v & 0xFF);
}

/// The big-endian 16-bit value at `bytes[off]`.
inline uint16_t load_be16(std::span<const std::byte> bytes, std::size_t off) noexcept
{
    return static_cast<uint16_t>(load_be(bytes.subspan(off, 2)));
}

/// The big-endian 32-bit value at `bytes[off]`.
inline uint32_t load_be32(std::span<const std::byte> bytes, std::size_t off) noexcept
{
    return static_cast<uint32_t>(load_be(bytes.subspan(off, 4)));
}

/// The big-endian 64-bit value at `bytes[off]`.
inline uint64_t load_be64(std::span<const std::byte> bytes, std::size_t off) noexcept
{
    return load_be(bytes.subspan(off, 8));
}

/// Writes `v` big-endian into `bytes[off]..bytes[off + 1]`.
inline void store_be16(std::span<std::byte> bytes, std::size_t off, uint16_t v) noexcept
{
    store_be(bytes.subspan(off, 2), v);
}

/// Writes `v` big-endian into `bytes[off]..bytes[off + 3]`.
inline void store_be32(std::span<std::byte> bytes, std::size_t off, uint32_t v) noexcept
{
    store_be(bytes.subspan(off, 4), v);
}

/// Writes `v` big-endian into `bytes[off]..bytes[off + 7]`.
inline void store_be64(std::span<std::byte> bytes, std::size_t off, uint64_t v) noexcept
{
    store_be(bytes.subspan(off, 8), v);
}

}  // namespace ism
