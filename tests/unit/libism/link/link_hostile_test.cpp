// SPDX-License-Identifier: MIT
// Suite LinkInMemoryHostile.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// The link state machine against a hostile peer in memory: b behaves, then writes
// something no honest peer writes into a's DMB (docs/protocol.md section 7).
#include "ism/link/link.hpp"

#include <array>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include <gtest/gtest.h>

#include "ism/byte_order.hpp"
#include "link_pair_fixture.hpp"

namespace {

using namespace ism;
using namespace ism::link;
using namespace std::chrono_literals;
using namespace ism::link::test;

// --- A hostile peer: b behaves, then writes something no honest peer writes into a's
// DMB. a must reset with the reason, tell its owner, and come back.

class LinkInMemoryHostile : public LinkInMemory {
protected:
    void SetUp() override
    {
        make();
        tx_ = &a_->link.open_channel(2, ChannelMode::message);
        rx_ = &a_->link.open_channel(3, ChannelMode::message);
        (void)b_->link.open_channel(2, ChannelMode::message);
        (void)b_->link.open_channel(3, ChannelMode::message);
        start_both();
    }

    std::span<std::byte> a_dmb() { return b_->port.peer->dmb(a_->link.own_token()); }

    void put64(std::size_t off, uint64_t v)
    {
        std::array<std::byte, 8> b{};
        store_be64(b, 0, v);
        std::memcpy(a_dmb().data() + off, b.data(), 8);
    }

    void expect_reset(ResetReason reason, uint32_t channel)
    {
        const uint64_t old = a_->link.own_token();
        a_->link.poll(now_);
        // What the hot path does not read (the control block once up, cursors of channels
        // neither side has) the timer checks: at the latest one keepalive interval later.
        if (a_->last(LinkEvent::Kind::reset_sent) == nullptr)
            a_->link.tick(now_ + LinkOptions{}.keepalive_interval);
        const LinkEvent* e = a_->last(LinkEvent::Kind::reset_sent);
        ASSERT_NE(e, nullptr) << "no reset";
        EXPECT_EQ(e->reason, reason);
        EXPECT_EQ(e->channel, channel);
        EXPECT_FALSE(a_->link.up());
        // The RESET event carries the reason in its low 16 bits.
        bool sent = false;
        for (auto [code, info] : a_->port.sent_events)
            sent |= code == kEventReset && (info & 0xFFFF) == static_cast<uint16_t>(reason);
        EXPECT_TRUE(sent);
        pump();
        EXPECT_TRUE(a_->link.up()) << "the link comes back";
        EXPECT_NE(a_->link.own_token(), old);
    }

    uint32_t ring() const { return ring_size_for(256 * 1024, 16); }

