// SPDX-License-Identifier: MIT
// Big-endian access to device structures, written for the emulated device alone.
//
// This is a second copy of what ism/byte_order.hpp does, kept on purpose. The emulated
// device stands in for the hardware in every test of the device layer and the link; if it
// shared the device layer's helpers, a byte-order mistake there would be made the same
// way on both sides of the command area and pass every test. Written separately from
// docs/hardware.md, the sim disagrees with such a mistake instead. Do not replace it with
// ism/byte_order.hpp, and do not include it outside libism/src/sim.
//
// The command area, the SBA and the event queue are big-endian, as on s390. Plain loads
// and stores go byte by byte; stores into memory another process reads concurrently
// (SBA, event queue, DMBs) go through std::atomic_ref on naturally aligned words whose
// in-memory bytes are big-endian, so that the same code is right on x86 and on s390x.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

namespace ism::sim::detail {

inline uint64_t load_be(std::span<const std::byte> b, std::size_t off, std::size_t n)
{
    uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v = (v << 8) | std::to_integer<uint64_t>(b[off + i]);
    return v;
}

inline uint16_t load_be16(std::span<const std::byte> b, std::size_t off)
{
    return static_cast<uint16_t>(load_be(b, off, 2));
}

inline uint32_t load_be32(std::span<const std::byte> b, std::size_t off)
{
    return static_cast<uint32_t>(load_be(b, off, 4));
}

inline uint64_t load_be64(std::span<const std::byte> b, std::size_t off)
{
    return load_be(b, off, 8);
}

inline void store_be(std::span<std::byte> b, std::size_t off, std::size_t n, uint64_t v)
{
    for (std::size_t i = 0; i < n; ++i)
        b[off + i] = static_cast<std::byte>((v >> (8 * (n - 1 - i))) & 0xFF);
}

inline void store_be16(std::span<std::byte> b, std::size_t off, uint16_t v)
{
    store_be(b, off, 2, v);
}

inline void store_be32(std::span<std::byte> b, std::size_t off, uint32_t v)
{
    store_be(b, off, 4, v);
}

inline void store_be64(std::span<std::byte> b, std::size_t off, uint64_t v)
{
    store_be(b, off, 8, v);
}

/// The native integer whose bytes in memory are the big-endian form of `v`.
template <class T>
constexpr T be_repr(T v) noexcept
{
    // The byte swap is the hot store path's main cost when written as a loop of shifts
    // (the compiler does not turn the loop into one instruction): one bswap instead.
    if constexpr (std::endian::native == std::endian::big || sizeof(T) == 1) {
        return v;
    } else if constexpr (sizeof(T) == 2) {
        return static_cast<T>(__builtin_bswap16(v));
    } else if constexpr (sizeof(T) == 4) {
        return static_cast<T>(__builtin_bswap32(v));
    } else {
        static_assert(sizeof(T) == 8);
        return static_cast<T>(__builtin_bswap64(v));
    }
}

/// Atomic access to a naturally aligned word of shared device memory.
template <class T>
std::atomic_ref<T> shared_word(std::byte* p) noexcept
{
    return std::atomic_ref<T>(*reinterpret_cast<T*>(p));
}

/// Atomically ORs big-endian `bits` into the aligned word at `p` (release: whatever was
/// written before is visible to whoever sees the bit).
/// Returns the word's previous value.
template <class T>
T or_be(std::byte* p, T bits) noexcept
{
    return be_repr(shared_word<T>(p).fetch_or(be_repr(bits), std::memory_order_seq_cst));
}

/// Stores big-endian `v` into the aligned word at `p`.
template <class T>
void store_shared_be(std::byte* p, T v, std::memory_order order) noexcept
{
    shared_word<T>(p).store(be_repr(v), order);
}

}  // namespace ism::sim::detail
