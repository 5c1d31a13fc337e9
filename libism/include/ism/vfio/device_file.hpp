// SPDX-License-Identifier: MIT
// DeviceFile: the seam between libism and the kernel.
//
// A DeviceFile offers exactly what the ISM device layer needs from a VFIO device: device,
// region and IRQ information, region reads and writes at the offsets the driver reports,
// memory the device may write into and its DMA mapping at an IOVA, the MSI interrupt fd,
// and the zPCI capabilities. It knows nothing of ISM: identity checks (vendor, device,
// pft) belong to the device layer.
//
// Two implementations exist: VfioDeviceFile (the real Linux VFIO device, legacy container
// or iommufd cdev) and sim::SimDeviceFile (the emulated ISM function). Nothing above this
// interface can tell them apart.
//
// Threading: a DeviceFile is used by one thread at a time; its owner serialises calls.
// Errors: every call returns a Result; a short read or write is an error
// (errc::short_access), never a partial success.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "ism/result.hpp"

namespace ism::vfio {

/// vfio-pci's fixed region indexes.
inline constexpr uint32_t kBar0RegionIndex = 0;
inline constexpr uint32_t kBar2RegionIndex = 2;
inline constexpr uint32_t kRomRegionIndex = 6;
inline constexpr uint32_t kConfigRegionIndex = 7;
inline constexpr uint32_t kNumPciRegions = 9;

/// vfio-pci's fixed IRQ indexes.
inline constexpr uint32_t kMsiIrqIndex = 1;

/// VFIO_DEVICE_GET_INFO flags.
inline constexpr uint32_t kDeviceFlagReset = 1U << 0;
inline constexpr uint32_t kDeviceFlagPci = 1U << 1;
inline constexpr uint32_t kDeviceFlagCaps = 1U << 7;

/// VFIO_REGION_INFO flags.
inline constexpr uint32_t kRegionFlagRead = 1U << 0;
inline constexpr uint32_t kRegionFlagWrite = 1U << 1;
inline constexpr uint32_t kRegionFlagMmap = 1U << 2;
inline constexpr uint32_t kRegionFlagCaps = 1U << 3;

struct DeviceInfo {
    uint32_t flags = 0;
    uint32_t num_regions = 0;
    uint32_t num_irqs = 0;
};

struct RegionInfo {
    uint32_t index = 0;
    uint32_t flags = 0;
    uint64_t size = 0;
    uint64_t offset = 0;  // where the region starts in the device file: always use this
};

struct IrqInfo {
    uint32_t index = 0;
    uint32_t flags = 0;
    uint32_t count = 0;
};

/// What the zPCI capabilities of VFIO_DEVICE_GET_INFO say about the function.
struct ZpciInfo {
    uint64_t start_dma = 0;  // usable IOVA range, inclusive
    uint64_t end_dma = 0;
    uint16_t pchid = 0;  // physical channel id: the ISM fabric id
    uint16_t vfn = 0;
    uint8_t pft = 0;         // PCI function type; 5 is ISM
    uint8_t pci_group = 0;   // PCI function group id (not an ISM GID)
    uint32_t fh = 0;         // function handle (BASE v2+)
    bool has_group = false;  // a GROUP capability was present
    uint16_t maxstbl = 0;    // GROUP cap field: the kernel's own limit, NOT the store limit
    uint16_t imaxstbl = 0;   // GROUP v2: the hardware store-block limit (0 if absent)
    uint16_t noi = 0;        // number of MSIs
};

/// Page-aligned memory that the device may write into, allocated by a DeviceFile so that
/// an emulated device can place it where other processes on its fabric can reach it.
/// Freed when the object is destroyed; unmap it from the device first.
class DmaMemory {
public:
    virtual ~DmaMemory() = default;
    DmaMemory(const DmaMemory&) = delete;
    DmaMemory& operator=(const DmaMemory&) = delete;

    [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
    [[nodiscard]] std::byte* data() const noexcept { return data_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

protected:
    DmaMemory(std::byte* data, std::size_t size) noexcept : data_(data), size_(size) {}

private:
    std::byte* data_;
    std::size_t size_;
};

class DeviceFile {
public:
    virtual ~DeviceFile() = default;
    DeviceFile() = default;
    DeviceFile(const DeviceFile&) = delete;
    DeviceFile& operator=(const DeviceFile&) = delete;

    /// Human-readable name for messages, e.g. "vfio 0001:00:00.0".
    [[nodiscard]] virtual std::string describe() const = 0;

    virtual Result<DeviceInfo> device_info() = 0;
    virtual Result<RegionInfo> region_info(uint32_t index) = 0;
    virtual Result<IrqInfo> irq_info(uint32_t index) = 0;
    virtual Result<ZpciInfo> zpci_info() = 0;

    /// pread/pwrite at an absolute device-file offset (region offset + offset in region).
    /// A write is one store: anything but the full length is an error.
    virtual Result<void> read(uint64_t offset, std::span<std::byte> out) = 0;
    virtual Result<void> write(uint64_t offset, std::span<const std::byte> in) = 0;

    /// Memory the device may write into; size is rounded up to whole pages.
    virtual Result<std::unique_ptr<DmaMemory>> alloc_dma(std::size_t size) = 0;
    /// Makes `mem` visible to the device at `iova` (readable and writable by the device).
    virtual Result<void> map_dma(const DmaMemory& mem, uint64_t iova) = 0;
    virtual Result<void> unmap_dma(uint64_t iova, std::size_t size) = 0;

    /// Arms MSI vector 0 with an interrupt fd; irq_fd() is then what an event loop waits
    /// on (readable when an interrupt is pending). consume_irq() clears it without
    /// blocking and returns how many interrupts were counted (0 if none).
    virtual Result<void> enable_msi() = 0;
    virtual Result<void> disable_msi() = 0;
    [[nodiscard]] virtual int irq_fd() const = 0;
    virtual Result<uint64_t> consume_irq() = 0;

    /// VFIO_DEVICE_RESET.
    virtual Result<void> reset() = 0;
};

}  // namespace ism::vfio
