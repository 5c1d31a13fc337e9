// SPDX-License-Identifier: MIT
// The legacy VFIO flow: /dev/vfio/vfio container + /dev/vfio/<group> (docs/hardware.md 3.1).
#include <fcntl.h>

#include <cstring>

#include "vfio/backend.hpp"
#include "vfio/cap_chain.hpp"
#include "vfio/uapi.hpp"

namespace ism::vfio {
namespace {

constexpr uint32_t kIommuInfoSize = sizeof(vfio_iommu_type1_info);
// An IOVA_RANGE list larger than this is not something a kernel would send.
constexpr uint32_t kMaxIommuInfoSize = 64 * 1024;
constexpr std::size_t kIovaRangesOffset = 16;  // after header, nr_iovas, reserved

class ContainerBackend final : public IommuBackend {
public:
    ContainerBackend(const ContainerBackend&) = delete;
    ContainerBackend& operator=(const ContainerBackend&) = delete;
    ContainerBackend(Sys& sys, SysFd container, SysFd group)
        : sys_(sys), container_(std::move(container)), group_(std::move(group))
    {
    }
    ~ContainerBackend() override
    {
        // Closing the last group fd detaches it from the container; then the container.
        group_.reset();
        container_.reset();
    }

    [[nodiscard]] const char* name() const override { return "container"; }
    [[nodiscard]] const std::vector<IovaWindow>& iova_windows() const override { return windows_; }

    Result<void> map(const std::byte* vaddr, uint64_t iova, uint64_t size) override
    {
        vfio_iommu_type1_dma_map map{};
        map.argsz = sizeof(map);
        map.flags = uapi::kDmaMapRead | uapi::kDmaMapWrite;
        map.vaddr = reinterpret_cast<uintptr_t>(vaddr);
        map.iova = iova;
        map.size = size;
        auto r = sys_.ioctl(container_.get(), uapi::kIommuMapDma, &map);
        if (!r)
            return tl::unexpected(r.error());
        return {};
    }

    Result<void> unmap(uint64_t iova, uint64_t size) override
    {
        vfio_iommu_type1_dma_unmap unmap{};
        unmap.argsz = sizeof(unmap);
        unmap.iova = iova;
        unmap.size = size;
        auto r = sys_.ioctl(container_.get(), uapi::kIommuUnmapDma, &unmap);
        if (!r)
            return tl::unexpected(r.error());
        // The kernel reports how much it unmapped; anything else means the bookkeeping
        // above disagrees with the IOMMU.
        if (unmap.size != size)
            return fail(errc::bad_argument);
        return {};
    }

    void release_device(int /*device_fd*/) override {}

    /// VFIO_IOMMU_GET_INFO and its IOVA_RANGE capability.
    Result<void> read_iova_windows();

private:
    Sys& sys_;
    SysFd container_;
    SysFd group_;
    std::vector<IovaWindow> windows_;
};

Result<void> ContainerBackend::read_iova_windows()
{
    std::vector<std::byte> buf(kIommuInfoSize);
    uint32_t argsz = kIommuInfoSize;
    // First call learns the size the capabilities need, the second fetches them.
    for (int attempt = 0; attempt < 2; ++attempt) {
        buf.assign(argsz, std::byte{0});
        std::memcpy(buf.data(), &argsz, sizeof(argsz));
        auto r = sys_.ioctl(container_.get(), uapi::kIommuGetInfo, buf.data());
        if (!r)
            return tl::unexpected(r.error());
        uint32_t wanted = load_native<uint32_t>(buf, 0);
        if (wanted <= argsz)
            break;
        if (wanted > kMaxIommuInfoSize || attempt == 1)
            return fail(errc::bad_capability);
        argsz = wanted;
    }
    if ((load_native<uint32_t>(buf, 4) & uapi::kIommuInfoCaps) == 0)
        return {};
    auto caps = walk_caps(buf, load_native<uint32_t>(buf, 16), kIommuInfoSize);
    if (!caps)
        return tl::unexpected(caps.error());
    for (const CapView& cap : *caps) {
        if (cap.id != uapi::kIommuCapIovaRange)
            continue;
        uint32_t n = load_native<uint32_t>(cap.bytes, 8);
        if (cap.bytes.size() < kIovaRangesOffset ||
            (cap.bytes.size() - kIovaRangesOffset) / sizeof(vfio_iova_range) < n)
            return fail(errc::bad_capability);
        for (uint32_t i = 0; i < n; ++i) {
            std::size_t at = kIovaRangesOffset + i * sizeof(vfio_iova_range);
            windows_.push_back(
                {load_native<uint64_t>(cap.bytes, at), load_native<uint64_t>(cap.bytes, at + 8)});
        }
        break;
    }
    return {};
}

/// TYPE1v2 if the container offers it, else TYPE1 (docs/hardware.md 3.1).
Result<unsigned long> pick_iommu_type(Sys& sys, int container)
{
    auto version = sys.ioctl_value(container, uapi::kGetApiVersion, 0);
    if (!version)
        return tl::unexpected(version.error());
    if (*version != uapi::kApiVersion)
        return fail(errc::no_iommu_backend);
    for (unsigned long type : {uapi::kType1v2Iommu, uapi::kType1Iommu}) {
        auto has = sys.ioctl_value(container, uapi::kCheckExtension, type);
        if (!has)
            return tl::unexpected(has.error());
        if (*has > 0)
            return type;
    }
    return fail(errc::no_iommu_backend);
}

}  // namespace

Result<OpenedDevice> open_with_container(Sys& sys, const PciFunction& fn,
                                         const std::string& dev_root)
{
    auto group_name = iommu_group_of(sys, fn);
    if (!group_name)
        return tl::unexpected(group_name.error());

    auto container_fd = sys.open(dev_root + "/vfio/vfio", O_RDWR | O_CLOEXEC);
    if (!container_fd) {
        if (container_fd.error() == std::errc::no_such_file_or_directory)
            return fail(errc::no_iommu_backend);
        return tl::unexpected(container_fd.error());
    }
    SysFd container(sys, *container_fd);
    auto type = pick_iommu_type(sys, container.get());
    if (!type)
        return tl::unexpected(type.error());

    auto group_fd = sys.open(dev_root + "/vfio/" + *group_name, O_RDWR | O_CLOEXEC);
    if (!group_fd)
        return tl::unexpected(group_fd.error());
    SysFd group(sys, *group_fd);

    vfio_group_status status{};
    status.argsz = sizeof(status);
    if (auto r = sys.ioctl(group.get(), uapi::kGroupGetStatus, &status); !r)
        return tl::unexpected(r.error());
    if ((status.flags & uapi::kGroupFlagViable) == 0)
        return fail(errc::group_not_viable);

    int container_arg = container.get();
    if (auto r = sys.ioctl(group.get(), uapi::kGroupSetContainer, &container_arg); !r)
        return tl::unexpected(r.error());
    if (auto r = sys.ioctl_value(container.get(), uapi::kSetIommu, *type); !r)
        return tl::unexpected(r.error());

    std::string bdf = fn.bdf;
    auto device_fd = sys.ioctl(group.get(), uapi::kGroupGetDeviceFd, bdf.data());
    if (!device_fd)
        return tl::unexpected(device_fd.error());
    SysFd device(sys, *device_fd);

    auto backend = std::make_unique<ContainerBackend>(sys, std::move(container), std::move(group));
    if (auto r = backend->read_iova_windows(); !r) {
        device.reset();  // the device goes before its group and container, always
        return tl::unexpected(r.error());
    }
    return OpenedDevice{std::move(backend), std::move(device)};
}

}  // namespace ism::vfio
