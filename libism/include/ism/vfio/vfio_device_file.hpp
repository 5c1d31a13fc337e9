// SPDX-License-Identifier: MIT
// VfioDeviceFile: the DeviceFile of a real PCI function bound to ism_vfio_pci.
//
// open_vfio_device() finds the function in sysfs (by PCI address or zPCI function id),
// checks its driver, and opens it through iommufd (vfio cdev) or the legacy VFIO
// container/group, as VfioOptions asks. Everything it does to the kernel goes through a
// Sys, so the whole flow runs against a test double.
//
// Ownership: the VfioDeviceFile owns the device fd, the MSI eventfd, the DMA mappings made
// through it and the group/container or iommufd objects. Its destructor disables MSI,
// unmaps what is still mapped, closes the device fd, then releases the IOMMU objects, in
// that order; the device layer must have quiesced the function (unregistered SBA, IEQ and
// DMBs) before. DmaMemory from alloc_dma() is owned by the caller and may outlive the
// VfioDeviceFile; the Sys must outlive both.
// Errors: system errors (EACCES, EPERM, ...) keep std::system_category; the VFIO-specific
// ones are errc values: no_such_device, not_bound_to_driver, group_not_viable,
// memlock_too_low, no_iommu_backend, bad_capability, short_access, bad_region, and
// bad_argument for a DMA request outside the IOVA ranges the kernel reported, not
// page-aligned, overlapping a mapping, or an unmap that does not match one mapping.
// Threading: one thread at a time, like every DeviceFile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ism/result.hpp"
#include "ism/vfio/device_file.hpp"
#include "ism/vfio/sys.hpp"

namespace ism::vfio {

struct VfioOptions {
    enum class Backend { automatic, container, iommufd };
    /// automatic: the iommufd cdev if <dev_root>/iommu and the function's vfio-dev/vfioN
    /// exist, else the container/group; if the iommufd flow then fails for a reason other
    /// than permissions, the container/group flow is tried (s390 may lack iommufd support).
    Backend backend = Backend::automatic;
    std::string sysfs_root = "/sys";
    std::string dev_root = "/dev";
    std::string driver = "ism_vfio_pci";  // the driver the function must be bound to
};

class IommuBackend;
struct OpenedDevice;

class VfioDeviceFile final : public DeviceFile {
public:
    VfioDeviceFile(const VfioDeviceFile&) = delete;
    VfioDeviceFile& operator=(const VfioDeviceFile&) = delete;
    ~VfioDeviceFile() override;

    [[nodiscard]] std::string describe() const override;

    Result<DeviceInfo> device_info() override;
    Result<RegionInfo> region_info(uint32_t index) override;
    Result<IrqInfo> irq_info(uint32_t index) override;
    Result<ZpciInfo> zpci_info() override;

    Result<void> read(uint64_t offset, std::span<std::byte> out) override;
    Result<void> write(uint64_t offset, std::span<const std::byte> in) override;

    Result<std::unique_ptr<DmaMemory>> alloc_dma(std::size_t size) override;
    Result<void> map_dma(const DmaMemory& mem, uint64_t iova) override;
    Result<void> unmap_dma(uint64_t iova, std::size_t size) override;

    Result<void> enable_msi() override;
    Result<void> disable_msi() override;
    [[nodiscard]] int irq_fd() const override;
    Result<uint64_t> consume_irq() override;

    Result<void> reset() override;

    /// The raw device fd, for tests that check what the kernel module refuses (mmap,
    /// ioeventfd). Owned by this object: do not close it.
    [[nodiscard]] int device_fd() const noexcept;
    /// "container" or "iommufd": which flow opened the device.
    [[nodiscard]] const char* backend_name() const;
    /// The PCI address the selector resolved to.
    [[nodiscard]] const std::string& pci_address() const noexcept { return bdf_; }

private:
    friend Result<std::unique_ptr<VfioDeviceFile>> open_vfio_device(std::string_view,
                                                                    const VfioOptions&, Sys&);
    VfioDeviceFile(Sys& sys, std::string bdf, OpenedDevice opened);

    /// VFIO_DEVICE_GET_INFO with its capabilities: the whole reply buffer.
    Result<std::vector<std::byte>> get_info_buffer();

    struct Mapping {
        uint64_t size;
    };

    Sys& sys_;
    std::string bdf_;
    std::unique_ptr<IommuBackend> backend_;
    SysFd device_;
    SysFd irq_;
    std::map<uint64_t, Mapping> mappings_;  // by IOVA
};

/// Opens the function named by `selector`: a PCI address "0001:00:00.0" or a zPCI
/// function id "fid:0x11" (hex with 0x, or decimal, after "fid:").
Result<std::unique_ptr<VfioDeviceFile>> open_vfio_device(std::string_view selector,
                                                         const VfioOptions& opts = {},
                                                         Sys& sys = Sys::real());

/// Parses the capability chain of a VFIO_DEVICE_GET_INFO reply (header included) into
/// ZpciInfo. No CAPS flag: a default ZpciInfo (pft 0, no group). A malformed chain
/// (offsets outside the buffer, loops, capabilities shorter than their version) is
/// errc::bad_capability; nothing outside `info_buffer` is read.
Result<ZpciInfo> parse_zpci_caps(std::span<const std::byte> info_buffer);

}  // namespace ism::vfio