    Channel* tx_ = nullptr;
    Channel* rx_ = nullptr;
};

TEST_F(LinkInMemoryHostile, ProducerCursorBeyondTheRing)
{
    put64(kProducerCursorsOffset + 8 * 3, ring() + 8);
    expect_reset(ResetReason::producer, 3);
}

TEST_F(LinkInMemoryHostile, ProducerCursorGoingBackwards)
{
    a_dmb()[kRingAreaOffset + 3 * ring() + 4] = std::byte{kRecordFirst | kRecordLast};
    put64(kProducerCursorsOffset + 8 * 3, 8);  // one empty message
    a_->link.poll(now_);
    ASSERT_TRUE(a_->link.up());
    put64(kProducerCursorsOffset + 8 * 3, 0);
    expect_reset(ResetReason::producer, 3);
}

TEST_F(LinkInMemoryHostile, ConsumerCursorBeyondWhatWasSent)
{
    put64(kConsumerCursorsOffset + 8 * 2, 8);
    expect_reset(ResetReason::consumer, 2);
}

TEST_F(LinkInMemoryHostile, MalformedRecord)
{
    std::array<std::byte, 8> h{};
    h[0] = std::byte{0xFF};  // length far beyond what was published
    h[4] = std::byte{kRecordFirst | kRecordLast};
    std::memcpy(a_dmb().data() + kRingAreaOffset + 3 * ring(), h.data(), h.size());
    put64(kProducerCursorsOffset + 8 * 3, 64);
    std::error_code got;
    rx_->async_receive([&](std::error_code ec, const std::vector<std::byte>&) { got = ec; });
    expect_reset(ResetReason::record, 3);
    EXPECT_EQ(got, errc::link_reset) << "the waiter learns why";
}

TEST_F(LinkInMemoryHostile, DataOnAChannelThePeerNeverAnnounced)
{
    put64(kProducerCursorsOffset + 8 * 20, 8);
    expect_reset(ResetReason::channel, 20);
}

TEST_F(LinkInMemoryHostile, ReservedBytesOfTheDmbSet)
{
    a_dmb()[kReservedAreaOffset + 100] = std::byte{1};
    expect_reset(ResetReason::control, 0);
}

TEST_F(LinkInMemoryHostile, StreamBitForAChannelNotOpen)
{
    // b has channel 2 open (message mode); a stream bit for channel 5 alone is nonsense.
    put64(ChannelSet::kOffset, ChannelSet{0b100, 0b10'0000}.pack());
    expect_reset(ResetReason::control, 0);
}

TEST_F(LinkInMemoryHostile, ChannelOpenBeyondTheWritersCount)
{
    put64(ChannelSet::kOffset, ChannelSet{0b100 | (1U << 20), 0}.pack());
    expect_reset(ResetReason::control, 0);
}

TEST_F(LinkInMemoryHostile, AChannelClearedInTheSetIsAClosedEndNotAViolation)
{
    // Version 3: a cleared open bit is a close (docs/protocol.md section 4).
    std::vector<bool> told;
    rx_->set_peer_handler([&](bool open) { told.push_back(open); });
    put64(ChannelSet::kOffset, ChannelSet{0b100, 0}.pack());
    a_->link.poll(now_);
    a_->link.tick(now_ + LinkOptions{}.keepalive_interval);
    pump();
    EXPECT_TRUE(a_->link.up());
    EXPECT_EQ(a_->last(LinkEvent::Kind::reset_sent), nullptr);
    EXPECT_EQ(told, (std::vector<bool>{false}));
    EXPECT_FALSE(rx_->peer_open());
}

// --- End-of-stream marks (docs/protocol.md section 5, "Closing a channel").

TEST_F(LinkInMemoryHostile, FinWordBeyondTheCreditReturned)
{
    put64(kFinOffset + 8 * 3, ring() + 16);
    expect_reset(ResetReason::producer, 3);
}

TEST_F(LinkInMemoryHostile, FinWordMarkingBytesAlreadyRead)
{
    a_dmb()[kRingAreaOffset + 3 * ring() + 4] = std::byte{kRecordFirst | kRecordLast};
    put64(kProducerCursorsOffset + 8 * 3, 8);  // one empty message
    std::optional<std::error_code> got;
    rx_->async_receive([&](std::error_code ec, const std::vector<std::byte>&) { got = ec; });
    a_->link.poll(now_);
    ASSERT_TRUE(got.has_value());
    ASSERT_FALSE(*got);
    put64(kFinOffset + 8 * 3, 8);  // a mark over the message's record
    expect_reset(ResetReason::producer, 3);
}

TEST_F(LinkInMemoryHostile, FinWordChangedBeforeItsMarkWasPassed)
{
    put64(kFinOffset + 8 * 3, 16);
    a_->link.poll(now_);
    ASSERT_TRUE(a_->link.up());
    put64(kFinOffset + 8 * 3, 24);
    expect_reset(ResetReason::producer, 3);
}

TEST_F(LinkInMemoryHostile, FinWordOfAMessageChannelNotOnARecordBoundary)
{
    put64(kFinOffset + 8 * 3, 12);
    expect_reset(ResetReason::producer, 3);
}

TEST_F(LinkInMemoryHostile, FinWordBelowTheMarksSize)
{
    put64(kFinOffset + 8 * 3, kFinStream | 4);
    expect_reset(ResetReason::producer, 3);
}

TEST_F(LinkInMemoryHostile, FinWordOnAChannelBeyondTheCounts)
{
    put64(kFinOffset + 8 * 20, 8);
    expect_reset(ResetReason::channel, 20);
}

TEST_F(LinkInMemoryHostile, MarkInsideAMessage)
{
    // A first piece of 8 bytes (no LAST), then a mark where the next piece should be.
    std::array<std::byte, 8> h{};
    h[3] = std::byte{8};
    h[4] = std::byte{kRecordFirst};
    std::memcpy(a_dmb().data() + kRingAreaOffset + 3 * ring(), h.data(), h.size());
    put64(kFinOffset + 8 * 3, 24);
    put64(kProducerCursorsOffset + 8 * 3, 24);
    std::error_code got;
    rx_->async_receive([&](std::error_code ec, const std::vector<std::byte>&) { got = ec; });
    expect_reset(ResetReason::record, 3);
    EXPECT_EQ(got, errc::link_reset);
}

TEST_F(LinkInMemoryHostile, TheResetPeersWaitersGetLinkReset)
{
    // a resets (b wrote a bad cursor); b's waiters learn of a reset, not of a lost peer.
    Channel& b2 = b_->link.open_channel(2, ChannelMode::message);
    std::optional<std::error_code> received;
    b2.async_receive([&](std::error_code ec, const std::vector<std::byte>&) { received = ec; });
    pump();
    put64(kProducerCursorsOffset + 8 * 3, ring() + 8);
    expect_reset(ResetReason::producer, 3);
    ASSERT_TRUE(received.has_value());
    EXPECT_EQ(*received, errc::link_reset);
    ASSERT_NE(b_->last(LinkEvent::Kind::down), nullptr);
    EXPECT_EQ(b_->last(LinkEvent::Kind::down)->error, errc::link_reset);
}

TEST_F(LinkInMemoryHostile, ControlBlockRewrittenWhileUp)
{
    a_dmb()[0] = std::byte{0};
    expect_reset(ResetReason::control, 0);
}

TEST_F(LinkInMemoryHostile, OfferWithNoCommonVersionIsAnsweredWithReset)
{
    Offer bad{0x77'0000'0000ULL, 9, kProtocolVersion + 1, kProtocolVersion + 2, 256 * 1024};
    a_->link.on_event(kEventOffer, bad.pack(), now_);
    const LinkEvent* e = a_->last(LinkEvent::Kind::offer_refused);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->reason, ResetReason::version);
    EXPECT_TRUE(a_->link.up()) << "a refused stranger does not take the link down";
}

TEST_F(LinkInMemoryHostile, AVersionTwoPeerIsAnsweredWithResetReasonVersion)
{
    // Version 3 gave closing channels the fin words: a version-2 peer would take them for
    // reserved bytes, so libism does not speak version 2 (docs/protocol.md section 8).
    ASSERT_EQ(kProtocolVersion, 3);
    Offer old{0x77'0000'0000ULL, 9, 1, 2, 256 * 1024};
    a_->link.on_event(kEventOffer, old.pack(), now_);
    const LinkEvent* e = a_->last(LinkEvent::Kind::offer_refused);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->reason, ResetReason::version);
    bool sent = false;
    for (auto [code, info] : a_->port.sent_events)
        sent |=
            code == kEventReset && (info & 0xFFFF) == static_cast<uint16_t>(ResetReason::version);
    EXPECT_TRUE(sent);
}

TEST_F(LinkInMemoryHostile, GarbageOfferIsRefused)
{
    a_->link.on_event(kEventOffer, 0xFFFF'FFFF'FFFF'FFFFULL, now_);
    EXPECT_TRUE(a_->saw(LinkEvent::Kind::offer_refused));
    EXPECT_TRUE(a_->link.up());
}

TEST_F(LinkInMemoryHostile, MalformedControlBlockDuringHandshakeResetsAfterItStays)
{
    // A fresh a whose peer writes a control block with another version.
    a_->link.on_peer_disabled(now_);
    b_->port.dead = true;  // b stays silent; we play b by hand
    ASSERT_FALSE(a_->link.up());
    auto dmb = b_->port.peer->dmb(a_->link.own_token());
    ControlBlock cb;
    cb.nr_channels = 16;
    cb.writer_epoch = 5;
    cb.peer_epoch = a_->link.epoch();
    cb.ring_size = ring();
    cb.writer_token = 0x5'0000'0000ULL;
    cb.encode(dmb.first<kControlBlockSize>());
    dmb[4] = std::byte{kProtocolVersion + 1};
    a_->link.poll(now_);
    EXPECT_FALSE(a_->saw(LinkEvent::Kind::reset_sent)) << "one bad read may be a torn write";
    advance(100ms);
    advance(100ms);
    advance(100ms);
    const LinkEvent* e = a_->last(LinkEvent::Kind::reset_sent);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->reason, ResetReason::version);
}

}  // namespace
