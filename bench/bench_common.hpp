// SPDX-License-Identifier: MIT
// What the benchmarks share: clocks, percentiles, medians, CPU time, re-executing this
// program as the peer process, and the machine's floors measured in the same run (warm
// single-thread memcpy, a bare two-process eventfd ping-pong, a bare two-process
// shared-memory spin ping-pong). The link's own yardsticks are in yardsticks.hpp.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <vector>

extern char** environ;

namespace ism::bench {

inline uint64_t now_ns()
{
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

struct Percentiles {
    double p50_us = 0;
    double p99_us = 0;
};

/// p50 and p99 of samples in nanoseconds, each divided by `divisor` (2 turns round trips
/// into one-way figures). Sorts `ns`.
inline Percentiles percentiles(std::vector<uint64_t>& ns, double divisor = 1.0)
{
    if (ns.empty())
        return {};
    std::sort(ns.begin(), ns.end());
    return {static_cast<double>(ns[ns.size() / 2]) / 1000.0 / divisor,
            static_cast<double>(ns[ns.size() * 99 / 100]) / 1000.0 / divisor};
}

/// Runs this program again (exec'd, not forked) with `args` as its arguments. Returns
/// the child's pid, or -1.
inline pid_t spawn_self(const char* argv0, std::vector<std::string> args)
{
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(argv0));
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
        std::perror("posix_spawn");
        return -1;
    }
    return pid;
}

/// Owns a child process: reaps it; on an early exit (an error) gives it a moment to end
/// by itself (so that it can say why), then ends it.
class ChildProcess {
public:
    ChildProcess() = default;
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess()
    {
        if (pid_ <= 0)
            return;
        for (int i = 0; i < 200; ++i) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                if (WIFSIGNALED(status))
                    std::fprintf(stderr, "child %d killed by signal %d\n", pid_, WTERMSIG(status));
                return;
            }
            ::usleep(10'000);
        }
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    void adopt(pid_t pid) noexcept { pid_ = pid; }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// Waits for the child; returns its exit status (-1 if it did not exit normally).
    int wait()
    {
        int status = 0;
        const pid_t pid = pid_;
        pid_ = -1;
        if (pid <= 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
            return -1;
        return WEXITSTATUS(status);
    }

private:
    pid_t pid_ = -1;
};

/// CPU time other processes used while a measurement ran, in CPUs (1.0: one whole CPU
/// busy on average), from /proc/stat minus this process and its reaped children. Figures
/// taken while others ran are not comparable: polling in particular needs its own cores.
class OtherLoad {
public:
    OtherLoad() : busy_(busy_seconds()), own_(own_seconds()), at_(now_ns()) {}
    [[nodiscard]] double cpus() const
    {
        const double wall = static_cast<double>(now_ns() - at_) / 1e9;
        const double others = (busy_seconds() - busy_) - (own_seconds() - own_);
        return wall > 0 ? std::max(0.0, others / wall) : 0.0;
    }

private:
    static double busy_seconds()
    {
        std::ifstream in("/proc/stat");
        std::string cpu;
        unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
                           softirq = 0, steal = 0;
        in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
        return static_cast<double>(user + nice + system + irq + softirq + steal) /
               static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
    static double own_seconds()
    {
        double total = 0;
        for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
            rusage u{};
            ::getrusage(who, &u);
            for (const timeval& t : {u.ru_utime, u.ru_stime})
                total += static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
        }
        return total;
    }

