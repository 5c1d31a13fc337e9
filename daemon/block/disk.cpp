// SPDX-License-Identifier: MIT
#include "block/disk.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <linux/falloc.h>
#include <linux/fs.h>

namespace ismd::block {

namespace {

int errno_or(int fallback)
{
    return errno != 0 ? errno : fallback;
}

}  // namespace

tl::expected<std::unique_ptr<Disk>, std::string> Disk::open(const std::string& path, bool read_only,
                                                            bool direct)
{
    auto d = std::unique_ptr<Disk>(new Disk());
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if (direct)
        flags |= O_DIRECT;
    d->fd_ = ism::UniqueFd(::open(path.c_str(), flags));
    if (!d->fd_)
        return tl::unexpected(path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(d->fd_.get(), &st) != 0)
        return tl::unexpected(path + ": " + std::strerror(errno));
    d->read_only_ = read_only;
    if (S_ISBLK(st.st_mode)) {
        d->block_device_ = true;
        uint64_t bytes = 0;
        if (::ioctl(d->fd_.get(), BLKGETSIZE64, &bytes) != 0)
            return tl::unexpected(path + ": BLKGETSIZE64: " + std::strerror(errno));
        d->size_ = bytes;
        int lbs = 0;
        if (::ioctl(d->fd_.get(), BLKSSZGET, &lbs) == 0 && lbs > 0)
            d->logical_block_ = static_cast<uint32_t>(lbs);
        unsigned short rot = 0;
        if (::ioctl(d->fd_.get(), BLKROTATIONAL, &rot) == 0)
            d->rotational_ = rot != 0;
    } else if (S_ISREG(st.st_mode)) {
        d->size_ = static_cast<uint64_t>(st.st_size);
        d->logical_block_ = direct ? 4096 : 1;
    } else {
        return tl::unexpected(path + ": neither a regular file nor a block device");
    }
    return d;
}

int Disk::check_range(uint64_t offset, uint64_t length, bool writing) const
{
    if (writing && read_only_)
        return EPERM;
    if (offset > size_ || length > size_ - offset)
        return writing ? ENOSPC : EINVAL;
    return 0;
}

tl::expected<int, int> Disk::fd_for(uint64_t offset, uint64_t length, bool writing) const
{
    if (int e = check_range(offset, length, writing))
        return tl::unexpected(e);
    return fd_.get();
}

int Disk::read(uint64_t offset, std::span<std::byte> out)
{
    if (int e = check_range(offset, out.size(), false))
        return e;
    while (!out.empty()) {
        const ssize_t n = ::pread(fd_.get(), out.data(), out.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno_or(EIO);
        if (n == 0)
            return EIO;  // the file shrank under us: never hand out zeroes as data
        out = out.subspan(static_cast<std::size_t>(n));
        offset += static_cast<uint64_t>(n);
    }
    return 0;
}

int Disk::write(uint64_t offset, std::span<const std::byte> in, bool fua)
{
    if (int e = check_range(offset, in.size(), true))
        return e;
    while (!in.empty()) {
        const ssize_t n = ::pwrite(fd_.get(), in.data(), in.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return errno_or(EIO);
        in = in.subspan(static_cast<std::size_t>(n));
        offset += static_cast<uint64_t>(n);
    }
    return fua ? flush() : 0;
}

int Disk::flush()
{
    return ::fdatasync(fd_.get()) == 0 ? 0 : errno_or(EIO);
}

int Disk::trim(uint64_t offset, uint64_t length)
{
    if (int e = check_range(offset, length, true))
        return e;
    if (length == 0)
        return 0;
    if (block_device_) {
        uint64_t range[2] = {offset, length};
        return ::ioctl(fd_.get(), BLKDISCARD, range) == 0 ? 0 : errno_or(EIO);
    }
    if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
        return 0;
    // A trim is advice: a file system that cannot punch holes simply keeps the data.
    return errno == EOPNOTSUPP ? 0 : errno_or(EIO);
}

int Disk::write_zeroes(uint64_t offset, uint64_t length, bool may_punch, bool fua)
{
    if (int e = check_range(offset, length, true))
        return e;
    if (length == 0)
        return 0;
    int done = -1;
    if (block_device_) {
        uint64_t range[2] = {offset, length};
        done = ::ioctl(fd_.get(), BLKZEROOUT, range);
    } else {
        const int mode = may_punch ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                                   : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
        done = ::fallocate(fd_.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(length));
    }
    if (done != 0) {
        if (errno != EOPNOTSUPP && errno != EINVAL)
            return errno_or(EIO);
        // No help from the file system: write the zeroes.
        std::vector<std::byte> zeroes(std::min<uint64_t>(length, 1 << 20));
        while (length > 0) {
            const auto n = static_cast<std::size_t>(std::min<uint64_t>(length, zeroes.size()));
            if (int e = write(offset, std::span(zeroes).first(n), false))
                return e;
            offset += n;
            length -= n;
        }
    }
    return fua ? flush() : 0;
}

tl::expected<std::vector<Extent>, int> Disk::extents(uint64_t offset, uint64_t length)
{
    if (int e = check_range(offset, length, false))
        return tl::unexpected(e);
    const uint64_t end = offset + length;
    std::vector<Extent> out;
    if (block_device_) {
        out.push_back({length, false});
        return out;
    }
    uint64_t at = offset;
    while (at < end) {
        const off_t data = ::lseek(fd_.get(), static_cast<off_t>(at), SEEK_DATA);
        if (data < 0 && errno == ENXIO) {
            out.push_back({end - at, true});  // a hole to the end of the file
            break;
        }
        if (data < 0) {
            if (out.empty())
                out.push_back({length, false});  // no SEEK_DATA here: say all data
            break;
        }
        const auto d = static_cast<uint64_t>(data);
        if (d > at) {
            out.push_back({std::min(d, end) - at, true});
            at = std::min(d, end);
            continue;
        }
        const off_t hole = ::lseek(fd_.get(), static_cast<off_t>(at), SEEK_HOLE);
        const uint64_t h = hole < 0 ? end : std::min(static_cast<uint64_t>(hole), end);
        out.push_back({h - at, false});
        at = h;
    }
    return out;
}

}  // namespace ismd::block
