// SPDX-License-Identifier: MIT
// ism-bench-disk-io: the exporter's two ways to the disk, side by side. The same requests
// from one Asio loop (as the Exporter issues them) go through the IoPool (a thread per
// call, the completion posted back) or through the DiskRing (io_uring from the loop).
// Rounds alternate pool, ring, pool, ring; each figure is the median of its rounds.
//
//   rand-read-4k-qd1   latency of a 4 KiB random read, one at a time (p50, us)
//   rand-read-4k-qd32  4 KiB random reads, 32 in flight (IOPS)
//   seq-*-128k-qd8     128 KiB sequential reads / writes, 8 in flight (MiB/s)
//   seq-read-1m-qd8    1 MiB sequential reads, 8 in flight (MiB/s)
//   seq-write-1m-qd8   1 MiB sequential writes, 8 in flight (MiB/s)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <CLI/CLI.hpp>

#include "block/disk.hpp"
#include "block/io_pool.hpp"
#include "block/uring.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using ismd::block::Disk;

struct Workload {
    const char* name;
    bool write;
    bool random;
    std::size_t block;
    unsigned depth;
    const char* unit;
};

constexpr Workload kWorkloads[] = {
    {"rand-read-4k-qd1", false, true, 4096, 1, "us p50"},
    {"rand-read-4k-qd32", false, true, 4096, 32, "IOPS"},
    {"seq-read-128k-qd8", false, false, 128 << 10, 8, "MiB/s"},
    {"seq-write-128k-qd8", true, false, 128 << 10, 8, "MiB/s"},
    {"seq-read-1m-qd8", false, false, 1 << 20, 8, "MiB/s"},
    {"seq-write-1m-qd8", true, false, 1 << 20, 8, "MiB/s"},
};

/// One way to the disk: (write, offset, buffer, done(err)).
using Issue = std::function<void(bool, uint64_t, std::span<std::byte>, std::function<void(int)>)>;

/// Runs `w` for `seconds` from the loop; the figure in the workload's unit.
double run(boost::asio::io_context& io, const Issue& issue, const Workload& w, uint64_t size,
           double seconds, uint64_t seed)
{
    std::mt19937_64 rng(seed);
    const uint64_t blocks = size / w.block;
    std::vector<std::vector<std::byte>> bufs(w.depth,
                                             std::vector<std::byte>(w.block, std::byte{7}));
    std::vector<double> latencies;
    latencies.reserve(1 << 20);
    uint64_t next = 0;
    uint64_t done_ops = 0;
    unsigned active = 0;
    int errors = 0;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    std::function<void(unsigned)> go = [&](unsigned slot) {
        const uint64_t block = w.random ? rng() % blocks : next++ % blocks;
        const auto t0 = Clock::now();
        ++active;
        issue(w.write, block * w.block, bufs[slot], [&, slot, t0](int err) {
            const auto t1 = Clock::now();
            --active;
            errors += err != 0;
            ++done_ops;
            latencies.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
            if (t1 < end)
                go(slot);
        });
    };
    for (unsigned s = 0; s < w.depth; ++s)
        go(s);
    while (active > 0)
        io.run_one();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (errors > 0)
        std::fprintf(stderr, "%s: %d errors\n", w.name, errors);
    if (w.depth == 1) {
        std::nth_element(latencies.begin(),
                         latencies.begin() + static_cast<std::ptrdiff_t>(latencies.size() / 2),
                         latencies.end());
        return latencies[latencies.size() / 2];
    }
    if (w.block == 4096)
        return static_cast<double>(done_ops) / elapsed;  // IOPS
    return static_cast<double>(done_ops * w.block) / elapsed / (1 << 20);
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

int run(int argc, char** argv)
{
    std::string path = "/dev/shm/ism-bench-disk-io.img";
    uint64_t size = 256 << 20;
    double seconds = 1.0;
    int rounds = 5;
    unsigned threads = 8;    // as BlockService's pool
    unsigned entries = 128;  // as BlockService's ring
    bool quick = false;
    std::vector<std::string> only;
    CLI::App app{
        "ism-bench-disk-io: the exporter's disk I/O through the IoPool's threads vs "
        "through io_uring from the loop (DiskRing), on one file"};
    app.add_option("--file", path, "The file to read and write (created, then removed)")
        ->capture_default_str();
    app.add_option("--size", size, "Its size (suffixes K, M, G)")
        ->transform(CLI::AsSizeValue(false))
        ->capture_default_str();
    app.add_option("--seconds", seconds, "Seconds per figure")
        ->check(CLI::Range(0.01, 600.0))
        ->capture_default_str();
    app.add_option("--rounds", rounds, "Figures per way and workload, interleaved A B A B")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    app.add_option("--threads", threads, "IoPool threads")->capture_default_str();
    app.add_option("--entries", entries, "DiskRing entries")->capture_default_str();
    app.add_option("--only", only, "Workloads to run (default: all)")->delimiter(',');
    app.add_flag("--quick", quick, "A smoke test: 16 MiB, 0.05 s, one round");
    CLI11_PARSE(app, argc, argv);
    if (quick) {
        size = 16 << 20;
        seconds = 0.05;
        rounds = 1;
    }

    {
        const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0) {
            std::perror(path.c_str());
            return 1;
        }
        std::vector<std::byte> fill(1 << 20, std::byte{0x5a});  // data, not holes
        for (uint64_t at = 0; at < size; at += fill.size())
            if (::pwrite(fd, fill.data(), fill.size(), static_cast<off_t>(at)) < 0) {
                std::perror(path.c_str());
                return 1;
            }
        ::close(fd);
    }
    auto disk = Disk::open(path, false, false);
    ::unlink(path.c_str());
    if (!disk) {
        std::fprintf(stderr, "%s\n", disk.error().c_str());
        return 1;
    }
    boost::asio::io_context io;
    ismd::block::IoPool pool(io.get_executor(), threads);
    auto ring = ismd::block::DiskRing::create(io.get_executor(), entries);
    if (!ring) {
        std::fprintf(stderr, "io_uring: %s\n", ring.error().c_str());
        return 1;
    }
    Disk& d = **disk;
    const Issue via_pool = [&](bool write, uint64_t off, std::span<std::byte> buf,
                               std::function<void(int)> done) {
        pool.run(
            [&d, write, off, buf] { return write ? d.write(off, buf, false) : d.read(off, buf); },
            std::move(done));
    };
    const Issue via_ring = [&](bool write, uint64_t off, std::span<std::byte> buf,
                               std::function<void(int)> done) {
        if (write)
            (*ring)->write(d, off, buf, false, std::move(done));
        else
            (*ring)->read(d, off, buf, std::move(done));
    };

    std::printf("%-20s %-8s %12s %12s %8s\n", "workload", "unit", "pool", "ring", "ring/pool");
    for (const Workload& w : kWorkloads) {
        if (!only.empty() && std::find(only.begin(), only.end(), w.name) == only.end())
            continue;
        std::vector<double> a;
        std::vector<double> b;
        for (int r = 0; r < rounds; ++r) {
            a.push_back(run(io, via_pool, w, size, seconds, static_cast<uint64_t>(r)));
            b.push_back(run(io, via_ring, w, size, seconds, static_cast<uint64_t>(r)));
        }
        const double pa = median(a);
        const double pb = median(b);
        std::printf("%-20s %-8s %12.1f %12.1f %8.2f\n", w.name, w.unit, pa, pb, pb / pa);
        std::fflush(stdout);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ism-bench-disk-io: %s\n", e.what());
    }
    return 1;
}
