// SPDX-License-Identifier: MIT
// Layout of the shared fabric file (private to libism/sim).
//
// One file per fabric, mapped MAP_SHARED by every process with a function on it:
//
//   [0, 4 KiB)           FabricHeader; its first bytes double as OFD lock targets
//   [4 KiB, +256 KiB)    token table: u32 per token value (bits 32..47 of a token)
//   slots                kMaxFunctions Slot records, each padded to whole pages
//   arenas               kMaxFunctions x kDmaArenaSize bytes: the functions' DMA memory
//
// The file is sparse: arenas cost memory only for pages alloc_dma committed (fallocate),
// and freed or reclaimed ranges are punched out again.
//
// Byte order: every field of the file is big-endian (Be<T> below), as the hardware's
// structures are, and the layout is fixed (the static_asserts at the end), so that a
// native x86-64 process and an s390x process under qemu-user can share one fabric. What
// the guest driver sees (SBA, event queue, command area) is big-endian as well and lives
// in the arenas or in process memory. Shared words are only loaded, stored and
// compare-exchanged (a byte-swapped value compares and swaps like any other); nothing
// does arithmetic on a shared word atomically (fetch_add on a byte-swapped counter would
// carry into the wrong byte), a counter changes under a lock.
//
// Locking: slot claim/release, the token table and reclaim run under the fabric lock (an
// OFD lock on byte 0). Everything in a Slot after `lock` is guarded by that slot's lock
// (a CAS lock holding the owner's pid, stolen when the pid is dead), except the lookup
// fields state/pid/gid/generation, which are read atomically without it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ism/sim/sim_device_file.hpp"
#include "sim/byte_order.hpp"

namespace ism::sim::detail {

/// An unsigned integer field of the fabric file, big-endian in memory on every host. Reads
/// and writes convert; load/store/compare_exchange are the atomic accesses (on the
/// naturally aligned word, so qemu-user maps them to host atomics on the same memory).
template <class T>
class Be {
    static_assert(std::is_unsigned_v<T>);

public:
    Be() = default;
    constexpr Be(T v) noexcept : raw_(be_repr(v)) {}
    constexpr operator T() const noexcept { return be_repr(raw_); }
    constexpr Be& operator=(T v) noexcept
    {
        raw_ = be_repr(v);
        return *this;
    }
    constexpr Be& operator++() noexcept { return *this = static_cast<T>(T(*this) + 1); }
    constexpr Be& operator--() noexcept { return *this = static_cast<T>(T(*this) - 1); }
    constexpr T operator++(int) noexcept
    {
        const T old = *this;
        ++*this;
        return old;
    }
    constexpr T operator--(int) noexcept
    {
        const T old = *this;
        --*this;
        return old;
    }

