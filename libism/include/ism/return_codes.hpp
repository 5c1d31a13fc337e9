// SPDX-License-Identifier: MIT
// Command return codes of the ISM device: the device layer interprets them and the
// emulated device (libism/src/sim) returns them, so they belong to neither layer.
//
// Only 0 (success) and 0xFFFF (Linux's "no valid response" sentinel) are known from the
// hardware's public sources (docs/hardware.md 1.3). Every other code here is
// project-defined (docs/hardware.md 2): the emulated device returns them, and the driver
// maps them to errc values. A real device may return codes that are not in this table;
// the driver maps those to errc::hw_rejected.
#pragma once

#include <cstdint>

namespace ism {

inline constexpr uint16_t kRcSuccess = 0x0000;
inline constexpr uint16_t kRcUnknownCommand = 0x0001;     // command code not implemented
inline constexpr uint16_t kRcBadLength = 0x0002;          // request length wrong for the command
inline constexpr uint16_t kRcBadAddress = 0x0003;         // DMA address not mapped writable
inline constexpr uint16_t kRcDmbLimit = 0x0004;           // no room for another DMB
inline constexpr uint16_t kRcDmbSize = 0x0005;            // DMB length 0 or above the maximum
inline constexpr uint16_t kRcSbaIndex = 0x0006;           // sba_idx outside 32..1919 or in use
inline constexpr uint16_t kRcUnknownToken = 0x0007;       // no DMB with that token
inline constexpr uint16_t kRcUnknownGid = 0x0008;         // no function with that GID
inline constexpr uint16_t kRcNotRegistered = 0x0009;      // SBA/IEQ not registered
inline constexpr uint16_t kRcAlreadyRegistered = 0x000A;  // SBA/IEQ registered twice
inline constexpr uint16_t kRcNoResponse = 0xFFFF;         // Linux sentinel: no valid response

}  // namespace ism
