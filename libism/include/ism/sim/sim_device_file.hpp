// SPDX-License-Identifier: MIT
// The emulated ISM function as a VFIO device file: its fixed, documented properties.
//
// sim::open_function (fabric.hpp) returns a vfio::DeviceFile that behaves like the
// ism_vfio_pci driver over a real ISM function: regions at index << 48, BAR0 the 2^48
// store space (write only, one store per write), BAR2 the command area, config space
// with the ISM vendor/device ids, one MSI vector whose interrupt fd is pollable, DMA
// memory that processes on the fabric can reach. The constants below are the choices the
// hardware facts leave open; docs/sim.md explains each.
//
// Errors surfaced by region writes, as the driver does: EINVAL (system category) for a
// store over the store limit, crossing a 4 KiB boundary of the region offset or past the
// region end; EIO for a store the function refuses (what a failed PCISTB gives).
#pragma once

#include <cstdint>

namespace ism::sim {

/// Region offsets follow the ism_vfio_pci driver: index << 48.
inline constexpr unsigned kRegionShift = 48;
inline constexpr uint64_t kBar0Size = uint64_t{1} << 48;
/// The command area: the hardware's size is unknown, Linux only touches offsets < 256.
inline constexpr uint64_t kBar2Size = 4096;
/// Standard PCI config header (no extended space).
inline constexpr uint64_t kConfigSize = 256;

/// The usable IOVA window reported in the zPCI BASE capability (start_dma..end_dma).
inline constexpr uint64_t kDmaWindowStart = 0x1'0000'0000;
inline constexpr uint64_t kDmaWindowEnd = 0x1'FFFF'FFFF;

/// The GROUP capability's maxstbl field: the kernel's own limit, not the store limit.
inline constexpr uint16_t kKernelMaxStbl = 128;

/// DMA memory each function can allocate (pages of the shared fabric file).
inline constexpr uint64_t kDmaArenaSize = uint64_t{256} << 20;
/// Functions per fabric.
inline constexpr uint32_t kMaxFunctions = 16;
/// Largest DMB any function accepts: the BAR0 encoding has 23 bits of DMB offset.
inline constexpr uint32_t kMaxDmbSizeLimit = uint32_t{1} << 23;

/// The zPCI function type of ISM, and PCI ids.
inline constexpr uint8_t kPftIsm = 5;
inline constexpr uint16_t kPciVendorIbm = 0x1014;
inline constexpr uint16_t kPciDeviceIsm = 0x04ED;

}  // namespace ism::sim
