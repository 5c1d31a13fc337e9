// SPDX-License-Identifier: MIT
// FakeVfioKernel's ioctls: the container, group, device and iommufd objects.
#include <cerrno>

#include "fake_vfio_kernel.hpp"
#include "vfio/uapi.hpp"

namespace ism::vfio::testing {
namespace {

constexpr uint32_t kIommuInfoSize = 24;
constexpr uint32_t kGroupFlagContainerSet = 2;
constexpr uint64_t kType1PageSizes = 4096;
constexpr uint32_t kIrqFlagEventfd = 1;
constexpr uint32_t kIrqFlagNoresize = 8;
constexpr uint32_t kNumIrqs = 5;
constexpr uint32_t kIoasId = 2;
constexpr uint32_t kDevId = 1;

// The arguments of an ioctl are user memory the kernel copies in and out.
template <class T>
T copy_in(const void* arg)
{
    T value{};
    std::memcpy(&value, arg, sizeof(T));
    return value;
}

template <class T>
void copy_out(void* arg, const T& value)
{
    std::memcpy(arg, &value, sizeof(T));
}

tl::unexpected<std::error_code> err(int e)
{
    return fail_errno(e);
}

const char* kind_name(int kind)
{
    static constexpr const char* kNames[] = {"container", "group", "device", "iommufd", "eventfd"};
    return kNames[kind];
}

}  // namespace

Result<int> FakeVfioKernel::ioctl_value(int fd, unsigned long request, unsigned long value)
{
    auto it = fds_.find(fd);
    if (it == fds_.end())
        return err(EBADF);
    std::string entry =
        std::string(kind_name(static_cast<int>(it->second.kind))) + " " + request_name(request);
    if (request == uapi::kCheckExtension || request == uapi::kSetIommu)
        entry += " " + std::to_string(value);
    log.push_back(entry);
    if (it->second.kind == Kind::container)
        return container_ioctl(request, nullptr, value);
    if (it->second.kind == Kind::device && request == uapi::kDeviceReset)
        return device_ioctl(it->second, request, nullptr);
    return err(ENOTTY);
}

Result<int> FakeVfioKernel::ioctl(int fd, unsigned long request, void* arg)
{
    auto it = fds_.find(fd);
    if (it == fds_.end())
        return err(EBADF);
    log.push_back(std::string(kind_name(static_cast<int>(it->second.kind))) + " " +
                  request_name(request));
    switch (it->second.kind) {
        case Kind::container:
            return container_ioctl(request, arg, 0);
        case Kind::group:
            return group_ioctl(it->second, request, arg);
        case Kind::device:
            return device_ioctl(it->second, request, arg);
        case Kind::iommufd:
            return iommufd_ioctl(request, arg);
        case Kind::eventfd:
            break;
    }
    return err(ENOTTY);
}

// --- legacy container and group -----------------------------------------------------------

Result<int> FakeVfioKernel::container_ioctl(unsigned long request, void* arg, unsigned long value)
{
    switch (request) {
        case uapi::kGetApiVersion:
            return uapi::kApiVersion;
        case uapi::kCheckExtension:
            return (value == uapi::kType1v2Iommu && has_type1v2) ||
                   (value == uapi::kType1Iommu && has_type1);
        case uapi::kSetIommu:
            // The kernel refuses an IOMMU model for a container without a group.
            if (!group_has_container_ || iommu_set_)
                return err(EINVAL);
            iommu_set_ = true;
            return 0;
        case uapi::kIommuGetInfo:
            return iommu_get_info(arg);
        case uapi::kIommuMapDma: {
            auto m = copy_in<vfio_iommu_type1_dma_map>(arg);
            if (!iommu_set_ || m.argsz < sizeof(m))
                return err(EINVAL);
            return map(m.vaddr, m.iova, m.size, m.flags);
        }
        case uapi::kIommuUnmapDma: {
            auto u = copy_in<vfio_iommu_type1_dma_unmap>(arg);
            uint64_t size = u.size;
            auto r = unmap_exact(u.iova, size);
            u.size = size;
            copy_out(arg, u);
            return r;
        }
        default:
            return err(ENOTTY);
    }
}

Result<int> FakeVfioKernel::iommu_get_info(void* arg)
{
    if (!iommu_set_)
        return err(EINVAL);
    std::vector<std::byte> reply;
    put<uint32_t>(reply, 4, uapi::kIommuInfoCaps);
    put<uint64_t>(reply, 8, kType1PageSizes);
    put<uint32_t>(reply, 16, kIommuInfoSize);  // cap_offset
    put<uint16_t>(reply, 24, uapi::kIommuCapIovaRange);
    put<uint16_t>(reply, 26, 1);
    put<uint32_t>(reply, 28, 0);
    put<uint32_t>(reply, 32, static_cast<uint32_t>(iova_ranges.size()));
    put<uint32_t>(reply, 36, 0);
    for (std::size_t i = 0; i < iova_ranges.size(); ++i) {
        put<uint64_t>(reply, 40 + 16 * i, iova_ranges[i].first);
        put<uint64_t>(reply, 48 + 16 * i, iova_ranges[i].second);
    }
    auto argsz = copy_in<uint32_t>(arg);
    if (argsz < kIommuInfoSize)
        return err(EINVAL);
    if (argsz < reply.size()) {
        // Too small for the capabilities: report the size needed, no chain.
        put<uint32_t>(reply, 0, static_cast<uint32_t>(reply.size()));
        put<uint32_t>(reply, 16, 0);
        std::memcpy(arg, reply.data(), kIommuInfoSize);
        return 0;
    }
    put<uint32_t>(reply, 0, argsz);
    std::memcpy(arg, reply.data(), reply.size());
    return 0;
}

Result<int> FakeVfioKernel::group_ioctl(Fd& /*group*/, unsigned long request, void* arg)
{
    switch (request) {
        case uapi::kGroupGetStatus: {
            auto status = copy_in<vfio_group_status>(arg);
            status.flags = (group_viable ? uapi::kGroupFlagViable : 0) |
                           (group_has_container_ ? kGroupFlagContainerSet : 0);
            copy_out(arg, status);
            return 0;
        }
        case uapi::kGroupSetContainer: {
            auto container = copy_in<int>(arg);
            if (!group_viable || find(container, Kind::container) == nullptr)
                return err(EINVAL);
            group_has_container_ = true;
            return 0;
        }
        case uapi::kGroupGetDeviceFd: {
            if (!group_has_container_ || !iommu_set_)
                return err(EINVAL);
            std::string bdf(static_cast<const char*>(arg));
            log.back() += " " + bdf;
            if (files.count("/sys/bus/pci/devices/" + bdf + "/function_id") == 0)
                return err(ENODEV);
            auto fd = new_fd(Kind::device, bdf);
            fds_[*fd].bound = true;
            return fd;
        }
        default:
            return err(ENOTTY);
    }
}

// --- device -----------------------------------------------------------------------------------

Result<int> FakeVfioKernel::device_ioctl(Fd& device, unsigned long request, void* arg)
{
    // A cdev accepts nothing before BIND_IOMMUFD (vfio_device_fops_cdev_ioctl).
    if (device.cdev && !device.bound && request != uapi::kDeviceBindIommufd)
        return err(EINVAL);
    switch (request) {
        case uapi::kDeviceGetInfo:
            return device_get_info(arg);
        case uapi::kDeviceGetRegionInfo: {
            auto info = copy_in<vfio_region_info>(arg);
            auto it = regions.find(info.index);
            if (info.argsz < sizeof(info) || it == regions.end())
                return err(EINVAL);
            info.flags = it->second.flags;
            info.size = it->second.size;
            info.offset = it->second.offset;
            info.cap_offset = 0;
            copy_out(arg, info);
            return 0;
        }
        case uapi::kDeviceGetIrqInfo: {
            auto info = copy_in<vfio_irq_info>(arg);
            if (info.argsz < sizeof(info) || info.index >= kNumIrqs)
                return err(EINVAL);
            info.flags = kIrqFlagEventfd | kIrqFlagNoresize;
            info.count = info.index == kMsiIrqIndex ? 1 : 0;
            copy_out(arg, info);
            return 0;
        }
        case uapi::kDeviceSetIrqs:
            return set_irqs(arg);
        case uapi::kDeviceReset:
            return 0;
        case uapi::kDeviceBindIommufd: {
            auto bind = copy_in<uapi::BindIommufd>(arg);
            if (!device.cdev || device.bound || find(bind.iommufd, Kind::iommufd) == nullptr)
                return err(EINVAL);
            device.bound = true;
            bind.out_devid = kDevId;
            copy_out(arg, bind);
            return 0;
        }
        case uapi::kDeviceAttachIommufdPt: {
            auto attach = copy_in<uapi::AttachIommufdPt>(arg);
            if (attach_errno != 0)
                return err(attach_errno);
            if (!ioas_allocated_ || attach.pt_id != kIoasId || attached_)
                return err(EINVAL);
            attached_ = true;
            return 0;
        }
        case uapi::kDeviceDetachIommufdPt:
            if (!attached_)
                return err(EINVAL);
            attached_ = false;
            return 0;
        default:
            return err(ENOTTY);
    }
}

Result<int> FakeVfioKernel::device_get_info(void* arg)
{
    std::vector<std::byte> reply = info_reply;
    if (reply.empty()) {
        put<uint32_t>(reply, 4, kDeviceFlagPci | kDeviceFlagReset);
        put<uint32_t>(reply, 8, kNumPciRegions);
        put<uint32_t>(reply, 12, kNumIrqs);
        put<uint32_t>(reply, 20, 0);
    }
    auto argsz = copy_in<uint32_t>(arg);
    get_info_argsz.push_back(argsz);
    if (argsz < 16)
        return err(EINVAL);
    if (argsz < reply.size()) {
        // vfio_pci_ioctl_get_info: report the size needed and no chain, and copy back no
        // more of the header than the caller's argsz covers.
        put<uint32_t>(reply, 0, static_cast<uint32_t>(reply.size()));
        put<uint32_t>(reply, 16, 0);
        std::memcpy(arg, reply.data(), std::min<std::size_t>(argsz, uapi::kDeviceInfoSize));
        return 0;
    }
    put<uint32_t>(reply, 0, argsz);
    std::memcpy(arg, reply.data(), reply.size());
    return 0;
}

Result<int> FakeVfioKernel::set_irqs(void* arg)
{
    auto argsz = copy_in<uint32_t>(arg);
    if (argsz < uapi::kIrqSetHeaderSize)
        return err(EINVAL);
    const auto* bytes = static_cast<const std::byte*>(arg);
    last_set_irqs.assign(bytes, bytes + argsz);
    auto flags = get<uint32_t>(last_set_irqs, 4);
    auto index = get<uint32_t>(last_set_irqs, 8);
    auto start = get<uint32_t>(last_set_irqs, 12);
    auto count = get<uint32_t>(last_set_irqs, 16);
    if (index != kMsiIrqIndex || start != 0)
        return err(EINVAL);
    if (flags == (uapi::kIrqSetDataEventfd | uapi::kIrqSetActionTrigger) && count == 1 &&
        argsz >= uapi::kIrqSetHeaderSize + sizeof(int32_t)) {
        int fd = get<int32_t>(last_set_irqs, uapi::kIrqSetHeaderSize);
        if (find(fd, Kind::eventfd) == nullptr)
            return err(EBADF);
        msi_eventfd = fd;
        return 0;
    }
    if (flags == (uapi::kIrqSetDataNone | uapi::kIrqSetActionTrigger) && count == 0) {
        msi_eventfd = -1;
        return 0;
    }
    return err(EINVAL);
}

// --- iommufd and the mapping bookkeeping both IOMMU flavours share -------------------------

Result<int> FakeVfioKernel::iommufd_ioctl(unsigned long request, void* arg)
{
    switch (request) {
        case uapi::kIoasAlloc: {
            auto alloc = copy_in<uapi::IoasAlloc>(arg);
            if (ioas_allocated_)
                return err(ENOSPC);  // one is all this fake offers
            ioas_allocated_ = true;
            alloc.out_ioas_id = kIoasId;
            copy_out(arg, alloc);
            return 0;
        }
        case uapi::kIoasIovaRanges: {
            auto q = copy_in<uapi::IoasIovaRanges>(arg);
            if (q.ioas_id != kIoasId || !ioas_allocated_)
                return err(ENOENT);
            const auto n = static_cast<uint32_t>(iova_ranges.size());
            bool fits = q.num_iovas >= n;
            for (uint32_t i = 0; fits && i < n; ++i) {
                uapi::IovaRange r{iova_ranges[i].first, iova_ranges[i].second};
                // The uapi carries the caller's array as a u64, as the kernel sees it.
                // NOLINTNEXTLINE(performance-no-int-to-ptr)
                std::memcpy(reinterpret_cast<std::byte*>(q.allowed_iovas) + i * sizeof(r), &r,
                            sizeof(r));
            }
            q.num_iovas = n;
            q.out_iova_alignment = kPageSize;
            copy_out(arg, q);
            return fits ? Result<int>(0) : err(EMSGSIZE);
        }
        case uapi::kIoasMap: {
            auto m = copy_in<uapi::IoasMap>(arg);
            if (m.ioas_id != kIoasId || (m.flags & uapi::kIoasMapFixedIova) == 0)
                return err(EINVAL);
            return map(m.user_va, m.iova, m.length, m.flags);
        }
        case uapi::kIoasUnmap: {
            auto u = copy_in<uapi::IoasUnmap>(arg);
            if (u.ioas_id != kIoasId)
                return err(ENOENT);
            auto r = unmap_exact(u.iova, u.length);
            copy_out(arg, u);
            return r;
        }
        case uapi::kIommuDestroy: {
            auto d = copy_in<uapi::IommuDestroy>(arg);
            // An IOAS still attached to a device is busy.
            if (d.id != kIoasId || !ioas_allocated_)
                return err(ENOENT);
            if (attached_)
                return err(EBUSY);
            ioas_allocated_ = false;
            mappings.clear();
            pinned_ = 0;
            return 0;
        }
        default:
            return err(ENOTTY);
    }
}

Result<int> FakeVfioKernel::map(uint64_t vaddr, uint64_t iova, uint64_t size, uint32_t flags)
{
    if (map_errno != 0)
        return err(map_errno);
    if (size == 0 || iova % kPageSize != 0 || size % kPageSize != 0)
        return err(EINVAL);
    for (const auto& [at, m] : mappings)
        if (iova < at + m.size && at < iova + size)
            return err(EEXIST);
    // Both type1 and iommufd charge pinned pages against RLIMIT_MEMLOCK.
    if (memlock != kMemlockUnlimited && pinned_ + size > memlock)
        return err(ENOMEM);
    pinned_ += size;
    mappings[iova] = {vaddr, size, flags};
    return 0;
}

Result<int> FakeVfioKernel::unmap_exact(uint64_t iova, uint64_t& size)
{
    auto it = mappings.find(iova);
    if (it == mappings.end() || it->second.size != size) {
        size = 0;
        return err(ENOENT);
    }
    pinned_ -= size;
    mappings.erase(it);
    return 0;
}

}  // namespace ism::vfio::testing
