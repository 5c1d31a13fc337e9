// SPDX-License-Identifier: MIT
// The shared fabric file: naming, creation, mapping, the fabric and slot locks, interrupt
// sockets, and the fabric-level public calls (list, remove, GID derivation).
#include "ism/sim/fabric.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sim/fabric_map.hpp"

namespace ism::sim {
namespace detail {
namespace {

constexpr uint64_t kFnvOffset = 0xcbf2'9ce4'8422'2325ULL;
constexpr uint64_t kFnvPrime = 0x0000'0100'0000'01b3ULL;
// A fabric being removed while we open it: retry a few times, then give up.
constexpr int kOpenAttempts = 8;
// Spins before a waiter yields, and yields between checks of the holder's pid.
constexpr unsigned kSpinsBeforeYield = 64;
constexpr unsigned kYieldsPerOwnerCheck = 256;

uint64_t fnv1a(std::string_view s, uint64_t h = kFnvOffset)
{
    for (const char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= kFnvPrime;
    }
    return h;
}

Result<void> set_ofd_lock(int fd, int cmd, short type, int64_t start)
{
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = 1;
    while (::fcntl(fd, cmd, &fl) < 0) {
        if (errno != EINTR)
            return fail_errno();
    }
    return {};
}

// The nonce only has to differ between fabric files that exist at the same time.
uint64_t make_nonce(const struct stat& st)
{
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t h = fnv1a(std::to_string(ts.tv_sec) + "." + std::to_string(ts.tv_nsec));
    h = fnv1a(std::to_string(st.st_ino) + ":" + std::to_string(::getpid()), h);
    return h;
}

Result<void> init_header(int fd, std::string_view fabric, const struct stat& st)
{
    if (::ftruncate(fd, static_cast<off_t>(kFabricFileSize)) < 0)
        return fail_errno();
    // Commit the metadata now: running out of /dev/shm later would be a SIGBUS.
    if (::fallocate(fd, 0, 0, static_cast<off_t>(kArenasOffset)) < 0)
        return fail_errno();
    FabricHeader h{};
    h.version = kLayoutVersion;
    h.nonce = make_nonce(st);
    h.file_size = kFabricFileSize;
    h.arena_size = kDmaArenaSize;
    h.max_functions = kMaxFunctions;
    h.next_token = 1;
    h.pchid = pchid_for_fabric(fabric);
    if (::pwrite(fd, &h, sizeof(h), 0) != static_cast<ssize_t>(sizeof(h)))
        return fail_errno(EIO);
    // The magic goes last: a file without it was never completely initialised.
    h.magic = kFabricMagic;
    if (::pwrite(fd, &h.magic, sizeof(h.magic), 0) != static_cast<ssize_t>(sizeof(h.magic)))
        return fail_errno(EIO);
    return {};
}

}  // namespace

bool valid_name(std::string_view name, std::size_t max_len)
{
    if (name.empty() || name.size() > max_len || name.front() == '.' || name.front() == '-')
        return false;
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

FabricMap::FabricMap(UniqueFd fd, std::byte* base, std::size_t size, std::string fabric) noexcept
    : fd_(std::move(fd)), base_(base), size_(size), fabric_(std::move(fabric))
{
}

FabricMap::~FabricMap()
{
    ::munmap(base_, size_);
}

Result<std::shared_ptr<FabricMap>> FabricMap::open(std::string_view fabric, bool create, bool whole)
{
    auto path = fabric_path(fabric);
    if (!path)
        return tl::unexpected(path.error());
    for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
        const int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
        UniqueFd fd(::open(path->c_str(), flags, 0600));
        if (!fd)
            return fail_errno();
        auto lock = FabricLock::acquire(fd.get());
        if (!lock)
            return tl::unexpected(lock.error());
        struct stat st {};
        struct stat by_path {};
        if (::fstat(fd.get(), &st) < 0)
            return fail_errno();
        // remove_fabric unlinked it between our open and our lock: open the new one.
        if (::stat(path->c_str(), &by_path) < 0 || by_path.st_ino != st.st_ino ||
            by_path.st_dev != st.st_dev) {
            if (!create)
                return fail_errno(ENOENT);
            continue;
        }
        uint32_t magic = 0;
        if (st.st_size != 0 && ::pread(fd.get(), &magic, sizeof(magic), 0) < 0)
            return fail_errno();
        // Empty, or left without its magic by a creator killed while initialising it.
        if (create && (st.st_size == 0 || magic == 0)) {
            if (auto r = init_header(fd.get(), fabric, st); !r)
                return tl::unexpected(r.error());
        } else if (static_cast<uint64_t>(st.st_size) != kFabricFileSize) {
            return fail(errc::sim_fabric_mismatch);
        }
        const std::size_t size = whole ? kFabricFileSize : kArenasOffset;
        void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        if (base == MAP_FAILED)
            return fail_errno();
        std::shared_ptr<FabricMap> map(
            new FabricMap(std::move(fd), static_cast<std::byte*>(base), size, std::string(fabric)));
        const FabricHeader& h = map->header();
        if (h.magic != kFabricMagic || h.version != kLayoutVersion ||
            h.file_size != kFabricFileSize || h.arena_size != kDmaArenaSize ||
            h.max_functions != kMaxFunctions)
            return fail(errc::sim_fabric_mismatch);
        return map;
    }
    return fail_errno(EAGAIN);
}

FabricHeader& FabricMap::header() const noexcept
{
    return *reinterpret_cast<FabricHeader*>(base_);
}

Be32& FabricMap::token_slot(uint32_t value) const noexcept
{
    return reinterpret_cast<Be32*>(base_ + kTokenTableOffset)[value];
}

Slot& FabricMap::slot(uint32_t i) const noexcept
{
    return *reinterpret_cast<Slot*>(base_ + kSlotsOffset + i * kSlotStride);
}

uint64_t FabricMap::arena_file_offset(uint32_t i) const noexcept
{
    return kArenasOffset + i * kDmaArenaSize;
}

std::byte* FabricMap::arena(uint32_t i) const noexcept
{
    return base_ + arena_file_offset(i);
}

Result<FabricLock> FabricLock::acquire(int fd)
{
    if (auto r = set_ofd_lock(fd, F_OFD_SETLKW, F_WRLCK, kFabricLockByte); !r)
        return tl::unexpected(r.error());
    return FabricLock(fd);
}

FabricLock::FabricLock(FabricLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FabricLock::~FabricLock()
{
    if (fd_ >= 0)
        (void)set_ofd_lock(fd_, F_OFD_SETLK, F_UNLCK, kFabricLockByte);
}

namespace {
std::atomic<int32_t> cached_pid{0};
void forget_pid() noexcept
{
    cached_pid.store(0, std::memory_order_relaxed);
}
}  // namespace

int32_t self_pid() noexcept
{
    int32_t pid = cached_pid.load(std::memory_order_relaxed);
    if (pid == 0) {
        static const bool registered = ::pthread_atfork(nullptr, nullptr, forget_pid) == 0;
        (void)registered;
        pid = ::getpid();
        cached_pid.store(pid, std::memory_order_relaxed);
    }
    return pid;
}

SlotLock::SlotLock(Slot& slot) noexcept : word_(slot.lock)
{
    const auto me = static_cast<uint32_t>(self_pid());
    for (unsigned n = 0;; ++n) {
        uint32_t holder = 0;
        if (word_.compare_exchange(holder, me, std::memory_order_acquire))
            return;
        if (n < kSpinsBeforeYield)
            continue;
        ::sched_yield();
        // The holder was killed inside its critical section: take the lock over. What it
        // left half-done is either its own slot (reclaimed next) or benign (an event
        // entry whose index was not yet published, a partly copied store).
        if (holder != 0 && holder != me && n % kYieldsPerOwnerCheck == 0 &&
            ::kill(static_cast<pid_t>(holder), 0) < 0 && errno == ESRCH &&
            word_.compare_exchange(holder, me, std::memory_order_acquire))
            return;
    }
}

SlotLock::~SlotLock()
{
    word_.store(0, std::memory_order_release);
}

std::string irq_socket_name(uint64_t nonce, uint32_t slot, uint32_t generation)
{
    char buf[64];
    std::snprintf(buf, sizeof(buf), "ism-sim/%016llx/%u/%u", static_cast<unsigned long long>(nonce),
                  slot, generation);
    return buf;
}

void IrqSender::raise(const FabricMap& map, uint32_t slot)
{
    if (!sock_) {
        sock_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!sock_)
            return;
    }
    const uint32_t gen = map.slot(slot).generation.load(std::memory_order_acquire);
    const std::string name = irq_socket_name(map.header().nonce, slot, gen);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    const char one = 1;
    // EAGAIN: the target's queue is full, an interrupt is pending anyway (MSI coalesces);
    // ECONNREFUSED: the function just went away. Neither is the sender's failure.
    (void)::sendto(sock_.get(), &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL,
                   reinterpret_cast<const sockaddr*>(&addr), len);
}

}  // namespace detail

uint64_t gid_for_name(std::string_view name)
{
    const uint64_t gid = detail::fnv1a(name, detail::fnv1a("ism-sim-gid:"));
    return gid == 0 ? 1 : gid;
}

uint16_t pchid_for_fabric(std::string_view fabric)
{
    if (fabric == "default")
        return kDefaultPchid;
    // 0xFF01..0xFFFE: the emulated range without the default's CHID and loopback-ism's.
    return static_cast<uint16_t>(kDefaultPchid + 1 + detail::fnv1a(fabric) % 0xFE);
}

Result<std::string> fabric_path(std::string_view fabric)
{
    if (!detail::valid_name(fabric, kMaxFabricNameLength))
        return fail(errc::sim_bad_name);
    const char* dir = std::getenv("ISM_SIM_DIR");
    std::string path = dir != nullptr && *dir != '\0' ? dir : "/dev/shm";
    path += "/ism-sim-";
    path += fabric;
    return path;
}

Result<void> remove_fabric(std::string_view fabric)
{
    auto map = detail::FabricMap::open(fabric, false, false);
    if (!map)
        return tl::unexpected(map.error());
    auto lock = detail::FabricLock::acquire((*map)->fd());
    if (!lock)
        return tl::unexpected(lock.error());
    for (uint32_t i = 0; i < kMaxFunctions; ++i) {
        if (detail::slot_alive(**map, i))
            return fail_errno(EBUSY);
    }
    auto path = fabric_path(fabric);
    if (::unlink(path->c_str()) < 0)
        return fail_errno();
    return {};
}

Result<std::vector<FunctionStatus>> list_functions(std::string_view fabric)
{
    auto map = detail::FabricMap::open(fabric, false, false);
    if (!map)
        return tl::unexpected(map.error());
    std::vector<FunctionStatus> out;
    std::vector<uint32_t> slots;
    for (uint32_t i = 0; i < kMaxFunctions; ++i) {
        detail::Slot& s = (*map)->slot(i);
        detail::SlotLock lock(s);
        if (s.state != detail::kSlotLive)
            continue;
        FunctionStatus st;
        st.name.assign(s.name, ::strnlen(s.name, sizeof(s.name)));
        st.gid = s.gid;
        st.pid = static_cast<int>(uint32_t{s.pid});
        st.dmbs = s.dmb_count;
        out.push_back(std::move(st));
        slots.push_back(i);
    }
    // The liveness probe is a system call per slot: done outside the slot locks.
    for (std::size_t n = 0; n < out.size(); ++n)
        out[n].alive = detail::slot_alive(**map, slots[n]);
    return out;
}

}  // namespace ism::sim