    [[nodiscard]] T load(std::memory_order order) const noexcept
    {
        return be_repr(std::atomic_ref<T>(const_cast<T&>(raw_)).load(order));
    }
    void store(T v, std::memory_order order) noexcept
    {
        std::atomic_ref<T>(raw_).store(be_repr(v), order);
    }
    /// As std::atomic_ref::compare_exchange_strong; `expected` gets the current value.
    bool compare_exchange(T& expected, T desired, std::memory_order order) noexcept
    {
        T raw = be_repr(expected);
        const bool done = std::atomic_ref<T>(raw_).compare_exchange_strong(
            raw, be_repr(desired), order, std::memory_order_relaxed);
        expected = be_repr(raw);
        return done;
    }

private:
    T raw_;
};

using Be16 = Be<uint16_t>;
using Be32 = Be<uint32_t>;
using Be64 = Be<uint64_t>;

inline constexpr uint32_t kFabricMagic = 0x4953'4D46;  // "ISMF", big-endian: the bytes spell it
// 2: every field big-endian (1 was host byte order).
inline constexpr uint32_t kLayoutVersion = 2;
inline constexpr uint64_t kPageSize = 4096;

// SBA and event queue geometry (docs/hardware.md 1.7, 1.8).
inline constexpr uint32_t kSbaBits = 1920;
inline constexpr uint32_t kFirstSbaIdx = 32;  // Linux never uses the first u32 word
inline constexpr uint64_t kSbaSize = 4096;
inline constexpr uint64_t kIeqHeaderSize = 32;
inline constexpr uint64_t kIeqEntrySize = 32;
inline constexpr uint32_t kIeqEntries = 15;
inline constexpr uint64_t kIeqMinLength = kIeqHeaderSize + kIeqEntries * kIeqEntrySize;

inline constexpr uint32_t kMaxDmbEntries = kSbaBits - kFirstSbaIdx;  // one per usable bit
inline constexpr uint32_t kMaxMappings = 256;
inline constexpr uint32_t kMaxVlanIds = 64;
inline constexpr uint32_t kTokenValues = 1U << 16;
inline constexpr std::size_t kNameBytes = 64;

// Byte offsets of OFD locks in the fabric file: byte 0 is the fabric lock, byte
// kSlotLockBase + i is held by the process that owns slot i for as long as it lives.
inline constexpr int64_t kFabricLockByte = 0;
inline constexpr int64_t kSlotLockBase = 64;

enum SlotState : uint32_t { kSlotFree = 0, kSlotLive = 1 };
enum DmbState : uint32_t { kDmbFree = 0, kDmbRegistered = 1, kDmbRevoked = 2 };

struct FabricHeader {
    Be32 magic;
    Be32 version;
    Be64 nonce;  // random at creation: names interrupt sockets of this file
    Be64 file_size;
    Be64 arena_size;
    Be32 max_functions;
    Be32 next_token;  // token counter (values 1..0xFFFF, then wraps)
    Be16 pchid;
};

struct DmbEntry {  // indexed by sba_idx - kFirstSbaIdx
    Be64 token;
    Be64 iova;
    Be64 rgid;  // the one GID allowed to write
    Be32 len;
    Be32 state;  // DmbState
};

struct Mapping {  // a DMA mapping: iova -> offset in the owner's arena
    Be64 iova;
    Be64 arena_off;
    Be64 size;
};

struct Slot {
    Be32 lock;        // pid holding the slot lock, 0 when free
    Be32 state;       // SlotState (atomic, fabric lock to change)
    Be32 generation;  // bumped at every claim: names the interrupt socket
    Be32 pid;         // process that owns the function
    Be64 gid;
    char name[kNameBytes];
    Be32 max_dmbs;
    Be32 max_dmb_size;
    Be32 store_limit;
    Be32 msi_enabled;
    Be32 irq_hold;  // faults::hold_interrupts
    Be32 irq_held;  // an interrupt was held back
    Be32 sba_registered;
    Be32 ieq_registered;
    Be64 sba_iova;
    Be64 ieq_iova;
    Be64 ieq_len;
    Be32 ieq_next;  // entry the next event goes into, 0..14
    Be32 vlan_required;
    Be32 vlan_count;
    Be16 vlan_ids[kMaxVlanIds];
    Be32 dmb_count;
    Be32 mapping_count;        // mappings[0..mapping_count) are in use
    Be32 gid_disabled_events;  // FunctionOptions::gid_disabled_events
    Mapping mappings[kMaxMappings];
    DmbEntry dmbs[kMaxDmbEntries];
};

constexpr uint64_t page_round(uint64_t n)
{
    return (n + kPageSize - 1) / kPageSize * kPageSize;
}

inline constexpr uint64_t kTokenTableOffset = kPageSize;
inline constexpr uint64_t kSlotsOffset = kTokenTableOffset + kTokenValues * sizeof(uint32_t);
inline constexpr uint64_t kSlotStride = page_round(sizeof(Slot));
inline constexpr uint64_t kArenasOffset = kSlotsOffset + kMaxFunctions * kSlotStride;
inline constexpr uint64_t kFabricFileSize = kArenasOffset + kMaxFunctions * kDmaArenaSize;

// The layout is the same on every host: fixed here, checked wherever the sim is built.
static_assert(sizeof(Be16) == 2 && alignof(Be16) == 2);
static_assert(sizeof(Be32) == 4 && alignof(Be32) == 4);
static_assert(sizeof(Be64) == 8 && alignof(Be64) == 8);
static_assert(std::is_trivially_copyable_v<Slot> && std::is_standard_layout_v<Slot>);
static_assert(sizeof(FabricHeader) == 48 && offsetof(FabricHeader, nonce) == 8 &&
              offsetof(FabricHeader, max_functions) == 32 && offsetof(FabricHeader, pchid) == 40);
static_assert(sizeof(DmbEntry) == 32 && offsetof(DmbEntry, len) == 24);
static_assert(sizeof(Mapping) == 24);
static_assert(offsetof(Slot, gid) == 16 && offsetof(Slot, name) == 24 &&
              offsetof(Slot, sba_iova) == 120 && offsetof(Slot, vlan_ids) == 156 &&
              offsetof(Slot, dmb_count) == 284 && offsetof(Slot, gid_disabled_events) == 292 &&
              offsetof(Slot, mappings) == 296 &&
              offsetof(Slot, dmbs) == 296 + kMaxMappings * sizeof(Mapping));
static_assert(sizeof(Slot) == 296 + kMaxMappings * 24 + kMaxDmbEntries * 32);
static_assert(kArenasOffset % kPageSize == 0);

/// Token table entry (a Be32 per token value): (slot + 1) << 16 | sba_idx; 0 = token free.
constexpr uint32_t token_entry(uint32_t slot, uint32_t sba_idx)
{
    return ((slot + 1) << 16) | sba_idx;
}

}  // namespace ism::sim::detail
