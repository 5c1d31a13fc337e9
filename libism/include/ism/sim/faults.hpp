// SPDX-License-Identifier: MIT
// Fault injection for the emulated ISM fabric (tests only).
//
// These act on the fabric's shared state from outside the functions they disturb, so a
// test never reaches into private state. Any process may call them; they take the same
// locks as the emulated functions.
//
// Threading: safe from any thread. Errors: ENOENT if the fabric does not exist,
// errc::hw_unknown_gid if no live function has the GID, errc::hw_unknown_token if the
// function owns no DMB with that token.
#pragma once

#include <cstdint>
#include <string_view>

#include "ism/result.hpp"

namespace ism::sim::faults {

/// While held, signals still set SBA bits and queue events but raise no interrupt;
/// releasing raises one if any were held back (delayed interrupts).
Result<void> hold_interrupts(std::string_view fabric, uint64_t gid, bool hold);

/// The DMB disappears under its writers, as if unregistered: stores to its token fail
/// with EIO. The owner's driver is not told (no event); its later UNREG_DMB succeeds.
Result<void> revoke_dmb(std::string_view fabric, uint64_t owner_gid, uint64_t token);

/// Reclaims the functions whose processes died, now (it also happens lazily).
Result<void> reap(std::string_view fabric);

}  // namespace ism::sim::faults
