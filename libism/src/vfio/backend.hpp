// SPDX-License-Identifier: MIT
// IommuBackend: what differs between the legacy container/group flow and the iommufd
// cdev flow once the device fd is open: DMA mapping, the IOVA ranges the kernel allows,
// and how the device is let go.
//
// Both open functions return the device fd and the backend separately: the device fd must
// be closed before the backend's objects (group/container or IOAS/iommufd) go, and
// VfioDeviceFile's destructor spells that order out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ism/result.hpp"
#include "ism/vfio/sys.hpp"
#include "vfio/sysfs_function.hpp"

namespace ism::vfio {

/// An IOVA window the IOMMU accepts, both ends inclusive.
struct IovaWindow {
    uint64_t start = 0;
    uint64_t last = 0;
};

class IommuBackend {
public:
    virtual ~IommuBackend() = default;
    IommuBackend() = default;
    IommuBackend(const IommuBackend&) = delete;
    IommuBackend& operator=(const IommuBackend&) = delete;

    [[nodiscard]] virtual const char* name() const = 0;
    /// As reported by the kernel at open; empty if it reported none.
    [[nodiscard]] virtual const std::vector<IovaWindow>& iova_windows() const = 0;
    /// Device-readable and -writable mapping of [vaddr, vaddr+size) at iova. Errors are
    /// the kernel's errno (ENOMEM for a locked-memory limit is translated by the caller).
    virtual Result<void> map(const std::byte* vaddr, uint64_t iova, uint64_t size) = 0;
    virtual Result<void> unmap(uint64_t iova, uint64_t size) = 0;
    /// Called just before the device fd is closed (iommufd: DETACH_IOMMUFD_PT).
    virtual void release_device(int device_fd) = 0;
};

struct OpenedDevice {
    std::unique_ptr<IommuBackend> backend;
    SysFd device;  // declared last: destroyed first
};

/// Legacy flow (docs/hardware.md 3.1): container, group, SET_IOMMU, GET_DEVICE_FD.
Result<OpenedDevice> open_with_container(Sys& sys, const PciFunction& fn,
                                         const std::string& dev_root);

/// iommufd flow (docs/hardware.md 3.2): cdev, BIND_IOMMUFD, IOAS_ALLOC, ATTACH.
Result<OpenedDevice> open_with_iommufd(Sys& sys, const PciFunction& fn,
                                       const std::string& dev_root);

}  // namespace ism::vfio
