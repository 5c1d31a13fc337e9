// SPDX-License-Identifier: MIT
// VfioDeviceFile's DMA side: device-writable memory and its IOMMU mappings.
#include <cerrno>
#include <cstdint>
#include <iterator>

#include "ism/vfio/vfio_device_file.hpp"
#include "vfio/backend.hpp"

namespace ism::vfio {
namespace {

class VfioDmaMemory final : public DmaMemory {
public:
    VfioDmaMemory(const VfioDmaMemory&) = delete;
    VfioDmaMemory& operator=(const VfioDmaMemory&) = delete;
    VfioDmaMemory(Sys& sys, std::byte* data, std::size_t size) noexcept
        : DmaMemory(data, size), sys_(sys)
    {
    }
    ~VfioDmaMemory() override { sys_.unmap(data(), size()); }

private:
    Sys& sys_;
};

bool inside_a_window(const std::vector<IovaWindow>& windows, uint64_t first, uint64_t last)
{
    // No IOVA_RANGE information (old kernels): the kernel's own check is all there is.
    if (windows.empty())
        return true;
    for (const IovaWindow& w : windows)
        if (first >= w.start && last <= w.last)
            return true;
    return false;
}

}  // namespace

Result<std::unique_ptr<DmaMemory>> VfioDeviceFile::alloc_dma(std::size_t size)
{
    std::size_t page = sys_.page_size();
    if (size == 0 || size > SIZE_MAX - (page - 1))
        return fail(errc::bad_argument);
    std::size_t rounded = (size + page - 1) / page * page;
    auto mem = sys_.map_anonymous(rounded);
    if (!mem)
        return tl::unexpected(mem.error());
    return std::unique_ptr<DmaMemory>(new VfioDmaMemory(sys_, *mem, rounded));
}

Result<void> VfioDeviceFile::map_dma(const DmaMemory& mem, uint64_t iova)
{
    uint64_t page = sys_.page_size();
    uint64_t size = mem.size();
    auto vaddr = reinterpret_cast<uintptr_t>(mem.data());
    if (size == 0 || iova % page != 0 || size % page != 0 || vaddr % page != 0 ||
        iova > UINT64_MAX - (size - 1))
        return fail(errc::bad_argument);
    uint64_t last = iova + (size - 1);
    // The caller picks IOVAs; one outside what the IOMMU reported is the caller's error.
    if (!inside_a_window(backend_->iova_windows(), iova, last))
        return fail(errc::bad_argument);
    auto next = mappings_.lower_bound(iova);
    if (next != mappings_.end() && next->first <= last)
        return fail(errc::bad_argument);
    if (next != mappings_.begin()) {
        auto prev = std::prev(next);
        if (prev->first + (prev->second.size - 1) >= iova)
            return fail(errc::bad_argument);
    }

    if (auto r = backend_->map(mem.data(), iova, size); !r) {
        // type1 and iommufd both charge pinned pages to RLIMIT_MEMLOCK and answer ENOMEM
        // when it is exceeded. With an unlimited limit the ENOMEM is a real shortage.
        if (r.error() == std::errc::not_enough_memory) {
            auto limit = sys_.memlock_limit();
            if (limit && *limit != kMemlockUnlimited)
                return fail(errc::memlock_too_low);
        }
        return tl::unexpected(r.error());
    }
    mappings_.emplace(iova, Mapping{size});
    return {};
}

Result<void> VfioDeviceFile::unmap_dma(uint64_t iova, std::size_t size)
{
    auto it = mappings_.find(iova);
    if (it == mappings_.end() || it->second.size != size)
        return fail(errc::bad_argument);
    if (auto r = backend_->unmap(iova, size); !r)
        return r;  // still mapped as far as we know; the destructor tries again
    mappings_.erase(it);
    return {};
}

}  // namespace ism::vfio
