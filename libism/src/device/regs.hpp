// SPDX-License-Identifier: MIT
// ISM device register and memory layouts (private to the device layer).
//
// Everything the device reads or writes (command area, SBA, event queue) is big-endian,
// as on s390, and is read and written byte by byte with ism/byte_order.hpp; no host struct
// is ever cast onto device memory. Offsets and codes: docs/hardware.md sections 1.3-1.8.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "ism/byte_order.hpp"

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

/// Loads 8 bytes of device memory in one access and returns them as a big-endian value.
/// The device writes such fields whole; one access keeps them from tearing under us.
inline uint64_t load_be64_atomic(std::byte* p)
{
    uint64_t raw =
        std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(p)).load(std::memory_order_acquire);
    std::byte bytes[8];
    std::memcpy(bytes, &raw, sizeof(bytes));
    return load_be64(bytes, 0);
}

}  // namespace ism::device::regs
