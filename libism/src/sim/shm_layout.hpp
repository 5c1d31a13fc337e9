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
// and freed or reclaimed ranges are punched out again. This metadata is host byte order:
// only processes of one host share it. What the guest driver sees (SBA, event queue,
// command area) is big-endian and lives in the arenas or in process memory.
//
// Locking: slot claim/release, the token table and reclaim run under the fabric lock (an
// OFD lock on byte 0). Everything in a Slot after `lock` is guarded by that slot's lock
// (a CAS lock holding the owner's pid, stolen when the pid is dead), except the lookup
// fields state/pid/gid/generation, which are read atomically without it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ism/sim/sim_device_file.hpp"

namespace ism::sim::detail {

inline constexpr uint32_t kFabricMagic = 0x4953'4D46;  // "ISMF"
inline constexpr uint32_t kLayoutVersion = 1;
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
    uint32_t magic;
    uint32_t version;
    uint64_t nonce;  // random at creation: names interrupt sockets of this file
    uint64_t file_size;
    uint64_t arena_size;
    uint32_t max_functions;
    uint32_t next_token;  // token counter (values 1..0xFFFF, then wraps)
    uint16_t pchid;
};

struct DmbEntry {  // indexed by sba_idx - kFirstSbaIdx
    uint64_t token;
    uint64_t iova;
    uint64_t rgid;  // the one GID allowed to write
    uint32_t len;
    uint32_t state;  // DmbState
};

struct Mapping {  // a DMA mapping: iova -> offset in the owner's arena
    uint64_t iova;
    uint64_t arena_off;
    uint64_t size;
};

struct Slot {
    int32_t lock;         // pid holding the slot lock, 0 when free
    uint32_t state;       // SlotState (atomic, fabric lock to change)
    uint32_t generation;  // bumped at every claim: names the interrupt socket
    int32_t pid;          // process that owns the function
    uint64_t gid;
    char name[kNameBytes];
    uint32_t max_dmbs;
    uint32_t max_dmb_size;
    uint32_t store_limit;
    uint32_t msi_enabled;
    uint32_t irq_hold;  // faults::hold_interrupts
    uint32_t irq_held;  // an interrupt was held back
    uint32_t sba_registered;
    uint32_t ieq_registered;
    uint64_t sba_iova;
    uint64_t ieq_iova;
    uint64_t ieq_len;
    uint32_t ieq_next;  // entry the next event goes into, 0..14
    uint32_t vlan_required;
    uint32_t vlan_count;
    uint16_t vlan_ids[kMaxVlanIds];
    uint32_t dmb_count;
    uint32_t mapping_count;  // mappings[0..mapping_count) are in use
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

static_assert(sizeof(FabricHeader) <= kPageSize);
static_assert(kArenasOffset % kPageSize == 0);

/// Token table entry: (slot + 1) << 16 | sba_idx; 0 = token free.
constexpr uint32_t token_entry(uint32_t slot, uint32_t sba_idx)
{
    return ((slot + 1) << 16) | sba_idx;
}

}  // namespace ism::sim::detail
