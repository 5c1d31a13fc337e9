// SPDX-License-Identifier: MIT
// Sys: the system-call boundary of the VFIO device file.
//
// Everything VfioDeviceFile asks of the kernel goes through one Sys object: device nodes,
// ioctls, region pread/pwrite, the MSI eventfd, DMA memory and the few sysfs files used to
// find a function. Sys::real() forwards each call to the kernel unchanged; a test supplies
// a double that plays the kernel, so the whole VFIO flow runs on machines without
// /dev/vfio.
//
// Contract: each call is exactly one system call (or one small sysfs read), with no
// retries: the caller decides where an EINTR retry is safe. Failures are errno values in
// std::system_category. File descriptors returned by a Sys must be closed by the same Sys
// (SysFd does that), because a double's descriptors are not the process's.
// Threading: Sys::real() is stateless and may be shared; a double defines its own rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ism/result.hpp"

namespace ism::vfio {

/// RLIMIT_MEMLOCK as returned by Sys::memlock_limit() when the limit is RLIM_INFINITY.
inline constexpr uint64_t kMemlockUnlimited = UINT64_MAX;

class Sys {
public:
    virtual ~Sys();
    Sys() = default;
    Sys(const Sys&) = delete;
    Sys& operator=(const Sys&) = delete;

    /// The process-wide instance that forwards to the kernel.
    static Sys& real();

    /// open(2); O_CLOEXEC is added by the caller, not here.
    virtual Result<int> open(const std::string& path, int flags) = 0;
    virtual void close(int fd) = 0;

    /// ioctl(2) with a pointer argument; returns the ioctl's non-negative result.
    virtual Result<int> ioctl(int fd, unsigned long request, void* arg) = 0;
    /// ioctl(2) whose argument is a plain value (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU).
    virtual Result<int> ioctl_value(int fd, unsigned long request, unsigned long value) = 0;

    /// One pread(2)/pwrite(2)/read(2); the count moved may be short.
    virtual Result<std::size_t> pread(int fd, void* buf, std::size_t count, uint64_t offset) = 0;
    virtual Result<std::size_t> pwrite(int fd, const void* buf, std::size_t count,
                                       uint64_t offset) = 0;
    virtual Result<std::size_t> read(int fd, void* buf, std::size_t count) = 0;

    /// eventfd(2).
    virtual Result<int> eventfd(unsigned int initval, int flags) = 0;

    /// Page-aligned, zeroed, shared anonymous memory (mmap(2)) and its release.
    virtual Result<std::byte*> map_anonymous(std::size_t size) = 0;
    virtual void unmap(std::byte* addr, std::size_t size) = 0;
    [[nodiscard]] virtual std::size_t page_size() = 0;

    /// The soft RLIMIT_MEMLOCK in bytes, kMemlockUnlimited for RLIM_INFINITY.
    virtual Result<uint64_t> memlock_limit() = 0;

    /// Filesystem look-ups used on sysfs and /dev.
    virtual Result<std::string> readlink(const std::string& path) = 0;
    /// The start of a small file (sysfs attributes are < 4 KiB).
    virtual Result<std::string> read_file(const std::string& path) = 0;
    /// Names in a directory, without "." and "..", in no particular order.
    virtual Result<std::vector<std::string>> list_dir(const std::string& path) = 0;
    [[nodiscard]] virtual bool exists(const std::string& path) = 0;
};

/// An owned descriptor from a Sys, closed through that Sys. Move-only.
class SysFd {
public:
    SysFd() noexcept = default;
    SysFd(Sys& sys, int fd) noexcept : sys_(&sys), fd_(fd) {}
    SysFd(SysFd&& other) noexcept : sys_(other.sys_), fd_(std::exchange(other.fd_, -1)) {}
    SysFd& operator=(SysFd&& other) noexcept
    {
        if (this != &other) {
            reset();
            sys_ = other.sys_;
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    SysFd(const SysFd&) = delete;
    SysFd& operator=(const SysFd&) = delete;
    ~SysFd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    void reset() noexcept
    {
        if (fd_ >= 0)
            sys_->close(std::exchange(fd_, -1));
    }

private:
    Sys* sys_ = nullptr;
    int fd_ = -1;
};

}  // namespace ism::vfio
