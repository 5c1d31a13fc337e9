// SPDX-License-Identifier: MIT
// IsmDevice: the ISM device driver in user space.
//
// Drives one ISM function through a vfio::DeviceFile (real VFIO or the emulated device):
// the command area, GID, SBA and event queue, DMB registration, moves into a peer's DMB
// and events to a peer GID. It follows the programming model of the Linux ism driver
// (init: MSI, REG_SBA, REG_IEQ, QUERY_INFO, READ_GID; teardown in reverse, unregistering
// before DMA mappings go).
//
// Threading: an IsmDevice is driven by one thread at a time (ismd's event loop); the
// command area is additionally serialised by a mutex. Nothing blocks except the short
// synchronous command exchange: the caller's event loop waits on irq_fd() and calls
// handle_interrupt() when it is readable.
// Ownership: the device owns its DeviceFile, the SBA/IEQ pages and every DMB's memory. A
// Dmb returned by register_dmb() is a view that stays valid until unregister_dmb() or
// until the device is destroyed.
// Errors: Result values; device return codes map to errc::hw_* (see return_codes.hpp).
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "ism/result.hpp"
#include "ism/vfio/device_file.hpp"

namespace ism::device {

inline constexpr uint16_t kIsmVendorId = 0x1014;
inline constexpr uint16_t kIsmDeviceId = 0x04ED;
inline constexpr uint8_t kIsmPft = 5;

/// SBA indexes usable for DMBs (Linux never uses the first 32 bits).
inline constexpr uint32_t kFirstSbaIndex = 32;
inline constexpr uint32_t kLastSbaIndex = 1919;
/// Largest DMB Linux ever registers (one DMA segment).
inline constexpr std::size_t kMaxDmbSize = std::size_t{1} << 20;
/// DMBE indexes the SBA can report (a u16 mask per DMB).
inline constexpr uint32_t kMaxDmbeIndex = 15;
/// Store-block limit assumed when the kernel does not report imaxstbl (GROUP cap v1).
inline constexpr uint32_t kFallbackStoreLimit = 4096;

struct DeviceOptions {
    /// Largest number of DMBs this driver registers (the device may allow fewer).
    uint32_t max_dmbs = kLastSbaIndex - kFirstSbaIndex + 1;
};

/// QUERY_INFO response (section 1.4). Semantics of several fields are unpublished.
struct QueryInfo {
    uint32_t version = 0;
    uint32_t max_len = 0;
    uint64_t ism_state = 0;
    uint64_t my_gid = 0;
    uint64_t sba = 0;
    uint64_t ieq = 0;
    uint32_t ieq_len = 0;
    uint32_t dmbs_owned = 0;
    uint32_t dmbs_used = 0;
    uint32_t vlan_required = 0;
    uint32_t vlan_nr_ids = 0;
};

/// A registered DMB. The peer (rgid) writes into `memory`; we only read it.
struct Dmb {
    uint64_t token = 0;
    uint32_t sba_idx = 0;
    uint64_t rgid = 0;
    uint64_t iova = 0;
    std::span<std::byte> memory;
};

/// Event types in the event queue.
enum class EventType : uint32_t { buffer = 0, device = 1, software = 2 };

/// Device-generated event codes (types buffer/device).
inline constexpr uint32_t kEventGidErrState = 0x01;
inline constexpr uint32_t kEventDmbUnregistered = 0x04;
inline constexpr uint32_t kEventGidDisabled = 0x07;

struct Event {
    uint32_t type = 0;  // an EventType value; unknown types are reported as they come
    uint32_t code = 0;  // for software events: the sender's event code
    uint64_t tok = 0;   // DMB token (buffer) or GID (device; software: the sender's GID)
    uint64_t time = 0;
    uint64_t info = 0;
};

/// A DMB the device marked as signalled, with the DMBE bits it reported.
struct DmbSignal {
    uint32_t sba_idx = 0;
    uint16_t dmbe_mask = 0;
};

struct InterruptReport {
    std::vector<DmbSignal> dmbs;
    std::vector<Event> events;
};

class IsmDevice {
public:
    /// Checks identity (vendor, device, pft), arms MSI, registers SBA and event queue,
    /// reads the GID.
    static Result<std::unique_ptr<IsmDevice>> open(std::unique_ptr<vfio::DeviceFile> file,
                                                   const DeviceOptions& options = {});
    ~IsmDevice();
    IsmDevice(const IsmDevice&) = delete;
    IsmDevice& operator=(const IsmDevice&) = delete;

