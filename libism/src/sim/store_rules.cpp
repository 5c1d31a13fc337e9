// SPDX-License-Identifier: MIT
// BAR0 stores: the driver's shape checks, the decode of the store address, the checks the
// "hardware" makes before it lets data into a DMB, and the copy itself.
//
// Store address (docs/hardware.md 1.6): token (bits 32..47) | dmbe_idx << 24 | sf << 23 |
// dmb_offset (bits 0..22). Failures surface as the ism_vfio_pci driver reports them:
// EINVAL for what the driver refuses before issuing PCISTB (too long, crossing 4 KiB,
// outside the BAR), EIO for a store the function refuses (a failed PCISTB).
#include <atomic>
#include <cerrno>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "sim/byte_order.hpp"
#include "sim/fabric_map.hpp"

namespace ism::sim::detail {
namespace {

constexpr uint64_t kTokenMask = 0xFFFF'0000'0000ULL;
constexpr unsigned kTokenShift = 32;
constexpr unsigned kDmbeIdxShift = 24;
constexpr uint64_t kDmbeIdxMask = 0xFF;
constexpr unsigned kSignalShift = 23;
constexpr uint64_t kDmbOffsetMask = (uint64_t{1} << 23) - 1;
constexpr uint32_t kMaxDmbeIdx = 15;  // the SBA keeps a 16-bit DMBE mask per DMB
constexpr uint64_t kStoreBoundary = 4096;

struct StoreAddress {
    uint64_t token;
    uint32_t dmbe_idx;
    bool signal;
    uint64_t dmb_offset;
};

StoreAddress decode(uint64_t off)
{
    return {off & kTokenMask, static_cast<uint32_t>((off >> kDmbeIdxShift) & kDmbeIdxMask),
            ((off >> kSignalShift) & 1) != 0, off & kDmbOffsetMask};
}

// Aligned 8-byte words are copied with single 8-byte stores, so a reader polling an
// aligned 8-byte field (SMC-D's cursors) never sees half of an update. On x86-64 the bulk
// goes in aligned vector stores, 32 bytes where the CPU has AVX2 (chosen once at run
// time) and 16 otherwise: an aligned vector store never splits an aligned 8-byte word,
// and moves several times the bytes of a loop of 8-byte atomic stores, which the compiler
// may not vectorise. (glibc's memcpy gives no such promise: it may copy a word in parts.)
void put_byte(std::byte* dst, std::span<const std::byte> src, std::size_t at)
{
    std::atomic_ref<uint8_t>(*reinterpret_cast<uint8_t*>(dst + at))
        .store(std::to_integer<uint8_t>(src[at]), std::memory_order_relaxed);
}

void put_word(std::byte* dst, std::span<const std::byte> src, std::size_t at)
{
    uint64_t w = 0;
    std::memcpy(&w, src.data() + at, sizeof(w));
    shared_word<uint64_t>(dst + at).store(w, std::memory_order_relaxed);
}

#if defined(__x86_64__)
// From a 16-byte aligned `dst + i`: as many 16-byte stores as fit.
std::size_t copy_sse2(std::byte* dst, std::span<const std::byte> src, std::size_t i)
{
    const std::size_t n = src.size();
    for (; i + 64 <= n; i += 64) {
        const auto* s = reinterpret_cast<const __m128i*>(src.data() + i);
        auto* d = reinterpret_cast<__m128i*>(dst + i);
        const __m128i a = _mm_loadu_si128(s);
        const __m128i b = _mm_loadu_si128(s + 1);
        const __m128i c = _mm_loadu_si128(s + 2);
        const __m128i e = _mm_loadu_si128(s + 3);
        _mm_store_si128(d, a);
        _mm_store_si128(d + 1, b);
        _mm_store_si128(d + 2, c);
        _mm_store_si128(d + 3, e);
    }
    for (; i + 16 <= n; i += 16)
        _mm_store_si128(reinterpret_cast<__m128i*>(dst + i),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(src.data() + i)));
    return i;
}

// From a 16-byte aligned `dst + i`: one 16-byte store to reach 32-byte alignment, then
// 32-byte stores, then what is left in 16.
__attribute__((target("avx2"))) std::size_t copy_avx2(std::byte* dst,
                                                      std::span<const std::byte> src, std::size_t i)
{
    const std::size_t n = src.size();
    if (i + 16 <= n && (reinterpret_cast<uintptr_t>(dst + i) % 32) != 0) {
        _mm_store_si128(reinterpret_cast<__m128i*>(dst + i),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(src.data() + i)));
        i += 16;
    }
    for (; i + 128 <= n; i += 128) {
        const auto* s = reinterpret_cast<const __m256i*>(src.data() + i);
        auto* d = reinterpret_cast<__m256i*>(dst + i);
        const __m256i a = _mm256_loadu_si256(s);
        const __m256i b = _mm256_loadu_si256(s + 1);
        const __m256i c = _mm256_loadu_si256(s + 2);
        const __m256i e = _mm256_loadu_si256(s + 3);
        _mm256_store_si256(d, a);
        _mm256_store_si256(d + 1, b);
        _mm256_store_si256(d + 2, c);
        _mm256_store_si256(d + 3, e);
    }
    for (; i + 32 <= n; i += 32)
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + i),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src.data() + i)));
    return copy_sse2(dst, src, i);
}

