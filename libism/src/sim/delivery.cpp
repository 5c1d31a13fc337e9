// SPDX-License-Identifier: MIT
// What the emulated device writes into a function's memory: DMA translation through the
// function's mapping table, SBA bits and masks, event queue entries, and the decision to
// raise an interrupt. The target slot's lock is held by every caller.
//
// The guest driver reads and clears these structures concurrently from its own process,
// so every store is an atomic, naturally aligned, big-endian word (byte_order.hpp), and
// whatever tells the driver to look (an SBA bit, the event index) is stored after the
// data it announces.
#include <time.h>

#include <algorithm>
#include <atomic>

#include "sim/byte_order.hpp"
#include "sim/fabric_map.hpp"

namespace ism::sim::detail {
namespace {

constexpr uint64_t kSbaSummaryBit = 0x8000'0000;  // s: bit 31 of the be32 at offset 0
constexpr uint64_t kSbaEventBit = 0x4000'0000;    // e: bit 30
constexpr uint64_t kSbaDmbBitsOffset = 4;
constexpr uint64_t kSbaDmbeMaskOffset = 256;
// Seconds from the TOD clock's epoch (1900-01-01) to the Unix epoch.
constexpr uint64_t kTodEpochOffset = 2'208'988'800ULL;
constexpr unsigned kTodMicrosecondShift = 12;  // TOD bit 51 is one microsecond

uint16_t ror16(uint16_t v, unsigned n)
{
    n %= 16;
    return static_cast<uint16_t>((v >> n) | (v << ((16 - n) % 16)));
}

}  // namespace

std::byte* translate(const FabricMap& map, uint32_t i, uint64_t iova, uint64_t len)
{
    const Slot& s = map.slot(i);
    for (uint32_t m = 0; m < s.mapping_count && m < kMaxMappings; ++m) {
        const Mapping& mp = s.mappings[m];
        if (iova >= mp.iova && len <= mp.size && iova - mp.iova <= mp.size - len)
            return map.arena(i) + mp.arena_off + (iova - mp.iova);
    }
    return nullptr;
}

bool range_mapped(const FabricMap& map, uint32_t i, uint64_t iova, uint64_t len)
{
    // Adjacent mappings may cover a range together; walk it page by page.
    for (uint64_t done = 0; done < len;) {
        const uint64_t page_end = (iova + done) / kPageSize * kPageSize + kPageSize;
        const uint64_t chunk = std::min(len - done, page_end - (iova + done));
        if (translate(map, i, iova + done, chunk) == nullptr)
            return false;
        done += chunk;
    }
    return true;
}

bool irq_wanted_locked(Slot& s)
{
    // The device only interrupts while both SBA and event queue are registered.
    if (s.sba_registered == 0 || s.ieq_registered == 0 || s.msi_enabled == 0)
        return false;
    if (s.irq_hold != 0) {
        s.irq_held = 1;
        return false;
    }
    return true;
}

namespace {

// The device interrupts when it sets the summary bit s. While s is still set the driver
// has not started its scan yet, which clears s first and then finds whatever was added
// meanwhile: a second interrupt would only be coalesced, so none is raised.
bool raise_on_summary_locked(Slot& s, std::byte* sba, uint32_t bits)
{
    const uint32_t before = or_be<uint32_t>(sba, bits);
    if ((before & kSbaSummaryBit) != 0)
        return false;
    return irq_wanted_locked(s);
}

}  // namespace

uint64_t tod_clock()
{
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    const uint64_t us = (static_cast<uint64_t>(ts.tv_sec) + kTodEpochOffset) * 1'000'000ULL +
                        static_cast<uint64_t>(ts.tv_nsec) / 1000;
    return us << kTodMicrosecondShift;
}

void write_ieq_header(std::byte* ieq, uint64_t len)
{
    store_shared_be<uint64_t>(ieq + 8, len, std::memory_order_relaxed);
    store_shared_be<uint64_t>(ieq + 16, kIeqEntrySize, std::memory_order_relaxed);
    store_shared_be<uint64_t>(ieq + 24, 0, std::memory_order_relaxed);
    store_shared_be<uint64_t>(ieq, 0, std::memory_order_release);
}

bool post_event_locked(const FabricMap& map, uint32_t i, uint32_t type, uint32_t code, uint64_t tok,
                       uint64_t info)
{
    Slot& s = map.slot(i);
    if (s.ieq_registered == 0)
        return false;
    std::byte* ieq = translate(map, i, s.ieq_iova, kIeqMinLength);
    if (ieq == nullptr)
        return false;  // unmapped under the device: the event is lost, as a DMA error
    const uint32_t n = s.ieq_next % kIeqEntries;
    std::byte* e = ieq + kIeqHeaderSize + n * kIeqEntrySize;
    store_shared_be<uint32_t>(e, type, std::memory_order_relaxed);
    store_shared_be<uint32_t>(e + 4, code, std::memory_order_relaxed);
    store_shared_be<uint64_t>(e + 8, tok, std::memory_order_relaxed);
    store_shared_be<uint64_t>(e + 16, tod_clock(), std::memory_order_relaxed);
    store_shared_be<uint64_t>(e + 24, info, std::memory_order_relaxed);
    // idx = newest slot + 1 (1..15). More than 15 unread events overwrite the oldest and
    // nothing reports it, as on hardware.
    s.ieq_next = (n + 1) % kIeqEntries;
    store_shared_be<uint64_t>(ieq, n + 1, std::memory_order_release);
    if (s.sba_registered == 0)
        return false;
    std::byte* sba = translate(map, i, s.sba_iova, kSbaSize);
    if (sba == nullptr)
        return false;
    return raise_on_summary_locked(s, sba, static_cast<uint32_t>(kSbaSummaryBit | kSbaEventBit));
}

bool signal_dmb_locked(const FabricMap& map, uint32_t i, uint32_t sba_idx, uint32_t dmbe_idx)
{
    Slot& s = map.slot(i);
    if (s.sba_registered == 0)
        return false;
    std::byte* sba = translate(map, i, s.sba_iova, kSbaSize);
    if (sba == nullptr)
        return false;
    // Mask before bit: a driver that finds the bit set and then reads the mask sees ours.
    or_be<uint16_t>(sba + kSbaDmbeMaskOffset + 2 * uint64_t{sba_idx}, ror16(0x1000, dmbe_idx));
    or_be<uint32_t>(sba + kSbaDmbBitsOffset + 4 * uint64_t{sba_idx / 32},
                    uint32_t{0x8000'0000} >> (sba_idx % 32));
    return raise_on_summary_locked(s, sba, static_cast<uint32_t>(kSbaSummaryBit));
}

}  // namespace ism::sim::detail
