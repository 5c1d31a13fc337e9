// SPDX-License-Identifier: MIT
// Yardsticks for the link's throughput, each measured next to the link figure it is set
// against (docs/benchmarks.md):
//  - pipe_rate: a bare cross-core pipe between two processes with the same number of
//    rings, ring size and piece size as the link run, the writer copying each piece in,
//    the reader copying it out: the copies and the core crossing any two-process
//    transport pays, with no device, framing or checks;
//  - dram_memcpy_rate: single-thread memcpy of messages taken in turn from a buffer far
//    larger than the caches, the bound for messages of 1 MiB and more, whose buffers do
//    not stay in cache either.
// (The device ceiling, IsmDevice::move's store rate into the peer process, needs the
// link's two processes: link_session.hpp.)
#pragma once

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

namespace ism::bench {

/// Bytes per second the reader of a bare pipe got: `rings` single-producer,
/// single-consumer rings of `ring` bytes in shared memory between two spinning processes,
/// the writer going round the rings writing `size`-byte messages in pieces of at most
/// `piece` bytes and publishing each piece, the reader going round copying whatever was
/// published into its own message buffer and returning the room.
inline double pipe_rate(std::size_t size, std::size_t ring, std::size_t rings, std::size_t piece,
                        double seconds)
{
    struct alignas(64) Cursors {
        std::atomic<uint64_t> prod{0};              // written by the writer only
        alignas(64) std::atomic<uint64_t> cons{0};  // written by the reader only
    };
    struct alignas(64) Header {
        std::atomic<int> stop{0};
    };
    const std::size_t head = sizeof(Header) + rings * sizeof(Cursors);
    const std::size_t bytes = head + rings * ring;
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        std::perror("pipe yardstick");
        return 0;
    }
    auto* base = static_cast<std::byte*>(mem);
    auto* hdr = new (base) Header;
    std::vector<Cursors*> cur(rings);
    for (std::size_t r = 0; r < rings; ++r)
        cur[r] = new (base + sizeof(Header) + r * sizeof(Cursors)) Cursors;
    auto data = [&](std::size_t r) { return base + head + r * ring; };
    piece = std::max<std::size_t>(std::min(piece, ring), 8);
    const pid_t child = ::fork();
    if (child == 0) {
        std::vector<std::vector<std::byte>> out(rings, std::vector<std::byte>(size));
        std::vector<uint64_t> cons(rings, 0);
        std::vector<std::size_t> at(rings, 0);  // position in each ring's current message
        while (hdr->stop.load(std::memory_order_acquire) == 0) {
            for (std::size_t r = 0; r < rings; ++r) {
                const uint64_t prod = cur[r]->prod.load(std::memory_order_acquire);
                if (prod == cons[r])
                    continue;
                while (cons[r] < prod) {
                    const std::size_t off = cons[r] % ring;
                    const std::size_t n = std::min<std::size_t>(
                        {static_cast<std::size_t>(prod - cons[r]), ring - off, size - at[r]});
                    std::memcpy(out[r].data() + at[r], data(r) + off, n);
                    at[r] = (at[r] + n) % size;
                    cons[r] += n;
                }
                cur[r]->cons.store(cons[r], std::memory_order_release);
            }
        }
        ::_exit(0);
    }
    double rate = 0;
    if (child > 0) {
        std::vector<std::byte> in(size, std::byte{7});
        std::vector<uint64_t> prod(rings, 0);
        std::vector<std::size_t> at(rings, 0);
        const auto t0 = std::chrono::steady_clock::now();
        const auto end = t0 + std::chrono::duration<double>(seconds);
        for (unsigned spins = 0;; ++spins) {
            if ((spins & 63) == 0 && std::chrono::steady_clock::now() >= end)
                break;
            for (std::size_t r = 0; r < rings; ++r) {
                const uint64_t cons = cur[r]->cons.load(std::memory_order_acquire);
                const std::size_t free = ring - static_cast<std::size_t>(prod[r] - cons);
                const std::size_t off = prod[r] % ring;
                const std::size_t n = std::min({free, ring - off, size - at[r], piece});
                if (n == 0)
                    continue;
                std::memcpy(data(r) + off, in.data() + at[r], n);
                at[r] = (at[r] + n) % size;
                prod[r] += n;
                cur[r]->prod.store(prod[r], std::memory_order_release);
            }
        }
        uint64_t got = 0;
        for (std::size_t r = 0; r < rings; ++r)
            got += cur[r]->cons.load();
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        hdr->stop.store(1, std::memory_order_release);
        ::waitpid(child, nullptr, 0);
        rate = static_cast<double>(got) / secs;
    }
    ::munmap(mem, bytes);
    return rate;
}

/// Single-thread memcpy of `size`-byte messages taken in turn from a 512 MiB source into
/// a 512 MiB destination (far beyond any cache here), for `seconds`: bytes per second.
inline double dram_memcpy_rate(std::size_t size, double seconds)
{
    constexpr std::size_t kSpan = std::size_t{512} << 20;
    static std::vector<std::byte> src(kSpan, std::byte{3});
    static std::vector<std::byte> dst(kSpan, std::byte{0});
    size = std::min(size, kSpan);
    const std::size_t count = kSpan / size;
    const auto t0 = std::chrono::steady_clock::now();
    const auto end = t0 + std::chrono::duration<double>(seconds);
    std::size_t copied = 0;
    for (std::size_t i = 0;; ++i) {
        const std::size_t off = (i % count) * size;
        std::memcpy(dst.data() + off, src.data() + off, size);
        asm volatile("" : : "r"(dst.data()) : "memory");
        copied += size;
        if (std::chrono::steady_clock::now() >= end)
            break;
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(copied) / secs;
}

}  // namespace ism::bench