    double busy_;
    double own_;
    uint64_t at_;
};

/// Single-thread memcpy between two warm buffers of `size` bytes, in bytes per second.
inline double memcpy_rate(std::size_t size, std::size_t total)
{
    std::vector<std::byte> a(size, std::byte{1});
    std::vector<std::byte> b(size);
    std::memcpy(b.data(), a.data(), size);  // warm
    const std::size_t reps = std::max<std::size_t>(total / size, 16);
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < reps; ++i) {
        a[i % size] = static_cast<std::byte>(i);
        std::memcpy(b.data(), a.data(), size);
        asm volatile("" : : "r"(b.data()) : "memory");
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(reps * size) / secs;
}

struct PingPongSamples {
    std::vector<uint64_t> wake_ns;   // writer's timestamp to the blocked reader's wake-up
    std::vector<uint64_t> round_ns;  // a whole round trip, timed by the initiator
};

/// The floor for a blocking wake-up: one process writes an eventfd, another blocked in
/// read() wakes up and answers the same way. The one-way figure is timed as the ISM
/// latency is (a timestamp in shared memory, CLOCK_MONOTONIC being system-wide).
inline PingPongSamples eventfd_ping_pong(int iterations)
{
    const auto n = static_cast<std::size_t>(iterations);
    const std::size_t bytes = (n + 1) * sizeof(uint64_t);
    const int to_child = ::eventfd(0, 0);
    const int to_parent = ::eventfd(0, 0);
    auto* shared = static_cast<uint64_t*>(
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    PingPongSamples out;
    if (to_child < 0 || to_parent < 0 || shared == MAP_FAILED) {
        std::perror("eventfd ping-pong");
        return out;
    }
    const pid_t child = ::fork();
    if (child == 0) {
        uint64_t v = 1;
        for (std::size_t i = 0; i < n; ++i) {
            if (::read(to_child, &v, 8) != 8)
                ::_exit(1);
            shared[1 + i] = now_ns() - shared[0];
            if (::write(to_parent, &v, 8) != 8)
                ::_exit(1);
        }
        ::_exit(0);
    }
    out.round_ns.reserve(n);
    uint64_t v = 1;
    for (std::size_t i = 0; i < n && child > 0; ++i) {
        const uint64_t t0 = now_ns();
        shared[0] = t0;
        if (::write(to_child, &v, 8) != 8 || ::read(to_parent, &v, 8) != 8)
            break;
        out.round_ns.push_back(now_ns() - t0);
    }
    if (child > 0)
        ::waitpid(child, nullptr, 0);
    out.wake_ns.assign(shared + 1, shared + 1 + out.round_ns.size());
    ::munmap(shared, bytes);
    ::close(to_child);
    ::close(to_parent);
    return out;
}

/// The floor for polling: two processes spinning on one shared-memory word each (on
/// separate cache lines), no system call on the way. Round trips, timed by the initiator.
inline std::vector<uint64_t> spin_ping_pong(int iterations)
{
    struct alignas(64) Line {
        std::atomic<uint64_t> value{0};
    };
    const auto n = static_cast<uint64_t>(iterations);
    void* mem = ::mmap(nullptr, 2 * sizeof(Line), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    std::vector<uint64_t> rounds;
    if (mem == MAP_FAILED) {
        std::perror("spin ping-pong");
        return rounds;
    }
    auto* ping = new (mem) Line;
    auto* pong = new (static_cast<std::byte*>(mem) + sizeof(Line)) Line;
    const pid_t child = ::fork();
    if (child == 0) {
        for (uint64_t i = 1; i <= n; ++i) {
            while (ping->value.load(std::memory_order_acquire) != i) {
            }
            pong->value.store(i, std::memory_order_release);
        }
        ::_exit(0);
    }
    rounds.reserve(n);
    for (uint64_t i = 1; i <= n && child > 0; ++i) {
        const uint64_t t0 = now_ns();
        ping->value.store(i, std::memory_order_release);
        while (pong->value.load(std::memory_order_acquire) != i) {
        }
        rounds.push_back(now_ns() - t0);
    }
    if (child > 0)
        ::waitpid(child, nullptr, 0);
    ::munmap(mem, 2 * sizeof(Line));
    return rounds;
}

/// CPU time this process used so far (user + system), in seconds.
inline double cpu_seconds_self()
{
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// Context switches of this process so far, voluntary and not.
inline uint64_t context_switches_self()
{
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<uint64_t>(u.ru_nvcsw) + static_cast<uint64_t>(u.ru_nivcsw);
}

/// The median of `v` (0 when empty). Reorders `v`.
inline double median(std::vector<double> v)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace ism::bench
