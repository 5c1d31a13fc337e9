// SPDX-License-Identifier: MIT
// Port: what a Link needs from an ISM function, and nothing more.
//
// The link's state machine (ism/link/link.hpp) talks to the device only through this
// interface: register and drop its own DMB, store into the peer's DMB, send an event to
// the peer. Endpoint::DevicePort (libism/src/link/endpoint.cpp) implements it on an
// IsmDevice; tests and the fuzzer implement it on plain memory, so that they drive the
// same state machine that runs on a real machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ism/result.hpp"

namespace ism::link {

/// Our own DMB: the peer writes it, we only read it.
struct OwnDmb {
    uint64_t token = 0;
    std::span<std::byte> memory;
};

class Port {
public:
    virtual ~Port() = default;

    /// Registers a zeroed DMB of `size` bytes that only the peer may write.
    virtual Result<OwnDmb> register_dmb(std::size_t size) = 0;
    /// Drops a DMB registered by register_dmb(); its memory is gone afterwards.
    virtual void unregister_dmb(uint64_t token) = 0;
    /// Stores `data` into the peer's DMB `token` at `offset`, in order with every earlier
    /// store; `signal` raises the peer's interrupt after the data is in place.
    virtual Result<void> store(uint64_t token, uint64_t offset, std::span<const std::byte> data,
                               bool signal) = 0;
    /// Queues a software event (code, info) at the peer.
    virtual Result<void> send_event(uint32_t code, uint64_t info) = 0;
};

}  // namespace ism::link
