// SPDX-License-Identifier: MIT
// Exporter: the exporting role on one peer's BlockChannel (docs/protocol.md section 11).
//
// It offers the peer the exports it is given (an export not given does not exist for the
// peer), answers its requests from the disks, and checks everything the peer sends: an
// unknown export or a range past the end gets EINVAL, a write to a read-only export EPERM;
// a frame beyond the announced limits (window, requests, payload, piece) or out of order
// resets the link (BlockChannel::violation). Buffers are allocated only for requests inside the
// window, so a hostile peer cannot make it allocate more than the window.
//
// Disk I/O runs on the IoPool, never on the event loop. FLUSH and FUA are on disk before
// the REPLY goes out. After a link loss, HELLO is answered only once every disk operation
// of the earlier epochs has finished, so that a write from before the loss can never land
// after the same write re-driven by the importer; their replies are dropped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "block/block_channel.hpp"
#include "block/disk.hpp"
#include "block/io_pool.hpp"

namespace ismd::block {

/// One export offered to the peer.
struct ExportSpec {
    std::string name;  // 1..256 bytes
    std::string description;
    std::shared_ptr<Disk> disk;
    bool read_only = false;  // also true when the disk is
};

class Exporter : public BlockRole {
public:
    /// Attaches to `channel` as its exporter; `pool` runs the disk calls and posts their
    /// completions to the channel's event loop. Both outlive the Exporter. At most
    /// wire::kMaxExports exports; `limits.window_bytes` is raised to max_payload if lower.
    Exporter(BlockChannel& channel, IoPool& pool, std::vector<ExportSpec> exports,
             wire::Limits limits = {});
    ~Exporter() override;
    Exporter(const Exporter&) = delete;
    Exporter& operator=(const Exporter&) = delete;

    /// A reload: the new list is announced at once (EXPORTS) if the importer said HELLO.
    /// Requests running on a removed export finish; new ones to it get EINVAL.
    void set_exports(std::vector<ExportSpec> exports);

    /// {"exports": [{name, read_only, size, in_flight, requests, bytes_read,
    /// bytes_written, errors}], "stale_disk_ops": N, "hello": bool (the importer is served)}
    [[nodiscard]] nlohmann::json status() const;
    /// Disk operations of earlier epochs still running (HELLO waits for them).
    [[nodiscard]] std::size_t stale_ops() const noexcept { return stale_ops_; }
    /// Requests received and accepted into the window, ever.
    [[nodiscard]] uint64_t requests_received() const noexcept { return requests_received_; }

    std::string on_control(const wire::Header& h, std::span<const std::byte> payload) override;
    DataTarget on_data(const wire::Header& h) override;
    void on_data_done(const wire::Header& h) override;
    void on_channel(bool up) override;

private:
    struct Stats {
        uint64_t requests = 0;
        uint64_t in_flight = 0;
        uint64_t bytes_read = 0;
        uint64_t bytes_written = 0;
        uint64_t errors = 0;
    };
    struct Offered {
        ExportSpec spec;
        nbd::ExportInfo info;
        std::shared_ptr<Stats> stats = std::make_shared<Stats>();
    };
    struct Op {
        wire::Header h;  // the REQUEST
        std::shared_ptr<Disk> disk;
        std::shared_ptr<Stats> stats;
        std::shared_ptr<std::vector<std::byte>> data;  // WRITE payload / READ data
        uint64_t received = 0;
        uint32_t error = 0;  // refused before the disk: the reply's error
        std::string message;
        uint32_t window = 0;  // bytes it holds of the window
    };
    struct Done {
        int err = 0;
        std::vector<StatusExtent> extents;
    };

    std::string request(const wire::Header& h);
    void refuse(const std::shared_ptr<Op>& op, uint32_t error, std::string message);
    void start(const std::shared_ptr<Op>& op);
    void finished(const std::shared_ptr<Op>& op, uint64_t epoch, const Done& done);
    void reply(const std::shared_ptr<Op>& op, uint32_t error, std::vector<std::byte> payload);
    void release(const std::shared_ptr<Op>& op);
    void send_exports();

    BlockChannel& channel_;
    IoPool& pool_;
    wire::Limits limits_;
    std::vector<Offered> exports_;  // id = index
    std::unordered_map<uint64_t, std::shared_ptr<Op>> ops_;
    uint64_t window_used_ = 0;
    uint64_t epoch_ = 0;
    std::size_t current_ops_ = 0;  // disk operations of this epoch
    std::size_t stale_ops_ = 0;    // ... and of earlier ones
    bool hello_seen_ = false;      // this epoch
    bool hello_waiting_ = false;   // answered once stale_ops_ reaches 0
    uint64_t requests_received_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ismd::block
