// SPDX-License-Identifier: MIT
// A function's DMA memory: page-aligned ranges of its arena in the fabric file (private).
//
// alloc_dma carves ranges out of the function's arena so that peers, which map the same
// file, can store into them. Pages are committed with fallocate when allocated (a full
// /dev/shm fails the allocation instead of raising SIGBUS later) and punched out when
// freed, so freed DMA memory reads as zeros when reused.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "ism/result.hpp"
#include "ism/vfio/device_file.hpp"
#include "sim/fabric_map.hpp"

namespace ism::sim::detail {

class DmaArena : public std::enable_shared_from_this<DmaArena> {
public:
    DmaArena(std::shared_ptr<FabricMap> map, uint32_t slot);

    Result<std::unique_ptr<vfio::DmaMemory>> allocate(std::size_t size);
    /// The arena offset of memory this arena handed out, if `mem` is one of its ranges.
    std::optional<uint64_t> offset_of(const vfio::DmaMemory& mem);
    /// Called by the memory object's destructor.
    void release(uint64_t off, uint64_t size);
    /// The function closes while memory is still held: give each live range private
    /// pages with the same contents, so it no longer aliases the slot's next owner.
    void detach();

private:
    std::mutex mu_;
    std::shared_ptr<FabricMap> map_;
    uint32_t slot_;
    bool detached_ = false;
    std::map<uint64_t, uint64_t> free_;  // arena offset -> size
    std::map<uint64_t, uint64_t> live_;
};

}  // namespace ism::sim::detail
