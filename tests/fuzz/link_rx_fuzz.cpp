// SPDX-License-Identifier: MIT
// libFuzzer target: a DMB image written by a hostile peer, read by the link's receive
// path (control block, producer cursors, message records). Any crash or sanitizer report
// is a bug: whatever the peer wrote, the reader must only refuse it.
//
// Input layout: the input is the DMB (at most 1 MiB). Its control block and cursors are
// where docs/protocol.md puts them; a second producer value per channel is taken from the
// consumer-cursor area so that the reader is driven twice, as it is across interrupts.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ism/link/message_reader.hpp"
#include "ism/link/ring.hpp"
#include "ism/link/wire.hpp"

namespace {

using namespace ism::link;

uint64_t be64(std::span<const std::byte> b, std::size_t off)
{
    uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i)
        v = (v << 8) | std::to_integer<uint64_t>(b[off + i]);
    return v;
}

void drive_ring(std::span<const std::byte> ring, uint64_t first, uint64_t second)
{
    RxRing rx(static_cast<uint32_t>(ring.size()));
    MessageReader reader(64 * 1024);
    std::size_t delivered = 0;
    auto deliver = [&delivered](std::vector<std::byte>&& m) { delivered += m.size(); };
    for (uint64_t prod : {first, second}) {
        if (!rx.update_producer(prod))
            return;
        if (!reader.poll(ring, rx, deliver))
            return;
        rx.release_all();
        if (rx.should_publish())
            (void)rx.publish();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size)
{
    if (size < kRingAreaOffset || size > (std::size_t{1} << 20))
        return 0;
    const std::span<const std::byte> dmb(reinterpret_cast<const std::byte*>(data), size);
    (void)Offer::unpack(be64(dmb, 24));

    auto cb = ControlBlock::parse(dmb.first<kControlBlockSize>(), size);
    if (!cb) {
        // Still exercise the record parser on one default-sized ring where it fits.
        if (size >= kRingAreaOffset + kMinRingSize)
            drive_ring(dmb.subspan(kRingAreaOffset, kMinRingSize), be64(dmb, 64), be64(dmb, 320));
        return 0;
    }
    for (std::size_t c = 0; c < cb->nr_channels; ++c) {
        const auto ring = dmb.subspan(kRingAreaOffset + c * cb->ring_size, cb->ring_size);
        drive_ring(ring, be64(dmb, kProducerCursorsOffset + 8 * c),
                   be64(dmb, kConsumerCursorsOffset + 8 * c));
    }
    return 0;
}
