// SPDX-License-Identifier: MIT
// ISM device register and memory layouts (private to the device layer).
//
// Everything the device reads or writes (command area, SBA, event queue) is big-endian,
// as on s390. These helpers read and write those layouts byte by byte, so that the same
// code is right on s390x and on little-endian hosts; no host struct is ever cast onto
// device memory. Offsets are from ism-device.md sections 1.3-1.8.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace ism::device::regs {

// Command codes (section 1.4).
inline constexpr uint32_t kCmdRegSba = 0x01;
inline constexpr uint32_t kCmdRegIeq = 0x02;
inline constexpr uint32_t kCmdReadGid = 0x03;
inline constexpr uint32_t kCmdAddVlanId = 0x04;
inline constexpr uint32_t kCmdDelVlanId = 0x05;
inline constexpr uint32_t kCmdQueryInfo = 0x08;
inline constexpr uint32_t kCmdQueryRgid = 0x09;
inline constexpr uint32_t kCmdRegDmb = 0x0A;
inline constexpr uint32_t kCmdUnregDmb = 0x0B;
inline constexpr uint32_t kCmdSignalIeq = 0x0E;
inline constexpr uint32_t kCmdUnregSba = 0x11;
inline constexpr uint32_t kCmdUnregIeq = 0x12;

// Command area: request/response headers are 8 bytes, payload follows at offset 8.
inline constexpr std::size_t kCmdHeaderSize = 8;
inline constexpr uint64_t kCmdPayloadOffset = 8;
inline constexpr std::size_t kQueryInfoResponseSize = 200;

// VLAN id whose registration succeeds only on ISMv2-capable devices.
inline constexpr uint64_t kIsmV2ProbeVlan = 0x1FFF;

// SBA (section 1.7).
inline constexpr std::size_t kSbaSize = 4096;
inline constexpr std::size_t kSbaDmbBitsOffset = 4;
inline constexpr std::size_t kSbaDmbeMaskOffset = 256;
inline constexpr std::byte kSbaSummaryBit{0x80};  // bit 31 of the be32 at offset 0
inline constexpr std::byte kSbaEventBit{0x40};    // bit 30
inline constexpr uint32_t kSbaBits = 1920;

// Event queue (section 1.8).
inline constexpr std::size_t kIeqHeaderSize = 32;
inline constexpr std::size_t kIeqEntrySize = 32;
inline constexpr uint64_t kIeqEntries = 15;
inline constexpr std::size_t kIeqLength = kIeqHeaderSize + kIeqEntries * kIeqEntrySize;  // 512

// BAR0 store address fields (section 1.6).
inline constexpr unsigned kDmbeIdxShift = 24;
inline constexpr unsigned kSignalFlagShift = 23;
inline constexpr uint64_t kDmbOffsetLimit = uint64_t{1} << 23;
inline constexpr uint64_t kTokenLowMask = 0xFFFF'FFFFULL;
inline constexpr uint64_t kBar0Size = uint64_t{1} << 48;

inline uint64_t get_be(std::span<const std::byte> b, std::size_t off, std::size_t n)
{
    uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v = (v << 8) | std::to_integer<uint64_t>(b[off + i]);
    return v;
}

inline uint16_t get_be16(std::span<const std::byte> b, std::size_t off)
{
    return static_cast<uint16_t>(get_be(b, off, 2));
}
inline uint32_t get_be32(std::span<const std::byte> b, std::size_t off)
{
    return static_cast<uint32_t>(get_be(b, off, 4));
}
inline uint64_t get_be64(std::span<const std::byte> b, std::size_t off)
{
    return get_be(b, off, 8);
}

inline void put_be(std::span<std::byte> b, std::size_t off, std::size_t n, uint64_t v)
{
    for (std::size_t i = 0; i < n; ++i)
        b[off + i] = static_cast<std::byte>((v >> (8 * (n - 1 - i))) & 0xFF);
}

inline void put_be16(std::span<std::byte> b, std::size_t off, uint16_t v)
{
    put_be(b, off, 2, v);
}
inline void put_be32(std::span<std::byte> b, std::size_t off, uint32_t v)
{
    put_be(b, off, 4, v);
}
inline void put_be64(std::span<std::byte> b, std::size_t off, uint64_t v)
{
    put_be(b, off, 8, v);
}

/// Loads 8 bytes of device memory in one access and returns them as a big-endian value.
/// The device writes such fields whole; one access keeps them from tearing under us.
inline uint64_t load_be64_atomic(std::byte* p)
{
    uint64_t raw =
        std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(p)).load(std::memory_order_acquire);
    std::byte bytes[8];
    std::memcpy(bytes, &raw, sizeof(bytes));
    return get_be64(bytes, 0);
}

}  // namespace ism::device::regs
