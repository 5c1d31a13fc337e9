// SPDX-License-Identifier: MIT
// Suites LinkWire and LinkWireHostile.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
#include "ism/link/wire.hpp"

#include <array>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace ism::link;
using ism::errc;

using Block = std::array<std::byte, kControlBlockSize>;

std::array<std::byte, 8> bytes8(std::initializer_list<int> l)
{
    std::array<std::byte, 8> a{};
    std::size_t i = 0;
    for (int b : l)
        a.at(i++) = static_cast<std::byte>(b);
    return a;
}

ControlBlock valid_block()
{
    ControlBlock cb;
    cb.nr_channels = 16;
    cb.writer_epoch = 0x1234;
    cb.peer_epoch = 0x5678;
    cb.ring_size = ring_size_for(1 << 20, 16);
    cb.writer_token = 0x0000'0042'0000'0000ULL;
    cb.keepalive = 7;
    cb.keepalive_ms = 0x0003'0D40;
    cb.max_message = 0x0010'0000;
    cb.channels = ChannelSet{0x0000'8005, 0x0000'0004};
    return cb;
}

TEST(LinkWire, OfferPacksTokenEpochAndVersions)
{
    const Offer o{0x0000'ABCD'0000'0000ULL, 0x1234, 1, 3, 256 * 1024};
    EXPECT_EQ(o.pack(), 0x0012'ABCD'1234'0103ULL);
    auto back = Offer::unpack(o.pack());
    ASSERT_TRUE(back);
    EXPECT_EQ(back->token, o.token);
    EXPECT_EQ(back->epoch, 0x1234);
    EXPECT_EQ(back->min_version, 1);
    EXPECT_EQ(back->max_version, 3);
    EXPECT_EQ(back->dmb_size, 256U * 1024);
}

TEST(LinkWire, OfferRefusesWhatNoPeerSends)
{
    EXPECT_TRUE(Offer::unpack(0x0014'0001'1234'0101ULL));
    EXPECT_FALSE(Offer::unpack(0x0014'0000'1234'0101ULL));  // no token
    EXPECT_FALSE(Offer::unpack(0x0114'0001'1234'0101ULL));  // reserved bits set
    EXPECT_FALSE(Offer::unpack(0x0000'0001'1234'0101ULL));  // no DMB size
    EXPECT_FALSE(Offer::unpack(0x000D'0001'1234'0101ULL));  // DMB below 16 KiB
    EXPECT_FALSE(Offer::unpack(0x0015'0001'1234'0101ULL));  // DMB above 1 MiB
    EXPECT_FALSE(Offer::unpack(0x0014'0001'0000'0101ULL));  // epoch 0
    EXPECT_FALSE(Offer::unpack(0x0014'0001'1234'0201ULL));  // min above max
    EXPECT_FALSE(Offer::unpack(0x0014'0001'1234'0000ULL));  // no version
}

TEST(LinkWire, NegotiatesTheHighestCommonVersion)
{
    const Offer ours{0x1'0000'0000ULL, 1, 1, 3};
    EXPECT_EQ(*negotiate(ours, {0x2'0000'0000ULL, 2, 2, 5}), 3);
    EXPECT_EQ(*negotiate(ours, {0x2'0000'0000ULL, 2, 1, 1}), 1);
    EXPECT_EQ(negotiate(ours, {0x2'0000'0000ULL, 2, 4, 5}).error(), errc::proto_version);
}

TEST(LinkWire, ControlBlockBytesAreTheDocumentedLayout)
{
    Block b{};
    valid_block().encode(b);
    // clang-format off
    const std::vector<int> expect{
        0x49, 0x53, 0x4D, 0x4C, 3, 16, 0x12, 0x34,  // magic, version, channels, writer_epoch
        0x56, 0x78, 0, 0, 0x00, 0x00, 0xFF, 0xC0,    // peer_epoch, reserved, ring_size
        0, 0, 0, 0x42, 0, 0, 0, 0,                   // writer_token
        0, 0, 0, 0, 0, 0, 0, 7,                      // keepalive
        0x00, 0x03, 0x0D, 0x40, 0x00, 0x10, 0, 0,    // keepalive_ms, max_message
        0, 0, 0x80, 0x05, 0, 0, 0, 0x04};            // channels: open, stream
    // clang-format on
    for (std::size_t i = 0; i < expect.size(); ++i)
        EXPECT_EQ(std::to_integer<int>(b[i]), expect[i]) << "byte " << i;
    for (std::size_t i = 48; i < b.size(); ++i)
        EXPECT_EQ(b[i], std::byte{0});
    auto back = ControlBlock::parse(b, 1 << 20);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->ring_size, 65472U);  // (1 MiB - 1024) / 16, a multiple of 64
    EXPECT_EQ(back->keepalive, 7U);
    EXPECT_EQ(back->keepalive_ms, 0x0003'0D40U);
    EXPECT_EQ(back->max_message, 0x0010'0000U);
    EXPECT_EQ(back->channels, (ChannelSet{0x0000'8005, 0x0000'0004}));
}

TEST(LinkWireHostile, ControlBlockWithAMaxMessageOutOfRangeIsRefused)
{
    Block b{};
    ControlBlock cb = valid_block();
    cb.max_message = 0;
    cb.encode(b);
    EXPECT_EQ(ControlBlock::parse(b, 1 << 20).error(), errc::bad_control_block);
    cb.max_message = static_cast<uint32_t>(kMaxMessageSize) + 1;
    cb.encode(b);
    EXPECT_EQ(ControlBlock::parse(b, 1 << 20).error(), errc::bad_control_block);
}

TEST(LinkWireHostile, ChannelSetsNoWriterAnnouncesAreRefused)
{
    EXPECT_TRUE(ChannelSet::unpack(ChannelSet{0b11, 0b10}.pack(), 2));
    EXPECT_FALSE(ChannelSet::unpack(ChannelSet{0b01, 0b10}.pack(), 2));  // stream, not open
    EXPECT_FALSE(ChannelSet::unpack(ChannelSet{0b111, 0}.pack(), 2));    // beyond the count
    EXPECT_TRUE(ChannelSet::unpack(ChannelSet{~0U, ~0U}.pack(), 32));
    Block b{};
    ControlBlock cb = valid_block();
    cb.channels = ChannelSet{1U << 16, 0};  // a 17th channel of 16
    cb.encode(b);
    EXPECT_EQ(ControlBlock::parse(b, 1 << 20).error(), errc::bad_control_block);
}

TEST(LinkWireHostile, ControlBlockWithWrongMagicIsRefused)
{
    Block b{};
    valid_block().encode(b);
    b[0] = std::byte{0};
    EXPECT_EQ(ControlBlock::parse(b, 1 << 20).error(), errc::bad_control_block);
}

TEST(LinkWireHostile, ControlBlockWithAnotherVersionIsRefused)
{
    Block b{};
    valid_block().encode(b);
    b[4] = std::byte{kProtocolVersion + 1};
    EXPECT_EQ(ControlBlock::parse(b, 1 << 20).error(), errc::proto_version);
}

TEST(LinkWireHostile, RingsLargerThanTheDmbAreRefused)
{
    Block b{};
    ControlBlock cb = valid_block();
    cb.ring_size += 64;  // 16 rings no longer fit in 1 MiB
    cb.encode(b);
    EXPECT_EQ(ControlBlock::parse(b, 1 << 20).error(), errc::bad_control_block);
    cb.ring_size = 0xFFFF'FFC0;  // overflow bait
    cb.encode(b);
    EXPECT_EQ(ControlBlock::parse(b, 1 << 20).error(), errc::bad_control_block);
}

TEST(LinkWireHostile, ControlBlockFieldsOutOfRangeAreRefused)
{
    auto refused = [](auto mutate) {
        ControlBlock cb = valid_block();
        mutate(cb);
        Block b{};
        cb.encode(b);
        return !ControlBlock::parse(b, 1 << 20).has_value();
    };
    EXPECT_TRUE(refused([](ControlBlock& c) { c.nr_channels = 0; }));
    EXPECT_TRUE(refused([](ControlBlock& c) { c.nr_channels = 33; }));
    EXPECT_TRUE(refused([](ControlBlock& c) { c.ring_size = 4000; }));
    EXPECT_TRUE(refused([](ControlBlock& c) { c.ring_size = 4096 + 8; }));
    EXPECT_TRUE(refused([](ControlBlock& c) { c.writer_epoch = 0; }));
    EXPECT_TRUE(refused([](ControlBlock& c) { c.writer_token = 0x0000'0001'0000'0001ULL; }));
    EXPECT_TRUE(refused([](ControlBlock& c) { c.writer_token = 0; }));
    EXPECT_TRUE(refused([](ControlBlock& c) { c.keepalive_ms = 0; }));
    EXPECT_TRUE(refused([](ControlBlock& c) { c.keepalive_ms = kMaxKeepaliveMs + 1; }));
}

TEST(LinkWireHostile, ReservedControlBytesMustBeZero)
{
    for (std::size_t at : {10U, 11U, 36U, 63U}) {
        Block b{};
        valid_block().encode(b);
        b.at(at) = std::byte{1};
        EXPECT_EQ(ControlBlock::parse(b, 1 << 20).error(), errc::bad_control_block) << at;
    }
}

TEST(LinkWire, RecordHeaderRoundTripsAndPadsToEight)
{
    std::array<std::byte, 8> b{};
    RecordHeader{13, kRecordFirst | kRecordLast}.encode(b);
    EXPECT_EQ(b, bytes8({0, 0, 0, 13, 3, 0, 0, 0}));
    auto h = RecordHeader::parse(b, 4096);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->footprint(), 8U + 16U);
    EXPECT_FALSE(h->is_padding());
    auto pad = RecordHeader::parse(bytes8({0, 0, 0, 0, 0, 0, 0, 0}), 4096);
    ASSERT_TRUE(pad);
    EXPECT_TRUE(pad->is_padding());
}

TEST(LinkWireHostile, RecordLongerThanTheRingIsRefused)
{
    EXPECT_EQ(RecordHeader::parse(bytes8({0, 0, 0x10, 0, 3, 0, 0, 0}), 4096).error(),
              errc::bad_record);  // 4096 + header does not fit a 4 KiB ring
    EXPECT_EQ(RecordHeader::parse(bytes8({0xFF, 0xFF, 0xFF, 0xFF, 3, 0, 0, 0}), 4096).error(),
              errc::bad_record);
    EXPECT_TRUE(RecordHeader::parse(bytes8({0, 0, 0x0F, 0xF8, 3, 0, 0, 0}), 4096));
}

TEST(LinkWireHostile, RecordWithUnknownFlagsOrReservedBitsIsRefused)
{
    EXPECT_FALSE(RecordHeader::parse(bytes8({0, 0, 0, 8, 4, 0, 0, 0}), 4096));
    EXPECT_FALSE(RecordHeader::parse(bytes8({0, 0, 0, 8, 1, 0, 1, 0}), 4096));
    EXPECT_FALSE(RecordHeader::parse(bytes8({0, 0, 0, 0, 1, 0, 0, 0}), 4096));  // empty piece
}

}  // namespace