    [[nodiscard]] uint64_t gid() const noexcept { return gid_; }
    [[nodiscard]] uint16_t pchid() const noexcept { return zpci_.pchid; }
    [[nodiscard]] uint32_t store_limit() const noexcept { return store_limit_; }
    [[nodiscard]] bool ismv2() const noexcept { return ismv2_; }
    [[nodiscard]] int irq_fd() const { return file_->irq_fd(); }
    [[nodiscard]] std::string describe() const { return file_->describe(); }
    [[nodiscard]] std::size_t dmb_count() const noexcept { return dmbs_.size(); }

    Result<QueryInfo> query_info();
    /// Succeeds when `rgid` is reachable on this function's fabric.
    Result<void> query_rgid(uint64_t rgid);

    /// Registers a zeroed DMB of `len` bytes that only `rgid` may write into. sba_idx 0
    /// lets the device choose.
    Result<Dmb> register_dmb(std::size_t len, uint64_t rgid, uint32_t sba_idx = 0);
    Result<void> unregister_dmb(uint64_t token);

    /// Moves `data` into the peer DMB `token` at `offset`: split into stores within the
    /// store-block limit that never cross 4 KiB, signal flag on the last store only.
    Result<void> move(uint64_t token, uint32_t dmbe_idx, uint64_t offset,
                      std::span<const std::byte> data, bool signal);

    /// SIGNAL_IEQ: queues a software event (code, info) at the function `rgid`.
    Result<void> signal_event(uint64_t rgid, uint32_t code, uint64_t info, bool trigger_irq = true);

    /// Clears the pending interrupt and reports every signalled DMB and queued event once.
    Result<InterruptReport> handle_interrupt();

private:
    struct DmbRecord {
        std::unique_ptr<vfio::DmaMemory> memory;
        uint64_t iova = 0;
        std::size_t len = 0;
        uint32_t sba_idx = 0;
        uint64_t rgid = 0;
    };

    explicit IsmDevice(std::unique_ptr<vfio::DeviceFile> file) noexcept;
    Result<void> init(const DeviceOptions& options);
    Result<void> check_identity();
    void shutdown() noexcept;

    Result<uint64_t> alloc_iova(std::size_t len);
    Result<std::unique_ptr<vfio::DmaMemory>> map_page(uint64_t& iova_out);

    /// One command exchange; returns the response payload (response length - 8 bytes,
    /// at most `max_response` bytes).
    Result<std::vector<std::byte>> command(uint32_t cmd, std::span<const std::byte> payload,
                                           std::size_t max_response = 0);
    Result<void> command_ok(uint32_t cmd, std::span<const std::byte> payload)
    {
        auto r = command(cmd, payload);
        if (!r)
            return tl::unexpected(r.error());
        return {};
    }

    void scan_sba(InterruptReport& report);
    void drain_event_queue(InterruptReport& report);

    std::unique_ptr<vfio::DeviceFile> file_;
    vfio::RegionInfo bar0_;
    vfio::RegionInfo bar2_;
    vfio::ZpciInfo zpci_;
    uint32_t store_limit_ = kFallbackStoreLimit;
    uint32_t max_dmbs_ = 0;
    uint64_t gid_ = 0;
    bool ismv2_ = false;
    bool msi_enabled_ = false;

    std::unique_ptr<vfio::DmaMemory> sba_;
    uint64_t sba_iova_ = 0;
    bool sba_registered_ = false;
    std::unique_ptr<vfio::DmaMemory> ieq_;
    uint64_t ieq_iova_ = 0;
    bool ieq_registered_ = false;
    int64_t ieq_last_ = -1;  // slot of the last event reported, -1 before the first

    std::map<uint64_t, DmbRecord> dmbs_;         // by token
    std::map<uint64_t, std::size_t> iova_used_;  // IOVA ranges in use: start -> length
    std::bitset<kLastSbaIndex + 1> sba_used_;    // SBA indexes of registered DMBs

    std::mutex command_mutex_;  // one command area per device: one exchange at a time
};

}  // namespace ism::device
