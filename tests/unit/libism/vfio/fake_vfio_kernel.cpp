// SPDX-License-Identifier: MIT
#include "fake_vfio_kernel.hpp"

#include <algorithm>
#include <cerrno>

#include "vfio/uapi.hpp"

namespace ism::vfio::testing {
namespace {

tl::unexpected<std::error_code> err(int e)
{
    return fail_errno(e);
}

}  // namespace

const char* request_name(unsigned long request)
{
    switch (request) {
        case uapi::kGetApiVersion:
            return "GET_API_VERSION";
        case uapi::kCheckExtension:
            return "CHECK_EXTENSION";
        case uapi::kSetIommu:
            return "SET_IOMMU";
        case uapi::kGroupGetStatus:
            return "GROUP_GET_STATUS";
        case uapi::kGroupSetContainer:
            return "GROUP_SET_CONTAINER";
        case uapi::kGroupGetDeviceFd:
            return "GROUP_GET_DEVICE_FD";
        case uapi::kDeviceGetInfo:
            return "GET_INFO";
        case uapi::kDeviceGetRegionInfo:
            return "GET_REGION_INFO";
        case uapi::kDeviceGetIrqInfo:
            return "GET_IRQ_INFO";
        case uapi::kDeviceSetIrqs:
            return "SET_IRQS";
        case uapi::kDeviceReset:
            return "RESET";
        case uapi::kIommuGetInfo:
            return "IOMMU_GET_INFO";
        case uapi::kIommuMapDma:
            return "MAP_DMA";
        case uapi::kIommuUnmapDma:
            return "UNMAP_DMA";
        case uapi::kDeviceBindIommufd:
            return "BIND_IOMMUFD";
        case uapi::kDeviceAttachIommufdPt:
            return "ATTACH_IOMMUFD_PT";
        case uapi::kDeviceDetachIommufdPt:
            return "DETACH_IOMMUFD_PT";
        case uapi::kIommuDestroy:
            return "DESTROY";
        case uapi::kIoasAlloc:
            return "IOAS_ALLOC";
        case uapi::kIoasIovaRanges:
            return "IOAS_IOVA_RANGES";
        case uapi::kIoasMap:
            return "IOAS_MAP";
        case uapi::kIoasUnmap:
            return "IOAS_UNMAP";
        default:
            return "UNKNOWN";
    }
}

FakeVfioKernel::FakeVfioKernel()
{
    nodes = {"/dev/vfio/vfio", "/dev/iommu"};
    iova_ranges = {{0, (1ULL << 32) - 1}};
    add_function(FakeFunction{});
    set_region_layout(48);
}

FakeVfioKernel::~FakeVfioKernel() = default;

void FakeVfioKernel::add_function(const FakeFunction& fn)
{
    const std::string dir = "/sys/bus/pci/devices/" + fn.bdf;
    files[dir + "/function_id"] = fn.function_id;
    files[dir + "/vendor"] = "0x1014\n";
    links[dir + "/iommu_group"] = "../../../kernel/iommu_groups/" + fn.group;
    if (!fn.driver.empty())
        links[dir + "/driver"] = "../../../bus/pci/drivers/" + fn.driver;
    nodes.insert("/dev/vfio/" + fn.group);
    if (!fn.cdev.empty()) {
        files[dir + "/vfio-dev/" + fn.cdev + "/dev"] = "511:3\n";
        nodes.insert("/dev/vfio/devices/" + fn.cdev);
    }
}

void FakeVfioKernel::set_region_layout(unsigned shift)
{
    const uint32_t rw = kRegionFlagRead | kRegionFlagWrite;
    regions.clear();
    regions[kBar0RegionIndex] = {kBar0RegionIndex, rw, kBar0Size, 0};
    regions[kBar2RegionIndex] = {kBar2RegionIndex, rw, 0x2000, uint64_t{kBar2RegionIndex} << shift};
    regions[kConfigRegionIndex] = {kConfigRegionIndex, rw, 4096,
                                   uint64_t{kConfigRegionIndex} << shift};
    // BAR1, 3-5 and ROM exist but are empty, as on the real function.
    for (uint32_t index : {1U, 3U, 4U, 5U, 6U, 8U})
        regions[index] = {index, 0, 0, uint64_t{index} << shift};
}

void FakeVfioKernel::fire_msi(uint64_t n)
{
    if (auto it = fds_.find(msi_eventfd); it != fds_.end())
        it->second.counter += n;
}

std::vector<std::string> FakeVfioKernel::log_of(const std::string& prefix) const
{
    std::vector<std::string> out;
    for (const std::string& entry : log)
        if (entry.compare(0, prefix.size(), prefix) == 0)
            out.push_back(entry);
    return out;
}

Result<int> FakeVfioKernel::new_fd(Kind kind, std::string name)
{
    int fd = next_fd_++;
    fds_[fd] = Fd{kind, std::move(name)};
    return fd;
}

FakeVfioKernel::Fd* FakeVfioKernel::find(int fd, Kind kind)
{
    auto it = fds_.find(fd);
    return it != fds_.end() && it->second.kind == kind ? &it->second : nullptr;
}

// --- files ----------------------------------------------------------------------------------

Result<int> FakeVfioKernel::open(const std::string& path, int /*flags*/)
{
    log.push_back("open " + path);
    if (auto it = open_errno.find(path); it != open_errno.end())
        return err(it->second);
    if (nodes.count(path) == 0)
        return err(ENOENT);
    if (path == "/dev/vfio/vfio")
        return new_fd(Kind::container, "");
    if (path == "/dev/iommu")
        return new_fd(Kind::iommufd, "");
    const std::string cdev_dir = "/dev/vfio/devices/";
    if (path.compare(0, cdev_dir.size(), cdev_dir) == 0) {
        auto fd = new_fd(Kind::device, path.substr(cdev_dir.size()));
        fds_[*fd].cdev = true;
        return fd;
    }
    std::string group = path.substr(std::string("/dev/vfio/").size());
    if (!open_groups_.insert(group).second)
        return err(EBUSY);  // a group is opened once
    return new_fd(Kind::group, group);
}

void FakeVfioKernel::close(int fd)
{
    auto it = fds_.find(fd);
    if (it == fds_.end()) {
        ++bad_closes;
        return;
    }
    static constexpr const char* kNames[] = {"container", "group", "device", "iommufd", "eventfd"};
    log.push_back(std::string("close ") + kNames[static_cast<int>(it->second.kind)]);
    switch (it->second.kind) {
        case Kind::group:
            open_groups_.erase(it->second.name);
            group_has_container_ = false;
            break;
        case Kind::container:
        case Kind::iommufd:
            // Like the kernel: the last reference to the IOMMU context drops every mapping.
            mappings.clear();
            pinned_ = 0;
            iommu_set_ = false;
            ioas_allocated_ = false;
            break;
        case Kind::device:
            msi_eventfd = -1;
            break;
        case Kind::eventfd:
            break;
    }
    fds_.erase(it);
}

Result<std::string> FakeVfioKernel::readlink(const std::string& path)
{
    auto it = links.find(path);
    if (it == links.end())
        return err(ENOENT);
    return it->second;
}

Result<std::string> FakeVfioKernel::read_file(const std::string& path)
{
    if (auto it = open_errno.find(path); it != open_errno.end())
        return err(it->second);
    auto it = files.find(path);
    if (it == files.end())
        return err(ENOENT);
    return it->second;
}

Result<std::vector<std::string>> FakeVfioKernel::list_dir(const std::string& path)
{
    std::set<std::string> names;
    const std::string prefix = path + "/";
    auto collect = [&names, &prefix](const std::string& key) {
        if (key.compare(0, prefix.size(), prefix) == 0)
            names.insert(key.substr(prefix.size(), key.find('/', prefix.size()) - prefix.size()));
    };
    for (const auto& [key, value] : files)
        collect(key);
    for (const auto& [key, value] : links)
        collect(key);
    for (const auto& key : nodes)
        collect(key);
    if (names.empty())
        return err(ENOENT);
    return std::vector<std::string>(names.begin(), names.end());
}

bool FakeVfioKernel::exists(const std::string& path)
{
    if (files.count(path) || links.count(path) || nodes.count(path))
        return true;
    auto names = list_dir(path);
    return names.has_value();
}

Result<std::byte*> FakeVfioKernel::map_anonymous(std::size_t size)
{
    auto mem = Sys::real().map_anonymous(size);
    if (mem)
        ++live_dma_buffers;
    return mem;
}

void FakeVfioKernel::unmap(std::byte* addr, std::size_t size)
{
    --live_dma_buffers;
    Sys::real().unmap(addr, size);
}

Result<int> FakeVfioKernel::eventfd(unsigned int /*initval*/, int /*flags*/)
{
    return new_fd(Kind::eventfd, "");
}

Result<std::size_t> FakeVfioKernel::read(int fd, void* buf, std::size_t count)
{
    Fd* efd = find(fd, Kind::eventfd);
    if (efd == nullptr || count < sizeof(uint64_t))
        return err(EINVAL);
    if (efd->counter == 0)
        return err(EAGAIN);  // EFD_NONBLOCK
    std::memcpy(buf, &efd->counter, sizeof(uint64_t));
    efd->counter = 0;
    return sizeof(uint64_t);
}

// --- region access ----------------------------------------------------------------------------

Result<void> FakeVfioKernel::check_region_access(int fd, uint64_t offset, std::size_t count)
{
    Fd* device = find(fd, Kind::device);
    if (device == nullptr || (device->cdev && !device->bound))
        return err(EINVAL);
    for (const auto& [index, region] : regions)
        if (region.size != 0 && offset >= region.offset &&
            offset - region.offset <= region.size - count)
            return {};
    return err(EINVAL);
}

Result<std::size_t> FakeVfioKernel::pread(int fd, void* buf, std::size_t count, uint64_t offset)
{
    if (auto ok = check_region_access(fd, offset, count); !ok)
        return tl::unexpected(ok.error());
    if (pread_eintr > 0) {
        --pread_eintr;
        return err(EINTR);
    }
    std::size_t n = pread_returns.value_or(count);
    auto* out = static_cast<std::byte*>(buf);
    for (std::size_t i = 0; i < n; ++i)
        out[i] = static_cast<std::byte>((offset + i) & 0xff);
    accesses.push_back({false, offset, std::vector<std::byte>(out, out + n)});
    return n;
}

Result<std::size_t> FakeVfioKernel::pwrite(int fd, const void* buf, std::size_t count,
                                           uint64_t offset)
{
    if (auto ok = check_region_access(fd, offset, count); !ok)
        return tl::unexpected(ok.error());
    if (pwrite_eintr > 0) {
        --pwrite_eintr;
        return err(EINTR);
    }
    std::size_t n = pwrite_returns.value_or(count);
    const auto* in = static_cast<const std::byte*>(buf);
    accesses.push_back({true, offset, std::vector<std::byte>(in, in + n)});
    return n;
}

}  // namespace ism::vfio::testing
