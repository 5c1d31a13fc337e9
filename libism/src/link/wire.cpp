// SPDX-License-Identifier: MIT
#include "ism/link/wire.hpp"

#include <algorithm>
#include <bit>

#include "ism/byte_order.hpp"

namespace ism::link {
namespace {

constexpr uint64_t kTokenFieldMask = 0x0000'FFFF'0000'0000ULL;

bool token_form(uint64_t token)
{
    return token != 0 && (token & ~kTokenFieldMask) == 0;
}

bool all_zero(std::span<const std::byte> bytes)
{
    return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

uint64_t Offer::pack() const noexcept
{
    const auto shift = static_cast<uint64_t>(std::countr_zero(dmb_size));
    return (shift << 48) | (token & kTokenFieldMask) | (uint64_t{epoch} << 16) |
           (uint64_t{min_version} << 8) | max_version;
}

Result<Offer> Offer::unpack(uint64_t info)
{
    Offer o;
    o.token = info & kTokenFieldMask;
    o.epoch = static_cast<uint16_t>(info >> 16);
    o.min_version = static_cast<uint8_t>(info >> 8);
    o.max_version = static_cast<uint8_t>(info);
    const auto shift = static_cast<unsigned>((info >> 48) & 0xFF);
    if (shift < kMinDmbShift || shift > kMaxDmbShift)
        return fail(errc::bad_control_block);
    o.dmb_size = std::size_t{1} << shift;
    if ((info >> 56) != 0 || !token_form(o.token) || o.epoch == 0 || o.min_version == 0 ||
        o.min_version > o.max_version)
        return fail(errc::bad_control_block);
    return o;
}

Result<uint8_t> negotiate(const Offer& ours, const Offer& theirs)
{
    const uint8_t hi = std::min(ours.max_version, theirs.max_version);
    const uint8_t lo = std::max(ours.min_version, theirs.min_version);
    if (hi < lo)
        return fail(errc::proto_version);
    return hi;
}

uint32_t ring_size_for(std::size_t dmb_size, uint32_t nr_channels) noexcept
{
    if (nr_channels == 0 || dmb_size <= kRingAreaOffset)
        return 0;
    const std::size_t per = (dmb_size - kRingAreaOffset) / nr_channels;
    return static_cast<uint32_t>(per / kRingAlign * kRingAlign);
}

void ControlBlock::encode(std::span<std::byte, kControlBlockSize> out) const noexcept
{
    std::fill(out.begin(), out.end(), std::byte{0});
    store_be32(out, 0, kControlMagic);
    out[4] = std::byte{version};
    out[5] = std::byte{nr_channels};
    store_be16(out, 6, writer_epoch);
    store_be16(out, 8, peer_epoch);
    store_be32(out, 12, ring_size);
    store_be64(out, 16, writer_token);
    store_be64(out, kKeepaliveOffset, keepalive);
    store_be32(out, 32, keepalive_ms);
    store_be32(out, 36, max_message);
    store_be64(out, ChannelSet::kOffset, channels.pack());
}

Result<ChannelSet> ChannelSet::unpack(uint64_t word, uint32_t nr_channels)
{
    ChannelSet set;
    set.open = static_cast<uint32_t>(word >> 32);
    set.stream = static_cast<uint32_t>(word);
    const uint32_t valid = nr_channels >= 32 ? ~uint32_t{0} : (uint32_t{1} << nr_channels) - 1;
    if ((set.stream & ~set.open) != 0 || (set.open & ~valid) != 0)
        return fail(errc::bad_control_block);
    return set;
}

Result<ControlBlock> ControlBlock::parse(std::span<const std::byte, kControlBlockSize> in,
                                         std::size_t dmb_size)
{
    if (load_be32(in, 0) != kControlMagic)
        return fail(errc::bad_control_block);
    ControlBlock cb;
    cb.version = std::to_integer<uint8_t>(in[4]);
    if (cb.version != kProtocolVersion)
        return fail(errc::proto_version);
    cb.nr_channels = std::to_integer<uint8_t>(in[5]);
    cb.writer_epoch = load_be16(in, 6);
    cb.peer_epoch = load_be16(in, 8);
    cb.ring_size = load_be32(in, 12);
    cb.writer_token = load_be64(in, 16);
    cb.keepalive = load_be64(in, kKeepaliveOffset);
    cb.keepalive_ms = load_be32(in, 32);
    cb.max_message = load_be32(in, 36);
    const bool reserved_clear = all_zero(in.subspan(10, 2)) && all_zero(in.subspan(48, 16));
    const bool geometry_fits =
        uint64_t{cb.nr_channels} * cb.ring_size + kRingAreaOffset <= dmb_size;
    if (!reserved_clear || cb.nr_channels == 0 || cb.nr_channels > kMaxChannels ||
        cb.ring_size < kMinRingSize || cb.ring_size % kRingAlign != 0 || !geometry_fits ||
        cb.writer_epoch == 0 || !token_form(cb.writer_token) || cb.keepalive_ms == 0 ||
        cb.keepalive_ms > kMaxKeepaliveMs || cb.max_message == 0 ||
        cb.max_message > kMaxMessageSize)
        return fail(errc::bad_control_block);
    auto channels = ChannelSet::unpack(load_be64(in, ChannelSet::kOffset), cb.nr_channels);
    if (!channels)
        return tl::unexpected(channels.error());
    cb.channels = *channels;
    return cb;
}

std::size_t RecordHeader::footprint() const noexcept
{
    return kRecordHeaderSize + ((std::size_t{length} + 7) & ~std::size_t{7});
}

void RecordHeader::encode(std::span<std::byte, kRecordHeaderSize> out) const noexcept
{
    std::fill(out.begin(), out.end(), std::byte{0});
    store_be32(out, 0, length);
    out[4] = std::byte{flags};
}

Result<RecordHeader> RecordHeader::parse(std::span<const std::byte, kRecordHeaderSize> in,
                                         uint32_t ring_size)
{
    RecordHeader h;
    h.length = load_be32(in, 0);
    h.flags = std::to_integer<uint8_t>(in[4]);
    if (!all_zero(in.subspan(5, 3)) || (h.flags & ~(kRecordFirst | kRecordLast)) != 0)
        return fail(errc::bad_record);
    // An empty record is padding (no flags) or a whole empty message (FIRST|LAST); an
    // empty piece of a longer message would only let a peer spin us.
    if (h.length == 0 && h.flags != 0 && h.flags != (kRecordFirst | kRecordLast))
        return fail(errc::bad_record);
    if (h.footprint() > ring_size)
        return fail(errc::bad_record);
    return h;
}

}  // namespace ism::link
