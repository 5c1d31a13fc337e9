// SPDX-License-Identifier: MIT
// DMA memory carved from a function's arena of the shared fabric file.
#include "sim/dma_arena.hpp"

#include <fcntl.h>
#include <sys/mman.h>

#include <cstring>
#include <vector>

namespace ism::sim::detail {
namespace {

class SimDmaMemory final : public vfio::DmaMemory {
public:
    SimDmaMemory(const SimDmaMemory&) = delete;
    SimDmaMemory& operator=(const SimDmaMemory&) = delete;
    SimDmaMemory(std::shared_ptr<DmaArena> arena, std::byte* data, uint64_t off, uint64_t size)
        : DmaMemory(data, size), arena_(std::move(arena)), off_(off)
    {
    }
    ~SimDmaMemory() override { arena_->release(off_, size()); }

private:
    std::shared_ptr<DmaArena> arena_;
    uint64_t off_;
};

}  // namespace

DmaArena::DmaArena(std::shared_ptr<FabricMap> map, uint32_t slot)
    : map_(std::move(map)), slot_(slot)
{
    free_.emplace(0, kDmaArenaSize);
}

Result<std::unique_ptr<vfio::DmaMemory>> DmaArena::allocate(std::size_t size)
{
    if (size == 0)
        return fail(errc::bad_argument);
    const uint64_t len = page_round(size);
    std::lock_guard lock(mu_);
    if (detached_)
        return fail_errno(ENODEV);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
        if (it->second < len)
            continue;
        const uint64_t off = it->first;
        if (::fallocate(map_->fd(), 0, static_cast<off_t>(map_->arena_file_offset(slot_) + off),
                        static_cast<off_t>(len)) < 0)
            return fail_errno();
        const uint64_t rest = it->second - len;
        free_.erase(it);
        if (rest != 0)
            free_.emplace(off + len, rest);
        live_.emplace(off, len);
        return std::make_unique<SimDmaMemory>(shared_from_this(), map_->arena(slot_) + off, off,
                                              len);
    }
    return fail(errc::dma_exhausted);
}

std::optional<uint64_t> DmaArena::offset_of(const vfio::DmaMemory& mem)
{
    std::lock_guard lock(mu_);
    const std::byte* base = map_->arena(slot_);
    if (detached_ || mem.data() < base || mem.data() >= base + kDmaArenaSize)
        return std::nullopt;
    const auto off = static_cast<uint64_t>(mem.data() - base);
    const auto it = live_.find(off);
    if (it == live_.end() || it->second != mem.size())
        return std::nullopt;
    return off;
}

void DmaArena::release(uint64_t off, uint64_t size)
{
    std::lock_guard lock(mu_);
    live_.erase(off);
    if (detached_)
        return;  // private pages now; they go with the fabric mapping
    {
        // Memory freed while still mapped: drop the mappings, so the device cannot write
        // into whatever the range is reused for (the DMA translation now fails).
        SlotLock slot_lock(map_->slot(slot_));
        Slot& s = map_->slot(slot_);
        for (uint32_t m = 0; m < s.mapping_count;) {
            const Mapping& mp = s.mappings[m];
            if (mp.arena_off < off + size && off < mp.arena_off + mp.size)
                s.mappings[m] = s.mappings[--s.mapping_count];
            else
                ++m;
        }
    }
    (void)::fallocate(map_->fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      static_cast<off_t>(map_->arena_file_offset(slot_) + off),
                      static_cast<off_t>(size));
    auto [it, inserted] = free_.emplace(off, size);
    if (auto next = std::next(it); next != free_.end() && it->first + it->second == next->first) {
        it->second += next->second;
        free_.erase(next);
    }
    if (it != free_.begin()) {
        auto prev = std::prev(it);
        if (prev->first + prev->second == it->first) {
            prev->second += it->second;
            free_.erase(it);
        }
    }
}

void DmaArena::detach()
{
    std::lock_guard lock(mu_);
    detached_ = true;
    for (const auto& [off, size] : live_) {
        std::byte* p = map_->arena(slot_) + off;
        std::vector<std::byte> copy(p, p + size);
        void* q =
            ::mmap(p, size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q != MAP_FAILED)
            std::memcpy(p, copy.data(), size);
    }
}

}  // namespace ism::sim::detail
