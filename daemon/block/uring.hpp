// SPDX-License-Identifier: MIT
// DiskRing: reads, writes and flushes of Disks through io_uring, submitted from the event
// loop and completed on it, with no thread in between and no call that blocks the loop.
//
// What is asked during one turn of the loop goes to the kernel together (one
// io_uring_enter) in a handler of its own; completions are reaped right after it (a
// page-cache hit completes inside the submit) and whenever the ring's eventfd says so.
// A completion never runs inside the call that asked for the I/O. Short reads and writes
// go on with the rest; a read that meets the end of the file is EIO, as Disk::read makes
// it. Past `entries` operations in the kernel, the rest wait in a queue of the ring's own.
// TRIM, WRITE_ZEROES and BLOCK_STATUS are not here: they stay on IoPool's threads.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <tl/expected.hpp>

#include "block/disk.hpp"

struct io_uring;

namespace ismd::block {

class DiskRing {
public:
    /// 0 or an errno, as Disk's calls give them.
    using Done = std::function<void(int err)>;

    /// A ring of `entries` (at least 1); the error (old kernel, seccomp, the
    /// kernel.io_uring_disabled sysctl) is a line for the log.
    static tl::expected<std::unique_ptr<DiskRing>, std::string> create(
        const boost::asio::any_io_executor& loop, unsigned entries);
    /// Waits for what the kernel still holds (as IoPool joins its threads); no Done runs.
    ~DiskRing();
    DiskRing(const DiskRing&) = delete;
    DiskRing& operator=(const DiskRing&) = delete;

    /// `disk` and the buffer stay valid until `done` runs; it runs on the loop. A range
    /// Disk would refuse completes with Disk's errno and reaches no disk.
    void read(Disk& disk, uint64_t offset, std::span<std::byte> out, Done done);
    /// `fua`: on the disk (RWF_DSYNC) before `done` runs.
    void write(Disk& disk, uint64_t offset, std::span<const std::byte> in, bool fua, Done done);
    /// fdatasync.
    void flush(Disk& disk, Done done);

    /// Operations in the kernel, and waiting for room.
    [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
    [[nodiscard]] std::size_t queued() const noexcept { return pending_.size(); }

private:
    struct Op;
    DiskRing(const boost::asio::any_io_executor& loop, unsigned entries);
    void add(std::unique_ptr<Op> op);
    void fail_later(Done done, int err);
    void kick();
    void submit();
    void reap();
    void complete(Op* op, int res);
    void wait_eventfd();

    boost::asio::any_io_executor loop_;
    unsigned entries_;
    std::unique_ptr<io_uring> ring_;
    bool ring_ready_ = false;
    boost::asio::posix::stream_descriptor eventfd_;
    boost::asio::steady_timer retry_;
    std::deque<std::unique_ptr<Op>> pending_;
    std::vector<std::pair<Op*, int>> reaped_;
    std::size_t in_flight_ = 0;  // prepared into the submission queue, CQE not yet reaped
    bool kicked_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ismd::block
