// SPDX-License-Identifier: MIT
// Golden VFIO_DEVICE_GET_INFO replies of an ISM function, laid out by hand from the tables
// of docs/hardware.md 3.3 and 3.6 (offsets, not the kernel's structs), in host byte order as
// the kernel writes them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fake_vfio_kernel.hpp"

namespace ism::vfio::testing {

inline constexpr std::size_t kGoldenBaseOffset = 24;  // right after vfio_device_info
inline constexpr uint64_t kGoldenStartDma = 0x0000000000010000;
inline constexpr uint64_t kGoldenEndDma = 0x00000001ffffffff;
inline constexpr uint16_t kGoldenPchid = 0x0498;
inline constexpr uint16_t kGoldenVfn = 0x0003;
inline constexpr uint8_t kGoldenPft = 5;
inline constexpr uint8_t kGoldenPciGroup = 0x12;
inline constexpr uint32_t kGoldenFh = 0x0a0b0c0d;
inline constexpr uint16_t kGoldenNoi = 1;
inline constexpr uint16_t kGoldenMaxstbl = 128;    // what the kernel always reports
inline constexpr uint16_t kGoldenImaxstbl = 4096;  // the real store-block limit

inline std::size_t golden_base_size(uint16_t version)
{
    return version >= 2 ? 40 : 32;
}

inline std::size_t golden_group_offset(uint16_t base_version)
{
    return kGoldenBaseOffset + golden_base_size(base_version);
}

/// Header + BASE (version base_v) + GROUP (version group_v, or none if 0).
inline std::vector<std::byte> golden_info_reply(uint16_t base_v = 2, uint16_t group_v = 2)
{
    std::vector<std::byte> b;
    const std::size_t group = golden_group_offset(base_v);
    const std::size_t end = group + (group_v == 0 ? 0 : group_v >= 2 ? 48 : 40);
    // vfio_device_info: argsz, flags (RESET|PCI|CAPS), num_regions, num_irqs, cap_offset, pad
    put<uint32_t>(b, 0, static_cast<uint32_t>(end));
    put<uint32_t>(b, 4, 0x01 | 0x02 | 0x80);
    put<uint32_t>(b, 8, 9);
    put<uint32_t>(b, 12, 5);
    put<uint32_t>(b, 16, static_cast<uint32_t>(kGoldenBaseOffset));
    put<uint32_t>(b, 20, 0);
    // zpci_base: header {id 1, version, next}, start_dma, end_dma, pchid, vfn, fmb_length,
    // pft, gid, fh (v2+), pad
    const std::size_t o = kGoldenBaseOffset;
    put<uint16_t>(b, o + 0, 1);
    put<uint16_t>(b, o + 2, base_v);
    put<uint32_t>(b, o + 4, group_v == 0 ? 0 : static_cast<uint32_t>(group));
    put<uint64_t>(b, o + 8, kGoldenStartDma);
    put<uint64_t>(b, o + 16, kGoldenEndDma);
    put<uint16_t>(b, o + 24, kGoldenPchid);
    put<uint16_t>(b, o + 26, kGoldenVfn);
    put<uint16_t>(b, o + 28, 0x40);
    put<uint8_t>(b, o + 30, kGoldenPft);
    put<uint8_t>(b, o + 31, kGoldenPciGroup);
    if (base_v >= 2) {
        put<uint32_t>(b, o + 32, kGoldenFh);
        put<uint32_t>(b, o + 36, 0);
    }
    if (group_v == 0)
        return b;
    // zpci_group: header {id 2, version, next 0}, dasm, msi_addr, flags, mui, noi, maxstbl,
    // version, then v2: reserved, imaxstbl, pad
    put<uint16_t>(b, group + 0, 2);
    put<uint16_t>(b, group + 2, group_v);
    put<uint32_t>(b, group + 4, 0);
    put<uint64_t>(b, group + 8, 0xffffffffffffffffULL);
    put<uint64_t>(b, group + 16, 0x00000000fe000000ULL);
    put<uint64_t>(b, group + 24, 0);
    put<uint16_t>(b, group + 32, 1000);
    put<uint16_t>(b, group + 34, kGoldenNoi);
    put<uint16_t>(b, group + 36, kGoldenMaxstbl);
    put<uint8_t>(b, group + 38, 3);
    put<uint8_t>(b, group + 39, 0);
    if (group_v >= 2) {
        put<uint16_t>(b, group + 40, kGoldenImaxstbl);
        put<uint16_t>(b, group + 42, 0);
        put<uint32_t>(b, group + 44, 0);
    }
    return b;
}

}  // namespace ism::vfio::testing
