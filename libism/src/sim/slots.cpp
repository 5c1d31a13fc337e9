// SPDX-License-Identifier: MIT
// Function slots: claim and release, liveness, and reclaiming the slots of dead processes.
//
// A slot is live while its owner holds an OFD write lock on the slot's byte of the fabric
// file. The kernel drops that lock when the owner's last descriptor closes, which includes
// being killed, so a dead owner is detected with F_OFD_GETLK and never by trusting a pid.
// Reclaim happens lazily: on open, on a store to the dead function's token, on a command
// that names its GID, and on faults::reap.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "sim/fabric_map.hpp"

namespace ism::sim::detail {
namespace {

// How long a positive liveness answer about another process's function is trusted.
constexpr uint64_t kLivenessCacheNs = 1'000'000;

uint32_t load_state(const Slot& s)
{
    return s.state.load(std::memory_order_acquire);
}

void store_state(Slot& s, uint32_t state)
{
    s.state.store(state, std::memory_order_release);
}

// The gone function's GID vanished: every live function that asked for it
// (gid_disabled_events) and registered a DMB for that GID gets a DEV event "GID disabled"
// (tok = that GID). The others learn it as real ISM peers do: from failing stores.
void notify_gid_gone(FabricMap& map, uint32_t gone, uint64_t gid, IrqSender& irq)
{
    for (uint32_t j = 0; j < kMaxFunctions; ++j) {
        // The flag is set when the slot is claimed, before it turns live.
        if (j == gone || load_state(map.slot(j)) != kSlotLive ||
            map.slot(j).gid_disabled_events.load(std::memory_order_relaxed) == 0)
            continue;
        bool raise = false;
        {
            SlotLock lock(map.slot(j));
            const Slot& s = map.slot(j);
            bool peer = false;
            for (const DmbEntry& d : s.dmbs)
                peer = peer || (d.state != kDmbFree && d.rgid == gid);
            if (peer)
                raise = post_event_locked(map, j, kEventTypeDev, kDevGidDisabled, gid, 0);
        }
        if (raise)
            irq.raise(map, j);
    }
}

// Under the fabric lock: empty slot i, free its tokens, return its arena pages.
uint64_t clear_slot(FabricMap& map, uint32_t i)
{
    uint64_t gid = 0;
    {
        SlotLock lock(map.slot(i));
        Slot& s = map.slot(i);
        gid = s.gid;
        unregister_all_locked(map, i);
        s.mapping_count = 0;
        s.msi_enabled = 0;
        s.irq_hold = 0;
        s.irq_held = 0;
        store_state(s, kSlotFree);
    }
    // Before anyone can claim the slot again (the fabric lock is still held).
    (void)::fallocate(map.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      static_cast<off_t>(map.arena_file_offset(i)),
                      static_cast<off_t>(kDmaArenaSize));
    return gid;
}

}  // namespace

void unregister_all_locked(FabricMap& map, uint32_t i)
{
    Slot& s = map.slot(i);
    for (uint32_t k = 0; k < kMaxDmbEntries; ++k) {
        DmbEntry& d = s.dmbs[k];
        if (d.state == kDmbFree)
            continue;
        Be32& tok = map.token_slot(static_cast<uint32_t>(d.token >> 32));
        if (tok.load(std::memory_order_relaxed) == token_entry(i, k + kFirstSbaIdx))
            tok.store(0, std::memory_order_release);
        d = DmbEntry{};
    }
    s.dmb_count = 0;
    s.sba_registered = 0;
    s.ieq_registered = 0;
    s.sba_iova = 0;
    s.ieq_iova = 0;
    s.ieq_len = 0;
    s.ieq_next = 0;
    s.vlan_required = 0;
    s.vlan_count = 0;
}

bool slot_alive(const FabricMap& map, uint32_t i)
{
    if (load_state(map.slot(i)) != kSlotLive)
        return false;
    if (i == map.owned_slot)
        return true;
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = kSlotLockBase + i;
    fl.l_len = 1;
    if (::fcntl(map.fd(), F_OFD_GETLK, &fl) < 0)
        return true;  // cannot tell: never reclaim on doubt
    return fl.l_type != F_UNLCK;
}

bool slot_alive_fast(const FabricMap& map, uint32_t i)
{
    // Functions of this very process are alive while their slot is live (a closing
    // function frees its slot first); this saves the hot store path a system call.
    const Slot& s = map.slot(i);
    if (load_state(s) != kSlotLive)
        return false;
    if (s.pid.load(std::memory_order_relaxed) == static_cast<uint32_t>(self_pid()))
        return true;
    // A positive answer is trusted for kLivenessCacheNs: a store in that window after the
    // owner died lands in memory nobody reads any more, exactly like a store issued just
    // before the death. Without this, every store paid an F_OFD_GETLK system call. The
    // window is timed with the coarse clock (a few ns, where the precise one costs about
    // 25 in a guest, on every store): it may last up to one clock tick longer.
    struct Seen {
        const FabricMap* map;
        uint32_t generation;
        uint64_t at_ns;
    };
    thread_local std::array<Seen, kMaxFunctions> seen{};
    const uint32_t generation = s.generation.load(std::memory_order_acquire);
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    const uint64_t now =
        static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
    Seen& e = seen.at(i);
    if (e.map == &map && e.generation == generation && now - e.at_ns < kLivenessCacheNs)
        return true;
    const bool alive = slot_alive(map, i);
    e = alive ? Seen{&map, generation, now} : Seen{};
    return alive;
}

void reclaim_if_dead(FabricMap& map, uint32_t i, IrqSender& irq)
{
    uint64_t gid = 0;
    {
        auto lock = FabricLock::acquire(map.fd());
        if (!lock || load_state(map.slot(i)) != kSlotLive || slot_alive(map, i))
            return;
        gid = clear_slot(map, i);
    }
    notify_gid_gone(map, i, gid, irq);
}

void reap_dead(FabricMap& map, IrqSender& irq)
{
    for (uint32_t i = 0; i < kMaxFunctions; ++i) {
        if (load_state(map.slot(i)) == kSlotLive && !slot_alive(map, i))
            reclaim_if_dead(map, i, irq);
    }
}

std::optional<uint32_t> find_live_gid(FabricMap& map, uint64_t gid, IrqSender& irq)
{
    for (uint32_t i = 0; i < kMaxFunctions; ++i) {
        const Slot& s = map.slot(i);
        if (load_state(s) != kSlotLive || s.gid.load(std::memory_order_relaxed) != gid)
            continue;
        if (slot_alive_fast(map, i))
            return i;
        reclaim_if_dead(map, i, irq);
    }
    return std::nullopt;
}

Result<uint32_t> claim_slot(FabricMap& map, const SlotOptions& o, IrqSender& irq)
{
    const std::string_view name = o.name;
    const uint64_t gid = o.gid;
    reap_dead(map, irq);
    auto lock = FabricLock::acquire(map.fd());
    if (!lock)
        return tl::unexpected(lock.error());
    struct stat st {};
    if (::fstat(map.fd(), &st) < 0)
        return fail_errno();
    if (st.st_nlink == 0)
        return fail_errno(ESTALE);  // removed under us: the caller opens the fabric anew
    for (uint32_t i = 0; i < kMaxFunctions; ++i) {
        const Slot& s = map.slot(i);
        if (load_state(s) == kSlotLive &&
            (s.gid == gid || name == std::string_view(s.name, ::strnlen(s.name, kNameBytes))))
            return fail_errno(EADDRINUSE);
    }
    uint32_t free_slot = kMaxFunctions;
    for (uint32_t i = 0; i < kMaxFunctions && free_slot == kMaxFunctions; ++i) {
        if (load_state(map.slot(i)) == kSlotLive)
            continue;
        // A free slot whose lock is still held is being released by a live process.
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = kSlotLockBase + i;
        fl.l_len = 1;
        if (::fcntl(map.fd(), F_OFD_SETLK, &fl) == 0)
            free_slot = i;
    }
    if (free_slot == kMaxFunctions)
        return fail(errc::sim_fabric_full);
    Slot& s = map.slot(free_slot);
    {
        SlotLock slot_lock(s);
        unregister_all_locked(map, free_slot);
        s.mapping_count = 0;
        s.msi_enabled = 0;
        s.irq_hold = 0;
        s.irq_held = 0;
        s.gid = gid;
        std::memset(s.name, 0, sizeof(s.name));
        std::memcpy(s.name, name.data(), name.size());
        s.pid = static_cast<uint32_t>(self_pid());
        s.max_dmbs = o.max_dmbs;
        s.max_dmb_size = o.max_dmb_size;
        s.store_limit = o.store_limit;
        s.gid_disabled_events = o.gid_disabled_events ? 1U : 0U;
        // Under the fabric lock: a plain increment, published with one store (the
        // field is big-endian, an atomic fetch_add would carry into the wrong byte).
        s.generation.store(s.generation + 1, std::memory_order_release);
        store_state(s, kSlotLive);
    }
    map.owned_slot = free_slot;
    return free_slot;
}

void release_slot(FabricMap& map, uint32_t i, IrqSender& irq)
{
    uint64_t gid = 0;
    {
        auto lock = FabricLock::acquire(map.fd());
        gid = clear_slot(map, i);
        struct flock fl {};
        fl.l_type = F_UNLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = kSlotLockBase + i;
        fl.l_len = 1;
        (void)::fcntl(map.fd(), F_OFD_SETLK, &fl);
        map.owned_slot = kMaxFunctions;
    }
    notify_gid_gone(map, i, gid, irq);
}

}  // namespace ism::sim::detail
