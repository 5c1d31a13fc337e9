// SPDX-License-Identifier: MIT
// Interrupt handling: the SBA scan and the event queue drain.
//
// The device sets bits in the SBA and queues events while we read them, from another
// CPU (or, emulated, another process). Nothing may be lost or reported twice:
//  - the summary bit is cleared *before* the scan, so a DMB signalled after the scan
//    started raises a new interrupt rather than being missed;
//  - each DMB bit is cleared atomically and its DMBE mask exchanged with zero, so bits the
//    device ORs in concurrently land either in this report or in the next one;
//  - the event queue is consumed up to the producer index read once, with our own index
//    of the last slot reported (Linux's algorithm; the queue has no overflow indication).
#include <atomic>
#include <bit>
#include <cstring>

#include "device/regs.hpp"
#include "ism/byte_order.hpp"
#include "ism/device/ism_device.hpp"

namespace ism::device {
namespace {

std::atomic_ref<uint8_t> byte_at(std::byte* base, std::size_t off)
{
    return std::atomic_ref<uint8_t>(*reinterpret_cast<uint8_t*>(base + off));
}

/// Swaps a big-endian u16 in device memory with zero and returns its value.
uint16_t take_be16(std::byte* p)
{
    const uint16_t raw = std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p))
                             .exchange(0, std::memory_order_acq_rel);
    std::byte bytes[2];
    std::memcpy(bytes, &raw, sizeof(bytes));
    return load_be16(bytes, 0);
}

}  // namespace

Result<InterruptReport> IsmDevice::handle_interrupt()
{
    if (auto r = file_->consume_irq(); !r)
        return tl::unexpected(r.error());
    InterruptReport report;
    scan_sba(report);
    drain_event_queue(report);
    return report;
}

void IsmDevice::scan_sba(InterruptReport& report)
{
    using namespace regs;
    std::byte* sba = sba_->data();
    byte_at(sba, 0).fetch_and(static_cast<uint8_t>(~std::to_integer<uint8_t>(kSbaSummaryBit)),
                              std::memory_order_acq_rel);

    // DMB k is bit (0x80 >> k % 8) of byte 4 + k / 8 (MSB first). Indexes below 32 are
    // never used, so the scan starts at byte 8, which is also 8-byte aligned.
    constexpr std::size_t kFirstByte = kSbaDmbBitsOffset + kFirstSbaIndex / 8;
    constexpr std::size_t kEndByte = kSbaDmbBitsOffset + kSbaBits / 8;
    for (std::size_t b = kFirstByte; b < kEndByte; ++b) {
        auto cell = byte_at(sba, b);
        uint8_t bits = cell.load(std::memory_order_acquire);
        while (bits != 0) {
            const int bit = std::countl_zero(bits);  // MSB first: lowest DMB number first
            const auto mask = static_cast<uint8_t>(0x80U >> bit);
            bits = static_cast<uint8_t>(bits & ~mask);
            const auto k =
                static_cast<uint32_t>((b - kSbaDmbBitsOffset) * 8 + static_cast<std::size_t>(bit));
            cell.fetch_and(static_cast<uint8_t>(~mask), std::memory_order_acq_rel);
            const uint16_t dmbe = take_be16(sba + kSbaDmbeMaskOffset + 2 * std::size_t{k});
            report.dmbs.push_back({k, dmbe});
        }
    }
}

void IsmDevice::drain_event_queue(InterruptReport& report)
{
    using namespace regs;
    std::byte* sba = sba_->data();
    byte_at(sba, 0).fetch_and(static_cast<uint8_t>(~std::to_integer<uint8_t>(kSbaEventBit)),
                              std::memory_order_acq_rel);

    // The queue is checked whether or not the event bit was set: reading the producer
    // index costs one load, and a missed bit must not strand events.
    std::byte* ieq = ieq_->data();
    const uint64_t idx = load_be64_atomic(ieq);
    if (idx == 0 || idx > kIeqEntries)
        return;  // nothing queued yet, or an index the device never writes
    // ieq_last_ is the slot of the last event reported, -1 before the first; the device's
    // idx is the slot of its newest entry plus one.
    while (ieq_last_ + 1 != static_cast<int64_t>(idx)) {
        ieq_last_ = (ieq_last_ + 1) % static_cast<int64_t>(kIeqEntries);
        const auto next = static_cast<std::size_t>(ieq_last_);
        std::byte entry[kIeqEntrySize];
        std::memcpy(entry, ieq + kIeqHeaderSize + next * kIeqEntrySize, sizeof(entry));
        Event ev;
        ev.type = load_be32(entry, 0);
        ev.code = load_be32(entry, 4);
        ev.tok = load_be64(entry, 8);
        ev.time = load_be64(entry, 16);
        ev.info = load_be64(entry, 24);
        report.events.push_back(ev);
    }
}

}  // namespace ism::device
