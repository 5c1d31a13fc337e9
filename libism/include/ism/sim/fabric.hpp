// SPDX-License-Identifier: MIT
// The emulated ISM fabric: named, host-local, shared by processes.
//
// A fabric is what the PCHID of real ISM functions stands for: the set of functions that
// can reach each other. Here it is one shared-memory file (ISM_SIM_DIR/ism-sim-<fabric>,
// by default /dev/shm/ism-sim-<fabric>); every process that opens a function on the same
// fabric name reaches the other functions by GID, as LPARs on one machine do. Nothing has
// to be started first: the first open creates the fabric. See docs/sim.md.
//
// Threading: every call here is safe from any thread; a returned DeviceFile follows the
// DeviceFile contract (one thread at a time). Cross-process state is protected by locks
// that die with their holder, so a killed process never wedges the fabric.
// Ownership: open_function returns the only owner of the function; destroying it
// unregisters everything and frees the function's slot and GID.
// Errors: Result everywhere. Bad fabric or function names give errc::sim_bad_name, a full
// fabric errc::sim_fabric_full, a GID or name already live on the fabric EADDRINUSE
// (system category), OS failures their errno.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ism/result.hpp"
#include "ism/vfio/device_file.hpp"

namespace ism::sim {

/// PCHID of the fabric named "default". Other fabric names map to 0xFF01..0xFFFE (a
/// stable hash of the name), inside the CHID range reserved for emulated ISM
/// (0xFF00..0xFFFE; 0xFFFF is loopback-ism).
inline constexpr uint16_t kDefaultPchid = 0xFF00;

/// Longest fabric name and function name accepted.
inline constexpr std::size_t kMaxFabricNameLength = 64;
inline constexpr std::size_t kMaxFunctionNameLength = 63;

struct FunctionOptions {
    std::string fabric = "default";   // processes opening functions on one fabric reach each other
    std::string name;                 // function name, e.g. "lpar1"; required
    uint64_t gid = 0;                 // 0: derived from the name, stable across runs and processes
    uint32_t max_dmbs = 64;           // DMB count limit (REG_DMB beyond => kRcDmbLimit), 1..1888
    uint32_t max_dmb_size = 1 << 20;  // DMB size limit (len 0 or above => kRcDmbSize), <= 8 MiB
    uint16_t store_limit = 4096;      // reported as imaxstbl; longer BAR stores => EINVAL, 8..4096
    // Peer loss. Default (false), as real ISM shows it: when a function goes away (closed,
    // or its process died), its DMBs are unregistered, so stores into them fail, and its
    // GID is unknown to QUERY_RGID and SIGNAL_IEQ; nothing is posted to anyone. true: this
    // function also gets a DEV event "GID disabled" (code 0x07, tok = the gone GID) for
    // every gone GID it registered a DMB for. Nothing documents that real ISM sends it.
    bool gid_disabled_events = false;
};

/// The stable GID derivation used when FunctionOptions::gid is 0 (never returns 0).
uint64_t gid_for_name(std::string_view name);

/// PCHID reported by the functions of a fabric.
uint16_t pchid_for_fabric(std::string_view fabric);

/// Opens (creating the fabric if needed) one emulated function.
Result<std::unique_ptr<vfio::DeviceFile>> open_function(const FunctionOptions& opts);

/// Removes a fabric's shared state (tests clean up with it); fails with EBUSY while live
/// functions use it, ENOENT if it does not exist.
Result<void> remove_fabric(std::string_view fabric);

struct FunctionStatus {
    std::string name;
    uint64_t gid = 0;
    int pid = 0;         // process that opened the function
    bool alive = false;  // false: the process died and the slot is not reclaimed yet
    uint32_t dmbs = 0;   // DMBs registered
};

/// The functions of a fabric that are open or dead but not yet reclaimed. Does not reclaim.
Result<std::vector<FunctionStatus>> list_functions(std::string_view fabric);

/// Where the fabric's shared-memory file lives (honours ISM_SIM_DIR).
Result<std::string> fabric_path(std::string_view fabric);

}  // namespace ism::sim
