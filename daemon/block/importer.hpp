// SPDX-License-Identifier: MIT
// Importer: the importing role on one peer's BlockChannel (docs/protocol.md section 11).
//
// When the channel comes up it says HELLO and learns the peer's exports and limits from
// EXPORTS; `exports_changed` tells its owner whenever the list changed (the service then
// creates or removes local NBD sockets). open(name) gives an Export for the local NBD
// endpoint. Requests go out in the order they were submitted, within the exporter's window
// and request limit; beyond it they wait here, first in first out.
//
// Re-drive: when the link is lost, every request not yet answered is kept. When the
// channel is back (EXPORTS received again) within `deadline` of the loss, they are sent
// again in their original order, export ids looked up again by name. A request answered
// is never sent again: an acknowledged write is never re-sent, so nothing acknowledged is
// re-ordered behind a later write (and the exporter answers HELLO only once the disk
// operations of the old epoch have finished). When the deadline passes first, they fail
// with ESHUTDOWN, and so does every new request until the channel is back. Nothing hangs
// on a lost link.
//
// Ownership: made by create() and owned by a shared_ptr, which its owner drops before the
// BlockChannel goes; the Exports it hands out hold it weakly (a request on an Export whose
// importer is gone fails with ESHUTDOWN).
// Threading: the channel's event loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <nlohmann/json.hpp>

#include "block/block_channel.hpp"
#include "block/export.hpp"

namespace ismd::block {

struct ImporterOptions {
    /// How long requests wait for a lost link to come back before they fail.
    std::chrono::milliseconds deadline{30000};
    /// WRITE_DATA pieces (at most what the exporter announced).
    uint32_t piece = 128 << 10;
};

class Importer : public BlockRole, public std::enable_shared_from_this<Importer> {
    struct Key {};

public:
    using ExportsChanged = std::function<void()>;

    /// Attaches to `channel` as its importer. `executor` is the channel's event loop, on
    /// which every Export::Done runs. `exports_changed` runs (on that loop) whenever the
    /// list of exports() changed.
    static std::shared_ptr<Importer> create(BlockChannel& channel,
                                            const boost::asio::any_io_executor& executor,
                                            ImporterOptions options,
                                            ExportsChanged exports_changed);
    Importer(Key, BlockChannel& channel, const boost::asio::any_io_executor& executor,
             ImporterOptions options, ExportsChanged exports_changed);
    /// Fails every request still waiting with ESHUTDOWN.
    ~Importer() override;  // NOLINT(bugprone-exception-escape): posting can fail only out of memory
    Importer(const Importer&) = delete;
    Importer& operator=(const Importer&) = delete;

    /// The exports the peer offered in its last EXPORTS (kept while the link is down).
    [[nodiscard]] std::vector<nbd::ExportInfo> exports() const;
    /// The export called `name`, or null when the peer does not offer it.
    std::shared_ptr<Export> open(const std::string& name);
    /// EXPORTS arrived in this epoch: requests go out.
    [[nodiscard]] bool ready() const noexcept { return ready_; }
    /// The deadline passed with the channel down: requests fail at once.
    [[nodiscard]] bool expired() const noexcept { return expired_; }

    /// {"ready": bool, "imports": [{name, size, in_flight, waiting, requests, bytes_read,
    /// bytes_written, errors, redriven}]}
    [[nodiscard]] nlohmann::json status() const;

    std::string on_control(const wire::Header& h, std::span<const std::byte> payload) override;
    DataTarget on_data(const wire::Header& h) override;
    void on_data_done(const wire::Header& h) override;
    void on_channel(bool up) override;

private:
    class Imported;
    struct Stats {
        uint64_t requests = 0;
        uint64_t bytes_read = 0;
        uint64_t bytes_written = 0;
        uint64_t errors = 0;
        uint64_t redriven = 0;
    };
    struct Req {
        uint64_t tag = 0;
        std::string name;
        nbd::Cmd cmd = nbd::Cmd::read;
        uint16_t flags = 0;
        uint64_t offset = 0;
        uint32_t length = 0;
        std::shared_ptr<std::vector<std::byte>> data;  // WRITE payload / READ buffer
        Export::Done done;
        std::shared_ptr<Stats> stats;
        uint64_t received = 0;
        bool sent = false;       // in this epoch
        bool ever_sent = false;  // in some epoch: sending it again is a re-drive
    };

    void submit(const std::string& name, IoRequest io, Export::Done done);
    void pump();
    void complete(const std::shared_ptr<Req>& r, IoResult result);
    void fail(const std::shared_ptr<Req>& r, uint32_t error, std::string message);
    void arm_deadline();
    void expire();
    std::string take_exports(std::span<const std::byte> payload);
    std::string take_reply(const wire::Header& h, std::span<const std::byte> payload);
    std::shared_ptr<Stats> stats_for(const std::string& name);
    [[nodiscard]] const wire::ExportEntry* find(const std::string& name) const;
    [[nodiscard]] std::size_t in_flight(const std::string& name) const;

    BlockChannel& channel_;
    boost::asio::any_io_executor executor_;
    ImporterOptions options_;
    ExportsChanged exports_changed_;

    wire::Limits limits_;
    std::vector<wire::ExportEntry> exports_;
    bool ready_ = false;
    bool expired_ = false;

    std::map<uint64_t, std::shared_ptr<Req>> reqs_;  // unanswered, by tag: submission order
    std::deque<uint64_t> waiting_;                   // not sent in this epoch, in order
    uint64_t next_tag_ = 1;
    uint32_t outstanding_ = 0;
    uint64_t window_used_ = 0;

    boost::asio::steady_timer deadline_;
    uint64_t deadline_gen_ = 0;
    bool deadline_armed_ = false;

    std::map<std::string, std::shared_ptr<Stats>> stats_;
};

}  // namespace ismd::block
