// SPDX-License-Identifier: MIT
// VfioDeviceFile: device info, region access, DMA and MSI over an open VFIO device fd.
#include "ism/vfio/vfio_device_file.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "vfio/backend.hpp"
#include "vfio/cap_chain.hpp"
#include "vfio/sysfs_function.hpp"
#include "vfio/uapi.hpp"

namespace ism::vfio {
namespace {

// A GET_INFO reply with more capability bytes than this is not from a real kernel.
constexpr uint32_t kMaxDeviceInfoSize = 64 * 1024;
constexpr std::size_t kIrqCounterSize = sizeof(uint64_t);

template <class T>
void store_native(std::span<std::byte> bytes, std::size_t offset, T value)
{
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

bool is_permission_error(const std::error_code& ec)
{
    return ec == std::errc::permission_denied || ec == std::errc::operation_not_permitted;
}

}  // namespace

VfioDeviceFile::VfioDeviceFile(Sys& sys, std::string bdf, OpenedDevice opened)
    : sys_(sys),
      bdf_(std::move(bdf)),
      backend_(std::move(opened.backend)),
      device_(std::move(opened.device))
{
}

VfioDeviceFile::~VfioDeviceFile()
{
    // Teardown order (docs/hardware.md 3.4): the interrupt first, then the DMA mappings the
    // device layer has already unregistered, then the device fd, then the IOMMU objects.
    (void)disable_msi();
    irq_.reset();
    while (!mappings_.empty()) {
        auto it = mappings_.begin();
        (void)backend_->unmap(it->first, it->second.size);
        mappings_.erase(it);
    }
    backend_->release_device(device_.get());
    device_.reset();
    backend_.reset();
}

std::string VfioDeviceFile::describe() const
{
    return "vfio " + bdf_;
}

int VfioDeviceFile::device_fd() const noexcept
{
    return device_.get();
}

const char* VfioDeviceFile::backend_name() const
{
    return backend_->name();
}

Result<std::vector<std::byte>> VfioDeviceFile::get_info_buffer()
{
    uint32_t argsz = uapi::kDeviceInfoSize;
    std::vector<std::byte> buf;
    // The first call reports how big the reply with capabilities is; the second gets it.
    for (int attempt = 0; attempt < 2; ++attempt) {
        buf.assign(argsz, std::byte{0});
        store_native(std::span(buf), 0, argsz);
        if (auto r = sys_.ioctl(device_.get(), uapi::kDeviceGetInfo, buf.data()); !r)
            return tl::unexpected(r.error());
        uint32_t wanted = load_native<uint32_t>(buf, 0);
        if ((load_native<uint32_t>(buf, 4) & kDeviceFlagCaps) == 0 || wanted <= argsz)
            return buf;
        if (wanted > kMaxDeviceInfoSize || attempt == 1)
            return fail(errc::bad_capability);
        argsz = wanted;
    }
    return buf;
}

Result<DeviceInfo> VfioDeviceFile::device_info()
{
    auto buf = get_info_buffer();
    if (!buf)
        return tl::unexpected(buf.error());
    return DeviceInfo{load_native<uint32_t>(*buf, 4), load_native<uint32_t>(*buf, 8),
                      load_native<uint32_t>(*buf, 12)};
}

Result<ZpciInfo> VfioDeviceFile::zpci_info()
{
    auto buf = get_info_buffer();
    if (!buf)
        return tl::unexpected(buf.error());
    return parse_zpci_caps(*buf);
}

Result<RegionInfo> VfioDeviceFile::region_info(uint32_t index)
{
    vfio_region_info info{};
    info.argsz = sizeof(info);
    info.index = index;
    if (auto r = sys_.ioctl(device_.get(), uapi::kDeviceGetRegionInfo, &info); !r) {
        // With a correct argsz the only EINVAL is an index the device does not have.
        if (r.error() == std::errc::invalid_argument)
            return fail(errc::bad_region);
        return tl::unexpected(r.error());
    }
    // The offset is the driver's: vfio-pci uses index << 40, ism_vfio_pci index << 48.
    return RegionInfo{index, info.flags, info.size, info.offset};
}

Result<IrqInfo> VfioDeviceFile::irq_info(uint32_t index)
{
    vfio_irq_info info{};
    info.argsz = sizeof(info);
    info.index = index;
    if (auto r = sys_.ioctl(device_.get(), uapi::kDeviceGetIrqInfo, &info); !r) {
        if (r.error() == std::errc::invalid_argument)
            return fail(errc::bad_argument);
        return tl::unexpected(r.error());
    }
    return IrqInfo{index, info.flags, info.count};
}

Result<void> VfioDeviceFile::read(uint64_t offset, std::span<std::byte> out)
{
    Result<std::size_t> n;
    // A region read is a load (PCILG) without side effects, so EINTR may be retried.
    do {
        n = sys_.pread(device_.get(), out.data(), out.size(), offset);
    } while (!n && n.error() == std::errc::interrupted);
    if (!n)
        return tl::unexpected(n.error());
    if (*n != out.size())
        return fail(errc::short_access);
    return {};
}

Result<void> VfioDeviceFile::write(uint64_t offset, std::span<const std::byte> in)
{
    // One pwrite is one PCISTB. Never retried or split: a partial or repeated store to
    // BAR0 or BAR2 would be a different store (and could re-send a signal).
    auto n = sys_.pwrite(device_.get(), in.data(), in.size(), offset);
    if (!n)
        return tl::unexpected(n.error());
    if (*n != in.size())
        return fail(errc::short_access);
    return {};
}

Result<void> VfioDeviceFile::reset()
{
    if (auto r = sys_.ioctl_value(device_.get(), uapi::kDeviceReset, 0); !r)
        return tl::unexpected(r.error());
    return {};
}

// --- interrupts ---------------------------------------------------------------------------

Result<void> VfioDeviceFile::enable_msi()
{
    if (irq_.valid())
        return {};
    auto efd = sys_.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!efd)
        return tl::unexpected(efd.error());
    SysFd irq(sys_, *efd);