const bool kHaveAvx2 = __builtin_cpu_supports("avx2") != 0;
#endif

void copy_untorn(std::byte* dst, std::span<const std::byte> src)
{
    std::size_t i = 0;
    const std::size_t n = src.size();
    while (i < n && (reinterpret_cast<uintptr_t>(dst + i) % 8) != 0)
        put_byte(dst, src, i++);
#if defined(__x86_64__)
    if (i + 8 <= n && (reinterpret_cast<uintptr_t>(dst + i) % 16) != 0) {
        put_word(dst, src, i);
        i += 8;
    }
    i = kHaveAvx2 ? copy_avx2(dst, src, i) : copy_sse2(dst, src, i);
#endif
    for (; i + 8 <= n; i += 8)
        put_word(dst, src, i);
    while (i < n)
        put_byte(dst, src, i++);
    std::atomic_thread_fence(std::memory_order_release);
}

}  // namespace

Result<void> check_store_shape(uint64_t off, std::size_t len, uint64_t region_size,
                               uint32_t store_limit)
{
    if (len == 0 || len > store_limit)
        return fail_errno(EINVAL);
    if ((off % kStoreBoundary) + len > kStoreBoundary)
        return fail_errno(EINVAL);
    if (off >= region_size || len > region_size - off)
        return fail_errno(EINVAL);
    return {};
}

Result<void> bar0_store(Caller& caller, uint64_t off, std::span<const std::byte> data)
{
    FabricMap& map = caller.map;
    const StoreAddress a = decode(off);
    if (a.dmbe_idx > kMaxDmbeIdx || a.token == 0)
        return fail_errno(EIO);
    const uint32_t entry = map.token_slot(static_cast<uint32_t>(a.token >> kTokenShift))
                               .load(std::memory_order_acquire);
    if (entry == 0)
        return fail_errno(EIO);
    const uint32_t target = (entry >> 16) - 1;
    const uint32_t sba_idx = entry & 0xFFFF;
    if (target >= kMaxFunctions || sba_idx < kFirstSbaIdx || sba_idx >= kSbaBits)
        return fail_errno(EIO);
    if (!slot_alive_fast(map, target)) {
        reclaim_if_dead(map, target, caller.irq);
        return fail_errno(EIO);
    }
    bool raise = false;
    {
        SlotLock lock(map.slot(target));
        Slot& s = map.slot(target);
        const DmbEntry& d = s.dmbs[sba_idx - kFirstSbaIdx];
        // Re-checked under the lock: an UNREG_DMB that returned has stopped all stores.
        if (s.state != kSlotLive || d.state != kDmbRegistered || d.token != a.token)
            return fail_errno(EIO);
        if (d.rgid != caller.gid || a.dmb_offset + data.size() > d.len)
            return fail_errno(EIO);
        std::byte* dst = translate(map, target, d.iova + a.dmb_offset, data.size());
        if (dst == nullptr)
            return fail_errno(EIO);  // the owner unmapped its DMB: a DMA translation error
        copy_untorn(dst, data);
        if (a.signal)
            raise = signal_dmb_locked(map, target, sba_idx, a.dmbe_idx);
    }
    if (raise)
        caller.irq.raise(map, target);
    return {};
}

}  // namespace ism::sim::detail
