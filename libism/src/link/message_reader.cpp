// SPDX-License-Identifier: MIT
#include "ism/link/message_reader.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace ism::link {

Result<void> MessageReader::poll(std::span<const std::byte> ring, RxRing& rx,
                                 const Deliver& deliver)
{
    while (rx.available() >= kRecordHeaderSize) {
        const std::size_t at = rx.read_offset();
        if (rx.bytes_to_ring_end() < kRecordHeaderSize || at + kRecordHeaderSize > ring.size())
            return fail(errc::bad_record);
        std::array<std::byte, kRecordHeaderSize> raw;
        std::memcpy(raw.data(), ring.data() + at, raw.size());
        auto h = RecordHeader::parse(raw, static_cast<uint32_t>(ring.size()));
        if (!h)
            return tl::unexpected(h.error());
        if (h->is_padding()) {
            // Padding fills the rest of the ring: the next record starts at offset 0.
            if (rx.available() < rx.bytes_to_ring_end())
                return fail(errc::bad_record);
            rx.consume(rx.bytes_to_ring_end());
            continue;
        }
        // Records never wrap and are published whole.
        if (h->footprint() > rx.bytes_to_ring_end() || h->footprint() > rx.available())
            return fail(errc::bad_record);
        if ((h->flags & kRecordFirst) != 0 && !in_message_)
            begin_ = rx.cursor();
        auto r = take_piece(*h, ring.subspan(at + kRecordHeaderSize, h->length), deliver);
        if (!r)
            return r;
        rx.consume(h->footprint());
    }
    // A producer cursor never stops inside a record header.
    if (rx.available() != 0)
        return fail(errc::bad_record);
    return {};
}

Result<void> MessageReader::take_piece(const RecordHeader& h, std::span<const std::byte> payload,
                                       const Deliver& deliver)
{
    const bool first = (h.flags & kRecordFirst) != 0;
    const bool last = (h.flags & kRecordLast) != 0;
    if (first == in_message_)
        return fail(errc::bad_record);  // FIRST inside a message, or a piece without FIRST
    if (payload.size() > max_message_ - partial_.size())
        return fail(errc::bad_record);
    if (first && !last) {
        // The total is not known yet: room for eight pieces (a 64 KiB message in
        // quarter-ring pieces of the default geometry) spares the copies of growing.
        partial_.reserve(std::min(max_message_, 8 * std::max(payload.size(), std::size_t{1024})));
    }
    partial_.insert(partial_.end(), payload.begin(), payload.end());
    in_message_ = !last;
    if (last) {
        std::vector<std::byte> message;
        message.swap(partial_);
        deliver(std::move(message));
    }
    return {};
}

}  // namespace ism::link
