// SPDX-License-Identifier: MIT
// Sys::real(): each call forwards to one system call and reports errno unchanged.
#include "ism/vfio/sys.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>

namespace ism::vfio {

Sys::~Sys() = default;

namespace {

// sysfs attributes fit in one page; anything longer is not a file we want.
constexpr std::size_t kMaxSysfsFile = 4096;

Result<std::size_t> io_result(ssize_t n)
{
    if (n < 0)
        return fail_errno();
    return static_cast<std::size_t>(n);
}

Result<int> int_result(int n)
{
    if (n < 0)
        return fail_errno();
    return n;
}

class RealSys final : public Sys {
public:
    Result<int> open(const std::string& path, int flags) override
    {
        return int_result(::open(path.c_str(), flags));
    }

    void close(int fd) override { ::close(fd); }

    Result<int> ioctl(int fd, unsigned long request, void* arg) override
    {
        return int_result(::ioctl(fd, request, arg));
    }

    Result<int> ioctl_value(int fd, unsigned long request, unsigned long value) override
    {
        return int_result(::ioctl(fd, request, value));
    }

    Result<std::size_t> pread(int fd, void* buf, std::size_t count, uint64_t offset) override
    {
        return io_result(::pread(fd, buf, count, static_cast<off_t>(offset)));
    }

    Result<std::size_t> pwrite(int fd, const void* buf, std::size_t count, uint64_t offset) override
    {
        return io_result(::pwrite(fd, buf, count, static_cast<off_t>(offset)));
    }

    Result<std::size_t> read(int fd, void* buf, std::size_t count) override
    {
        return io_result(::read(fd, buf, count));
    }

    Result<int> eventfd(unsigned int initval, int flags) override
    {
        return int_result(::eventfd(initval, flags));
    }

    Result<std::byte*> map_anonymous(std::size_t size) override
    {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return fail_errno();
        return static_cast<std::byte*>(p);
    }

    void unmap(std::byte* addr, std::size_t size) override { ::munmap(addr, size); }

    std::size_t page_size() override { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

    Result<uint64_t> memlock_limit() override
    {
        rlimit lim{};
        if (::getrlimit(RLIMIT_MEMLOCK, &lim) < 0)
            return fail_errno();
        if (lim.rlim_cur == RLIM_INFINITY)
            return kMemlockUnlimited;
        return static_cast<uint64_t>(lim.rlim_cur);
    }

    Result<std::string> readlink(const std::string& path) override
    {
        std::array<char, PATH_MAX> buf{};
        ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
        if (n < 0)
            return fail_errno();
        if (static_cast<std::size_t>(n) >= buf.size())
            return fail_errno(ENAMETOOLONG);
        return std::string(buf.data(), static_cast<std::size_t>(n));
    }

    Result<std::string> read_file(const std::string& path) override
    {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return fail_errno();
        std::string text(kMaxSysfsFile, '\0');
        ssize_t n = 0;
        do {
            n = ::read(fd, text.data(), text.size());
        } while (n < 0 && errno == EINTR);
        int err = errno;
        ::close(fd);
        if (n < 0)
            return fail_errno(err);
        text.resize(static_cast<std::size_t>(n));
        return text;
    }

    Result<std::vector<std::string>> list_dir(const std::string& path) override
    {
        DIR* dir = ::opendir(path.c_str());
        if (dir == nullptr)
            return fail_errno();
        std::vector<std::string> names;
        while (const dirent* entry = ::readdir(dir)) {
            std::string name = entry->d_name;
            if (name != "." && name != "..")
                names.push_back(std::move(name));
        }
        ::closedir(dir);
        return names;
    }

    bool exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }
};

}  // namespace

Sys& Sys::real()
{
    static RealSys sys;
    return sys;
}

}  // namespace ism::vfio
