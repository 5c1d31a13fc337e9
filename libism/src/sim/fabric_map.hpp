// SPDX-License-Identifier: MIT
// Internal API of the emulated fabric: the mapped fabric file, its locks, slot liveness
// and reclaim, and delivery into a function's SBA and event queue (private to libism/sim).
//
// Lock order: the fabric lock before a slot lock; never two slot locks at once. Raising an
// interrupt (a sendto) happens after the slot lock is released.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ism/result.hpp"
#include "ism/unique_fd.hpp"
#include "sim/shm_layout.hpp"

namespace ism::sim::detail {

/// One MAP_SHARED mapping of a fabric file and the open file description behind it (which
/// carries the OFD lock of the slot this process owns through it, if any).
class FabricMap {
public:
    /// Opens the fabric file; `create` makes it if missing; `whole` maps the arenas too.
    static Result<std::shared_ptr<FabricMap>> open(std::string_view fabric, bool create,
                                                   bool whole);
    ~FabricMap();
    FabricMap(const FabricMap&) = delete;
    FabricMap& operator=(const FabricMap&) = delete;

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] const std::string& fabric() const noexcept { return fabric_; }
    [[nodiscard]] FabricHeader& header() const noexcept;
    [[nodiscard]] Be32& token_slot(uint32_t value) const noexcept;
    [[nodiscard]] Slot& slot(uint32_t i) const noexcept;
    [[nodiscard]] std::byte* arena(uint32_t i) const noexcept;
    [[nodiscard]] uint64_t arena_file_offset(uint32_t i) const noexcept;

    /// The slot whose OFD lock this file description holds (kMaxFunctions if none).
    uint32_t owned_slot = kMaxFunctions;

private:
    FabricMap(UniqueFd fd, std::byte* base, std::size_t size, std::string fabric) noexcept;

    UniqueFd fd_;
    std::byte* base_;
    std::size_t size_;
    std::string fabric_;
};

/// The fabric lock: an OFD write lock on byte 0, released by the kernel if the holder dies.
class FabricLock {
public:
    FabricLock(const FabricLock&) = delete;
    FabricLock& operator=(const FabricLock&) = delete;
    static Result<FabricLock> acquire(int fd);
    FabricLock(FabricLock&& other) noexcept;
    FabricLock& operator=(FabricLock&&) = delete;
    ~FabricLock();

private:
    explicit FabricLock(int fd) noexcept : fd_(fd) {}
    int fd_;
};

/// This process's pid, cached (getpid() is a system call in glibc) and refreshed in a
/// forked child. The hot store path asks twice per store.
int32_t self_pid() noexcept;

/// A slot's lock: a CAS word holding the holder's pid; a waiter steals it once that pid no
/// longer exists, so a process killed inside a critical section does not wedge the fabric.
class SlotLock {
public:
    explicit SlotLock(Slot& slot) noexcept;
    ~SlotLock();
    SlotLock(const SlotLock&) = delete;
    SlotLock& operator=(const SlotLock&) = delete;

private:
    Be32& word_;
};

/// Sends interrupts: a 1-byte datagram to the target's socket (EAGAIN = one is pending).
class IrqSender {
public:
    void raise(const FabricMap& map, uint32_t slot);

private:
    UniqueFd sock_;
};

/// The abstract UNIX socket address of a function's interrupt (without the leading NUL).
std::string irq_socket_name(uint64_t nonce, uint32_t slot, uint32_t generation);

/// Process-local view of the function a command or store comes from.
struct Caller {
    FabricMap& map;
    uint32_t slot;
    uint64_t gid;
    IrqSender& irq;
};

// Liveness and reclaim (slots.cpp).
bool slot_alive(const FabricMap& map, uint32_t i);
bool slot_alive_fast(const FabricMap& map, uint32_t i);
void reclaim_if_dead(FabricMap& map, uint32_t i, IrqSender& irq);
void reap_dead(FabricMap& map, IrqSender& irq);
std::optional<uint32_t> find_live_gid(FabricMap& map, uint64_t gid, IrqSender& irq);
struct SlotOptions {
    std::string_view name;
    uint64_t gid;
    uint32_t max_dmbs;
    uint32_t max_dmb_size;
    uint32_t store_limit;
    bool gid_disabled_events;
};
Result<uint32_t> claim_slot(FabricMap& map, const SlotOptions& o, IrqSender& irq);
void release_slot(FabricMap& map, uint32_t i, IrqSender& irq);
/// Drops the DMBs, SBA, IEQ and VLAN state of slot i (its lock held; fabric lock held).
void unregister_all_locked(FabricMap& map, uint32_t i);

// Delivery (delivery.cpp); the target slot's lock is held by the caller.
std::byte* translate(const FabricMap& map, uint32_t i, uint64_t iova, uint64_t len);
bool range_mapped(const FabricMap& map, uint32_t i, uint64_t iova, uint64_t len);
bool post_event_locked(const FabricMap& map, uint32_t i, uint32_t type, uint32_t code, uint64_t tok,
                       uint64_t info);
bool signal_dmb_locked(const FabricMap& map, uint32_t i, uint32_t sba_idx, uint32_t dmbe_idx);
bool irq_wanted_locked(Slot& s);
uint64_t tod_clock();
void write_ieq_header(std::byte* ieq, uint64_t len);

inline constexpr uint32_t kEventTypeDev = 1;
inline constexpr uint32_t kEventTypeSwr = 2;
inline constexpr uint32_t kDevGidDisabled = 0x07;

// Stores (store_rules.cpp).
Result<void> check_store_shape(uint64_t off, std::size_t len, uint64_t region_size,
                               uint32_t store_limit);
Result<void> bar0_store(Caller& caller, uint64_t off, std::span<const std::byte> data);

// Names and paths (fabric.cpp).
bool valid_name(std::string_view name, std::size_t max_len);

}  // namespace ism::sim::detail
