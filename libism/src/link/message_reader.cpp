// SPDX-License-Identifier: MIT
#include "ism/link/message_reader.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace ism::link {

template <class Piece>
Result<bool> MessageReader::walk(std::span<const std::byte> ring, RxRing& rx, Piece&& piece)
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
        if (auto r = check_piece(*h); !r)
            return tl::unexpected(r.error());
        auto stop = piece(*h, ring.subspan(at + kRecordHeaderSize, h->length));
        if (!stop)
            return stop;
        rx.consume(h->footprint());
        if (*stop)
            return true;
    }
    // A producer cursor never stops inside a record header.
    if (rx.available() != 0)
        return fail(errc::bad_record);
    return false;
}

Result<void> MessageReader::check_piece(const RecordHeader& h)
{
    const bool first = (h.flags & kRecordFirst) != 0;
    if (first == in_message_)
        return fail(errc::bad_record);  // FIRST inside a message, or a piece without FIRST
    if (first)
        length_ = 0;
    if (h.length > max_message_ - length_)
        return fail(errc::bad_record);
    return {};
}

Result<void> MessageReader::poll(std::span<const std::byte> ring, RxRing& rx,
                                 const Deliver& deliver)
{
    auto r = walk(ring, rx, [&](const RecordHeader& h, std::span<const std::byte> payload) {
        return take_piece(h, payload, deliver).map([] { return false; });
    });
    if (!r)
        return tl::unexpected(r.error());
    return {};
}

Result<bool> MessageReader::poll_into(std::span<const std::byte> ring, RxRing& rx,
                                      std::span<std::byte> into, std::size_t& length)
{
    return walk(ring, rx, [&](const RecordHeader& h, std::span<const std::byte> payload) {
        const bool last = (h.flags & kRecordLast) != 0;
        const std::size_t at = length_;
        if (at < into.size())
            std::memcpy(into.data() + at, payload.data(),
                        std::min(payload.size(), into.size() - at));
        length_ += payload.size();
        length = length_;
        in_message_ = !last;
        return Result<bool>(last);
    });
}

Result<void> MessageReader::take_piece(const RecordHeader& h, std::span<const std::byte> payload,
                                       const Deliver& deliver)
{
    const bool first = (h.flags & kRecordFirst) != 0;
    const bool last = (h.flags & kRecordLast) != 0;
    if (first && !last) {
        // The total is not known yet: room for eight pieces (a 64 KiB message in
        // quarter-ring pieces of the default geometry) spares the copies of growing.
        partial_.reserve(std::min(max_message_, 8 * std::max(payload.size(), std::size_t{1024})));
    }
    partial_.insert(partial_.end(), payload.begin(), payload.end());
    length_ += payload.size();
    in_message_ = !last;
    if (last) {
        std::vector<std::byte> message;
        message.swap(partial_);
        deliver(std::move(message));
    }
    return {};
}

}  // namespace ism::link
