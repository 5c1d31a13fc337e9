// SPDX-License-Identifier: MIT
// Fault injection: delayed interrupts, a DMB revoked under its writers, reaping now.
// Each call maps the fabric's metadata and takes the same locks an emulated function takes.
#include "ism/sim/faults.hpp"

#include <atomic>

#include "sim/fabric_map.hpp"

namespace ism::sim::faults {
namespace {

using namespace detail;

Result<uint32_t> live_slot(FabricMap& map, uint64_t gid, IrqSender& irq)
{
    const auto slot = find_live_gid(map, gid, irq);
    if (!slot)
        return fail(errc::hw_unknown_gid);
    return *slot;
}

}  // namespace

Result<void> hold_interrupts(std::string_view fabric, uint64_t gid, bool hold)
{
    auto map = FabricMap::open(fabric, false, false);
    if (!map)
        return tl::unexpected(map.error());
    IrqSender irq;
    auto slot = live_slot(**map, gid, irq);
    if (!slot)
        return tl::unexpected(slot.error());
    bool raise = false;
    {
        SlotLock lock((*map)->slot(*slot));
        Slot& s = (*map)->slot(*slot);
        s.irq_hold = hold ? 1 : 0;
        if (!hold && s.irq_held != 0) {
            s.irq_held = 0;
            raise = irq_wanted_locked(s);
        }
    }
    if (raise)
        irq.raise(**map, *slot);
    return {};
}

Result<void> revoke_dmb(std::string_view fabric, uint64_t owner_gid, uint64_t token)
{
    auto map = FabricMap::open(fabric, false, false);
    if (!map)
        return tl::unexpected(map.error());
    IrqSender irq;
    auto slot = live_slot(**map, owner_gid, irq);
    if (!slot)
        return tl::unexpected(slot.error());
    auto fabric_lock = FabricLock::acquire((*map)->fd());
    if (!fabric_lock)
        return tl::unexpected(fabric_lock.error());
    SlotLock lock((*map)->slot(*slot));
    Slot& s = (*map)->slot(*slot);
    for (DmbEntry& d : s.dmbs) {
        if (d.state != kDmbRegistered || d.token != token)
            continue;
        // Stores look the token up first and re-check the entry under this slot lock, so
        // both changes stop every later store. The entry stays (revoked) for UNREG_DMB.
        (*map)->token_slot(static_cast<uint32_t>(token >> 32)).store(0, std::memory_order_release);
        d.state = kDmbRevoked;
        return {};
    }
    return fail(errc::hw_unknown_token);
}

Result<void> reap(std::string_view fabric)
{
    auto map = FabricMap::open(fabric, false, false);
    if (!map)
        return tl::unexpected(map.error());
    IrqSender irq;
    reap_dead(**map, irq);
    return {};
}

}  // namespace ism::sim::faults