    // vfio_irq_set with one s32 eventfd in data[]: MSI (index 1), vector 0.
    std::array<std::byte, uapi::kIrqSetHeaderSize + sizeof(int32_t)> set{};
    store_native<uint32_t>(set, 0, static_cast<uint32_t>(set.size()));
    store_native<uint32_t>(set, 4, uapi::kIrqSetDataEventfd | uapi::kIrqSetActionTrigger);
    store_native<uint32_t>(set, 8, kMsiIrqIndex);
    store_native<uint32_t>(set, 12, 0);
    store_native<uint32_t>(set, 16, 1);
    store_native<int32_t>(set, uapi::kIrqSetHeaderSize, irq.get());
    if (auto r = sys_.ioctl(device_.get(), uapi::kDeviceSetIrqs, set.data()); !r)
        return tl::unexpected(r.error());
    irq_ = std::move(irq);
    return {};
}

Result<void> VfioDeviceFile::disable_msi()
{
    if (!irq_.valid())
        return {};
    std::array<std::byte, uapi::kIrqSetHeaderSize> set{};
    store_native<uint32_t>(set, 0, static_cast<uint32_t>(set.size()));
    store_native<uint32_t>(set, 4, uapi::kIrqSetDataNone | uapi::kIrqSetActionTrigger);
    store_native<uint32_t>(set, 8, kMsiIrqIndex);
    store_native<uint32_t>(set, 12, 0);
    store_native<uint32_t>(set, 16, 0);  // count 0 with DATA_NONE: tear the vector down
    if (auto r = sys_.ioctl(device_.get(), uapi::kDeviceSetIrqs, set.data()); !r)
        return tl::unexpected(r.error());
    irq_.reset();
    return {};
}

int VfioDeviceFile::irq_fd() const
{
    return irq_.get();
}

Result<uint64_t> VfioDeviceFile::consume_irq()
{
    if (!irq_.valid())
        return fail(errc::bad_argument);
    std::array<std::byte, kIrqCounterSize> counter{};
    Result<std::size_t> n;
    do {
        n = sys_.read(irq_.get(), counter.data(), counter.size());
    } while (!n && n.error() == std::errc::interrupted);
    if (!n) {
        if (n.error() == std::errc::resource_unavailable_try_again)
            return uint64_t{0};
        return tl::unexpected(n.error());
    }
    if (*n != counter.size())
        return fail(errc::short_access);
    return load_native<uint64_t>(counter, 0);
}

// --- opening ------------------------------------------------------------------------------

Result<std::unique_ptr<VfioDeviceFile>> open_vfio_device(std::string_view selector,
                                                         const VfioOptions& opts, Sys& sys)
{
    auto fn = find_function(sys, selector, opts.sysfs_root);
    if (!fn)
        return tl::unexpected(fn.error());
    if (auto r = check_driver(sys, *fn, opts.driver); !r)
        return tl::unexpected(r.error());

    Result<OpenedDevice> opened = fail(errc::no_iommu_backend);
    switch (opts.backend) {
        case VfioOptions::Backend::container:
            opened = open_with_container(sys, *fn, opts.dev_root);
            break;
        case VfioOptions::Backend::iommufd:
            opened = open_with_iommufd(sys, *fn, opts.dev_root);
            break;
        case VfioOptions::Backend::automatic: {
            auto cdev = vfio_cdev_of(sys, *fn);
            bool have_iommufd = cdev && sys.exists(opts.dev_root + "/iommu") &&
                                sys.exists(opts.dev_root + "/vfio/devices/" + *cdev);
            if (have_iommufd)
                opened = open_with_iommufd(sys, *fn, opts.dev_root);
            // Whether the s390 IOMMU works with iommufd is not established; the legacy flow
            // is what QEMU uses there. A permission problem would hit both, so report it.
            if (!have_iommufd || (!opened && !is_permission_error(opened.error())))
                opened = open_with_container(sys, *fn, opts.dev_root);
            break;
        }
    }
    if (!opened)
        return tl::unexpected(opened.error());
    return std::unique_ptr<VfioDeviceFile>(
        new VfioDeviceFile(sys, std::move(fn->bdf), std::move(*opened)));
}

}  // namespace ism::vfio
