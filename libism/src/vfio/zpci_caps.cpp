// SPDX-License-Identifier: MIT
// The s390 zPCI capabilities of VFIO_DEVICE_GET_INFO (docs/hardware.md 3.6).
#include <algorithm>

#include "ism/vfio/vfio_device_file.hpp"
#include "vfio/cap_chain.hpp"
#include "vfio/uapi.hpp"

namespace ism::vfio {
namespace {

// Capability sizes by version (linux/vfio_zdev.h). A capability shorter than its version's
// struct is malformed: reading on would take bytes of the next capability.
constexpr std::size_t kBaseV1Size = 32;
constexpr std::size_t kBaseV2Size = 40;  // adds fh @32 (v3 adds ccdf_err_length @36)
constexpr std::size_t kGroupV1Size = 40;
constexpr std::size_t kGroupV2Size = 48;  // adds imaxstbl @40

// The part of vfio_device_info the chain may not overlap: a 6.1-era kernel whose struct
// ends at cap_offset (20 B) puts the first capability at 20, newer ones at 24.
constexpr std::size_t kDeviceInfoFixed = uapi::kDeviceInfoCapOffset + 4;

Result<void> parse_base(const CapView& cap, ZpciInfo& info)
{
    if (cap.version == 0 || cap.bytes.size() < (cap.version >= 2 ? kBaseV2Size : kBaseV1Size))
        return fail(errc::bad_capability);
    info.start_dma = load_native<uint64_t>(cap.bytes, 8);
    info.end_dma = load_native<uint64_t>(cap.bytes, 16);
    info.pchid = load_native<uint16_t>(cap.bytes, 24);
    info.vfn = load_native<uint16_t>(cap.bytes, 26);
    info.pft = load_native<uint8_t>(cap.bytes, 30);
    info.pci_group = load_native<uint8_t>(cap.bytes, 31);
    if (cap.version >= 2)
        info.fh = load_native<uint32_t>(cap.bytes, 32);
    return {};
}

Result<void> parse_group(const CapView& cap, ZpciInfo& info)
{
    if (cap.version == 0 || cap.bytes.size() < (cap.version >= 2 ? kGroupV2Size : kGroupV1Size))
        return fail(errc::bad_capability);
    info.has_group = true;
    info.noi = load_native<uint16_t>(cap.bytes, 34);
    // The cap's maxstbl is the kernel's non-interpreted limit (always 128); only v2's
    // imaxstbl is the function's store-block limit. Kept apart so nobody mixes them up.
    info.maxstbl = load_native<uint16_t>(cap.bytes, 36);
    info.imaxstbl = cap.version >= 2 ? load_native<uint16_t>(cap.bytes, 40) : 0;
    return {};
}

}  // namespace

Result<ZpciInfo> parse_zpci_caps(std::span<const std::byte> info_buffer)
{
    if (info_buffer.size() < kDeviceInfoFixed)
        return fail(errc::bad_capability);
    ZpciInfo info;
    if ((load_native<uint32_t>(info_buffer, 4) & kDeviceFlagCaps) == 0)
        return info;
    auto caps = walk_caps(info_buffer, load_native<uint32_t>(info_buffer, 16), kDeviceInfoFixed);
    if (!caps)
        return tl::unexpected(caps.error());
    bool seen_base = false;
    bool seen_group = false;
    for (const CapView& cap : *caps) {
        Result<void> ok;
        // The first of each kind counts; the kernel never repeats one.
        if (cap.id == uapi::kZpciCapBase && !std::exchange(seen_base, true))
            ok = parse_base(cap, info);
        else if (cap.id == uapi::kZpciCapGroup && !std::exchange(seen_group, true))
            ok = parse_group(cap, info);
        if (!ok)
            return tl::unexpected(ok.error());
    }
    return info;
}

}  // namespace ism::vfio
