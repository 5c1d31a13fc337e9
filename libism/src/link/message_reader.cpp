// SPDX-License-Identifier: MIT
#include "ism/link/message_reader.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "ism/byte_order.hpp"

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
        auto data = check_piece(*h, ring.subspan(at + kRecordHeaderSize, h->length));
        if (!data)
            return tl::unexpected(data.error());
        const Step step = piece(*h, *data);
        if (step == Step::wait)
            return false;  // the record stays unread
        rx.consume(h->footprint());
        if (step == Step::stop)
            return true;
    }
    // A producer cursor never stops inside a record header.
    if (rx.available() != 0)
        return fail(errc::bad_record);
    return false;
}

Result<std::span<const std::byte>> MessageReader::check_piece(const RecordHeader& h,
                                                              std::span<const std::byte> payload)
{
    const bool first = (h.flags & kRecordFirst) != 0;
    const bool last = (h.flags & kRecordLast) != 0;
    if (first == in_message_)
        return fail(errc::bad_record);  // FIRST inside a message, or a piece without FIRST
    if (first && last) {
        if (h.length > max_message_)
            return fail(errc::bad_record);
        total_ = h.length;
        length_ = 0;
        return payload;
    }
    if (first) {
        // The total, copied out once, and at least one byte of data after it.
        if (h.length <= kRecordTotalSize)
            return fail(errc::bad_record);
        std::array<std::byte, kRecordTotalSize> raw;
        std::memcpy(raw.data(), payload.data(), raw.size());
        const uint64_t total = load_be64(raw, 0);
        const std::size_t data = h.length - kRecordTotalSize;
        // A message of several pieces is longer than its first one.
        if (total <= data || total > max_message_)
            return fail(errc::bad_record);
        total_ = static_cast<std::size_t>(total);
        length_ = 0;
        return payload.subspan(kRecordTotalSize);
    }
    // Pieces are never empty (RecordHeader::parse): one that reaches the total must be the
    // LAST, and the LAST must reach it.
    const std::size_t left = total_ - length_;
    if (last ? h.length != left : h.length >= left)
        return fail(errc::bad_record);
    return payload;
}

Result<void> MessageReader::poll(std::span<const std::byte> ring, RxRing& rx,
                                 const Deliver& deliver)
{
    return poll(ring, rx, Admit{}, deliver);
}

Result<void> MessageReader::poll(std::span<const std::byte> ring, RxRing& rx, const Admit& admit,
                                 const Deliver& deliver)
{
    auto r = walk(ring, rx, [&](const RecordHeader& h, std::span<const std::byte> data) {
        const bool first = (h.flags & kRecordFirst) != 0;
        if (first && admit && !admit(total_, (h.flags & kRecordLast) != 0))
            return Step::wait;
        take_piece(h, data, deliver);
        return Step::next;
    });
    if (!r)
        return tl::unexpected(r.error());
    return {};
}

Result<bool> MessageReader::poll_into(std::span<const std::byte> ring, RxRing& rx,
                                      std::span<std::byte> into, std::size_t& length)
{
    return walk(ring, rx, [&](const RecordHeader& h, std::span<const std::byte> data) {
        const bool last = (h.flags & kRecordLast) != 0;
        const std::size_t at = length_;
        if (at < into.size())
            std::memcpy(into.data() + at, data.data(), std::min(data.size(), into.size() - at));
        length_ += data.size();
        length = length_;
        in_message_ = !last;
        return last ? Step::stop : Step::next;
    });
}

void MessageReader::take_piece(const RecordHeader& h, std::span<const std::byte> data,
                               const Deliver& deliver)
{
    const bool first = (h.flags & kRecordFirst) != 0;
    const bool last = (h.flags & kRecordLast) != 0;
    if (first)
        partial_.reserve(total_);  // the one allocation of the message
    partial_.insert(partial_.end(), data.begin(), data.end());
    length_ += data.size();
    in_message_ = !last;
    if (last) {
        std::vector<std::byte> message;
        message.swap(partial_);
        deliver(std::move(message));
    }
}

}  // namespace ism::link
