// SPDX-License-Identifier: MIT
// The iommufd flow: /dev/vfio/devices/vfioN bound to /dev/iommu (docs/hardware.md 3.2).
#include <fcntl.h>

#include <algorithm>
#include <cerrno>

#include "vfio/backend.hpp"
#include "vfio/uapi.hpp"

namespace ism::vfio {
namespace {

// More IOVA ranges than this would be a kernel bug; stops a grow-and-retry loop.
constexpr uint32_t kMaxIovaRanges = 1024;

class IommufdBackend final : public IommuBackend {
public:
    IommufdBackend(const IommufdBackend&) = delete;
    IommufdBackend& operator=(const IommufdBackend&) = delete;
    IommufdBackend(Sys& sys, SysFd iommufd) : sys_(sys), iommufd_(std::move(iommufd)) {}
    ~IommufdBackend() override
    {
        if (ioas_valid_) {
            uapi::IommuDestroy destroy{sizeof(destroy), ioas_id_};
            (void)sys_.ioctl(iommufd_.get(), uapi::kIommuDestroy, &destroy);
        }
        iommufd_.reset();
    }

    [[nodiscard]] const char* name() const override { return "iommufd"; }
    [[nodiscard]] const std::vector<IovaWindow>& iova_windows() const override { return windows_; }

    Result<void> map(const std::byte* vaddr, uint64_t iova, uint64_t size) override
    {
        uapi::IoasMap map{};
        map.size = sizeof(map);
        // FIXED_IOVA: the caller chose the IOVA; the device both reads and writes.
        map.flags = uapi::kIoasMapFixedIova | uapi::kIoasMapWriteable | uapi::kIoasMapReadable;
        map.ioas_id = ioas_id_;
        map.user_va = reinterpret_cast<uintptr_t>(vaddr);
        map.length = size;
        map.iova = iova;
        auto r = sys_.ioctl(iommufd_.get(), uapi::kIoasMap, &map);
        if (!r)
            return tl::unexpected(r.error());
        return {};
    }

    Result<void> unmap(uint64_t iova, uint64_t size) override
    {
        uapi::IoasUnmap unmap{sizeof(unmap), ioas_id_, iova, size};
        auto r = sys_.ioctl(iommufd_.get(), uapi::kIoasUnmap, &unmap);
        if (!r)
            return tl::unexpected(r.error());
        if (unmap.length != size)
            return fail(errc::bad_argument);
        return {};
    }

    void release_device(int device_fd) override
    {
        if (!attached_)
            return;
        uapi::DetachIommufdPt detach{sizeof(detach), 0};
        (void)sys_.ioctl(device_fd, uapi::kDeviceDetachIommufdPt, &detach);
        attached_ = false;
    }

    /// BIND_IOMMUFD (the cdev's first ioctl), IOAS_ALLOC, ATTACH_IOMMUFD_PT.
    Result<void> attach(int device_fd);
    /// IOAS_IOVA_RANGES, asked after attach so the device's reserved regions count.
    Result<void> read_iova_windows();

private:
    Sys& sys_;
    SysFd iommufd_;
    uint32_t ioas_id_ = 0;
    bool ioas_valid_ = false;
    bool attached_ = false;
    std::vector<IovaWindow> windows_;
};

Result<void> IommufdBackend::attach(int device_fd)
{
    uapi::BindIommufd bind{sizeof(bind), 0, iommufd_.get(), 0};
    if (auto r = sys_.ioctl(device_fd, uapi::kDeviceBindIommufd, &bind); !r)
        return tl::unexpected(r.error());

    uapi::IoasAlloc alloc{sizeof(alloc), 0, 0};
    if (auto r = sys_.ioctl(iommufd_.get(), uapi::kIoasAlloc, &alloc); !r)
        return tl::unexpected(r.error());
    ioas_id_ = alloc.out_ioas_id;
    ioas_valid_ = true;

    uapi::AttachIommufdPt attach{sizeof(attach), 0, ioas_id_};
    if (auto r = sys_.ioctl(device_fd, uapi::kDeviceAttachIommufdPt, &attach); !r)
        return tl::unexpected(r.error());
    attached_ = true;
    return {};
}

Result<void> IommufdBackend::read_iova_windows()
{
    std::vector<uapi::IovaRange> ranges;
    // The kernel answers EMSGSIZE with the count it needs when the array is too small;
    // the count can change between calls, hence the loop.
    for (;;) {
        uapi::IoasIovaRanges query{};
        query.size = sizeof(query);
        query.ioas_id = ioas_id_;
        query.num_iovas = static_cast<uint32_t>(ranges.size());
        query.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
        auto r = sys_.ioctl(iommufd_.get(), uapi::kIoasIovaRanges, &query);
        if (r) {
            ranges.resize(std::min<std::size_t>(query.num_iovas, ranges.size()));
            break;
        }
        if (r.error() != std::errc::message_size || query.num_iovas <= ranges.size() ||
            query.num_iovas > kMaxIovaRanges)
            return tl::unexpected(r.error());
        ranges.resize(query.num_iovas);
    }
    for (const uapi::IovaRange& range : ranges)
        windows_.push_back({range.start, range.last});
    return {};
}

}  // namespace

Result<OpenedDevice> open_with_iommufd(Sys& sys, const PciFunction& fn, const std::string& dev_root)
{
    auto cdev = vfio_cdev_of(sys, fn);
    if (!cdev)
        return tl::unexpected(cdev.error());
    auto device_fd = sys.open(dev_root + "/vfio/devices/" + *cdev, O_RDWR | O_CLOEXEC);
    if (!device_fd)
        return tl::unexpected(device_fd.error());
    SysFd device(sys, *device_fd);

    auto iommufd_fd = sys.open(dev_root + "/iommu", O_RDWR | O_CLOEXEC);
    if (!iommufd_fd)
        return tl::unexpected(iommufd_fd.error());
    auto backend = std::make_unique<IommufdBackend>(sys, SysFd(sys, *iommufd_fd));

    Result<void> ok = backend->attach(device.get());
    if (ok)
        ok = backend->read_iova_windows();
    if (!ok) {
        // Same order as a normal close: detach, device fd, then the IOAS and iommufd.
        backend->release_device(device.get());
        device.reset();
        return tl::unexpected(ok.error());
    }
    return OpenedDevice{std::move(backend), std::move(device)};
}

}  // namespace ism::vfio
