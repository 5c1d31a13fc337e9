// SPDX-License-Identifier: MIT
// Disk: the storage behind an export, a regular file or a block device.
//
// Every call blocks (pread, fdatasync, fallocate, ioctl) and is meant for IoPool's
// threads, never the event loop; DiskRing does reads, writes and flushes of the same fd
// through io_uring instead, after the same range checks (fd_for). Errors are errno values, which
// the block protocol carries to the NBD client as they are (EIO, ENOSPC, EPERM, EINVAL).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "ism/unique_fd.hpp"

namespace ismd::block {

struct Extent {
    uint64_t length = 0;
    bool hole = false;  // reads as zeroes and holds no data
};

class Disk {
public:
    /// Opens `path`; the error is a line for the log.
    static tl::expected<std::unique_ptr<Disk>, std::string> open(const std::string& path,
                                                                 bool read_only, bool direct);

    [[nodiscard]] uint64_t size() const noexcept { return size_; }
    [[nodiscard]] bool read_only() const noexcept { return read_only_; }
    [[nodiscard]] bool block_device() const noexcept { return block_device_; }
    [[nodiscard]] bool rotational() const noexcept { return rotational_; }
    [[nodiscard]] uint32_t logical_block() const noexcept { return logical_block_; }

    /// 0 or an errno. Short reads past the end are errors (EINVAL), never zeroes.
    int read(uint64_t offset, std::span<std::byte> out);
    /// `fua`: persisted before it returns.
    int write(uint64_t offset, std::span<const std::byte> in, bool fua);
    int flush();
    /// Gives the range back (punch hole / BLKDISCARD); reads of it may give zeroes or old data.
    int trim(uint64_t offset, uint64_t length);
    /// The range reads as zeroes afterwards; `may_punch` lets it become a hole.
    int write_zeroes(uint64_t offset, uint64_t length, bool may_punch, bool fua);
    /// Data and holes from `offset`, covering at least one byte and at most `length`.
    tl::expected<std::vector<Extent>, int> extents(uint64_t offset, uint64_t length);

    /// The fd for I/O of its own (DiskRing), once the range passes the checks read and
    /// write make; else the errno they would give.
    [[nodiscard]] tl::expected<int, int> fd_for(uint64_t offset, uint64_t length,
                                                bool writing) const;
    /// The fd for what needs no range (a flush).
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    Disk() = default;
    int check_range(uint64_t offset, uint64_t length, bool writing) const;

    ism::UniqueFd fd_;
    uint64_t size_ = 0;
    bool read_only_ = false;
    bool block_device_ = false;
    bool rotational_ = false;
    uint32_t logical_block_ = 512;
};

}  // namespace ismd::block
