// SPDX-License-Identifier: MIT
// Command execution of the emulated function (private to libism/sim).
#pragma once

#include <cstddef>
#include <span>

#include "sim/fabric_map.hpp"

namespace ism::sim::detail {

/// Executes the request in `area` (the 4 KiB command area) and leaves the response there.
void execute_command(Caller& caller, std::span<std::byte> area);

}  // namespace ism::sim::detail
