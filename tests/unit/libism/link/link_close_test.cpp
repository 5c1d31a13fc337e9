// SPDX-License-Identifier: MIT
// Closing channels, end of stream and half-close (docs/protocol.md section 5, "Closing a
// channel"), two links in memory.
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "link_pair_fixture.hpp"

namespace ism::link::test {
namespace {

// Reads a stream channel until end of stream; everything it got.
struct StreamSink {
    explicit StreamSink(Channel& c) : ch(c) {}
    void arm()
    {
        // The links outlive the test's sinks: a receive still pending when one goes is
        // completed by the link's destructor, and must not reach it.
        ch.async_read_some(
            buf, [this, alive = std::weak_ptr(alive_)](std::error_code ec, std::size_t n) {
                if (alive.expired())
                    return;
                if (ec) {
                    error = ec;
                    return;
                }
                got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
                arm();
            });
    }
    Channel& ch;
    std::array<std::byte, 1000> buf{};
    std::vector<std::byte> got;
    std::optional<std::error_code> error;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// Receives messages until an error; what it got, in order.
struct MessageSink {
    explicit MessageSink(Channel& c) : ch(c) {}
    void arm()
    {
        ch.async_receive(
            [this, alive = std::weak_ptr(alive_)](std::error_code ec, std::vector<std::byte> m) {
                if (alive.expired())
                    return;
                if (ec) {
                    error = ec;
                    return;
                }
                got.push_back(std::move(m));
                arm();
            });
    }
    Channel& ch;
    std::vector<std::vector<std::byte>> got;
    std::optional<std::error_code> error;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

TEST_F(LinkInMemory, AStreamClosedAfterDataDeliversEveryByteThenEndOfStream)
{
    make();
    Channel& tx = a_->link.open_channel(2, ChannelMode::stream);
    Channel& rx = b_->link.open_channel(2, ChannelMode::stream);
    start_both();
    // More than the ring holds: the close waits behind the data.
    tx_bytes_ = pattern(100'000, 1);
    tx.async_write(tx_bytes_, [](std::error_code) {});
    tx.close();
    StreamSink sink(rx);
    sink.arm();
    pump();
    ASSERT_TRUE(sink.error.has_value());
    EXPECT_EQ(*sink.error, errc::end_of_stream);
    EXPECT_EQ(sink.got, tx_bytes_);
    EXPECT_FALSE(rx.peer_open());
    EXPECT_EQ(a_->link.ups(), 1U);
}

TEST_F(LinkInMemory, MessagesSentBeforeACloseArriveBeforeEndOfStream)
{
    make();
    Channel& tx = a_->link.open_channel(1, ChannelMode::message);
    Channel& rx = b_->link.open_channel(1, ChannelMode::message);
    start_both();
    // All in b's ring (less than it holds), unread, when a closes; the mark after them.
    std::vector<std::vector<std::byte>> sent;
    for (unsigned i = 0; i < 5; ++i)
        sent.push_back(pattern(600 * i, i));
    int written = 0;
    for (const auto& m : sent)
        tx.async_write(m, [&](std::error_code ec) { written += ec ? 0 : 1; });
    pump();
    ASSERT_EQ(written, 5);
    tx.close();
    pump();
    MessageSink sink(rx);
    sink.arm();
    pump();
    ASSERT_TRUE(sink.error.has_value());
    EXPECT_EQ(*sink.error, errc::end_of_stream);
    EXPECT_EQ(sink.got, sent);
    // Into the caller's buffer too, after a reopen.
    (void)a_->link.open_channel(1, ChannelMode::message);
    tx.async_write(sent[2], [](std::error_code) {});
    tx.close();
    std::array<std::byte, 8000> buf{};
    std::vector<std::pair<std::error_code, std::size_t>> results;
    std::function<void()> arm = [&] {
        rx.async_receive(buf, [&](std::error_code ec, std::size_t n) {
            results.emplace_back(ec, n);
            if (!ec)
                arm();
        });
    };
    arm();
    pump();
    ASSERT_EQ(results.size(), 2U);
    EXPECT_FALSE(results[0].first);
    EXPECT_EQ(results[0].second, sent[2].size());
    EXPECT_EQ(results[1].first, errc::end_of_stream);
}

TEST_F(LinkInMemory, HalfCloseEndsOneDirectionAndTheOtherKeepsFlowing)
{
    make();
    Channel& a = a_->link.open_channel(3, ChannelMode::stream);
    Channel& b = b_->link.open_channel(3, ChannelMode::stream);
    start_both();
    StreamSink at_a(a);
    StreamSink at_b(b);
    at_a.arm();
    at_b.arm();
    const auto from_a = pattern(5000, 2);
    a.async_write(from_a, [](std::error_code) {});
    a.shutdown_send();
    pump();
    ASSERT_TRUE(at_b.error.has_value());
    EXPECT_EQ(*at_b.error, errc::end_of_stream);
    EXPECT_EQ(at_b.got, from_a);
    EXPECT_TRUE(b.peer_open()) << "a half-close is not a close";
    // a can no longer send, but still reads what b sends.
    std::optional<std::error_code> refused;
    a.async_write(from_a, [&](std::error_code ec) { refused = ec; });
    const auto from_b = pattern(7000, 3);
    std::optional<std::error_code> sent;
    b.async_send(from_b, [&](std::error_code ec) { sent = ec; });
    pump();
    ASSERT_TRUE(refused && sent);
    EXPECT_EQ(*refused, errc::channel_closed);
    EXPECT_FALSE(*sent);
    EXPECT_EQ(at_a.got, from_b);
    // And the other way round: b ends its side too.
    b.shutdown_send();
    pump();
    ASSERT_TRUE(at_a.error.has_value());
    EXPECT_EQ(*at_a.error, errc::end_of_stream);
    EXPECT_EQ(a_->link.ups(), 1U);
}

TEST_F(LinkInMemory, AFastCloseAndReopenIsSeenAsBoth)
{
    make();
    Channel& tx = a_->link.open_channel(1, ChannelMode::message);
    Channel& rx = b_->link.open_channel(1, ChannelMode::message);
    std::vector<bool> told;
    rx.set_peer_handler([&](bool open) { told.push_back(open); });
    start_both();
    EXPECT_EQ(told, (std::vector<bool>{true}));
    const auto first = pattern(100, 1);
    const auto second = pattern(200, 2);
    tx.async_write(first, [](std::error_code) {});
    // Closed and open again before b runs at all: its open bit never shows cleared.
    tx.close();
    (void)a_->link.open_channel(1, ChannelMode::message);
    tx.async_write(second, [](std::error_code) {});
    pump();
    EXPECT_EQ(told, (std::vector<bool>{true, false, true}));
    MessageSink sink(rx);
    sink.arm();
    pump();
    ASSERT_TRUE(sink.error.has_value());
    EXPECT_EQ(*sink.error, errc::end_of_stream);
    ASSERT_EQ(sink.got.size(), 1U);
    EXPECT_EQ(sink.got[0], first);
    // The next stream: after the end of the first.
    sink.error.reset();
    sink.arm();
    pump();
    ASSERT_EQ(sink.got.size(), 2U);
    EXPECT_EQ(sink.got[1], second);
    EXPECT_FALSE(sink.error.has_value());
    EXPECT_TRUE(rx.peer_open());
}

// Reads a stream channel stream after stream: what each stream carried.
struct StreamsSink {
    explicit StreamsSink(Channel& c) : ch(c) {}
    void arm()
    {
        ch.async_read_some(
            buf, [this, alive = std::weak_ptr(alive_)](std::error_code ec, std::size_t n) {
                if (alive.expired())
                    return;
                if (ec == errc::end_of_stream) {
                    streams.push_back(std::move(current));
                    current.clear();
                } else if (ec) {
                    error = ec;
                    return;
                }
                current.insert(current.end(), buf.begin(),
                               buf.begin() + static_cast<std::ptrdiff_t>(n));
                arm();
            });
    }
    Channel& ch;
    std::array<std::byte, 1000> buf{};
    std::vector<std::byte> current;
    std::vector<std::vector<std::byte>> streams;
    std::optional<std::error_code> error;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

TEST_F(LinkInMemory, ManyClosesInARowAreEachSeenInOrder)
{
    make();
    Channel& tx = a_->link.open_channel(4, ChannelMode::stream);
    Channel& rx = b_->link.open_channel(4, ChannelMode::stream);
    start_both();
    StreamsSink sink(rx);
    sink.arm();
    // Closed and opened four times with nothing between: each close waits for b to pass
    // the previous mark, and b sees four (empty) streams end, none lost.
    for (unsigned i = 0; i < 4; ++i) {
        (void)a_->link.open_channel(4, ChannelMode::stream);
        tx.close();
    }
    pump();
    EXPECT_EQ(sink.streams.size(), 4U);
    for (const auto& s : sink.streams)
        EXPECT_TRUE(s.empty());
    // With data: each stream's bytes, then its end.
    std::vector<std::vector<std::byte>> sent;
    for (unsigned i = 0; i < 4; ++i) {
        sent.push_back(pattern(50 + 3000 * i, i));
        (void)a_->link.open_channel(4, ChannelMode::stream);
        tx.async_write(sent.back(), [](std::error_code) {});
        pump();
        tx.close();
    }
    pump();
    ASSERT_EQ(sink.streams.size(), 8U);
    for (unsigned i = 0; i < 4; ++i)
        EXPECT_EQ(sink.streams[4 + i], sent[i]) << i;
    EXPECT_FALSE(sink.error.has_value());
}

TEST_F(LinkInMemory, CloseCompletesWhatIsPendingAndThePeersSendsFail)
{
    make();
    Channel& a = a_->link.open_channel(1, ChannelMode::message);
    Channel& b = b_->link.open_channel(1, ChannelMode::message);
    start_both();
    std::optional<std::error_code> received;
    a.async_receive([&](std::error_code ec, const std::vector<std::byte>&) { received = ec; });
    std::array<std::byte, 64> buf{};
    std::optional<std::error_code> received_into;
    a.async_receive(buf, [&](std::error_code ec, std::size_t) { received_into = ec; });
    // b's sends: the first waits for a's application, which closes instead.
    tx_bytes_ = pattern(100, 5);
    std::vector<std::error_code> b_sent;
    pump();
    a.close();
    pump();
    ASSERT_TRUE(received && received_into);
    EXPECT_EQ(*received, std::errc::operation_canceled);
    EXPECT_EQ(*received_into, std::errc::operation_canceled);
    EXPECT_FALSE(b.peer_open());
    // b's sends after a closed: they wait for a's reopened end, and are delivered then.
    b.async_send(tx_bytes_, [&](std::error_code ec) { b_sent.push_back(ec); });
    pump();
    EXPECT_TRUE(b_sent.empty());
    std::optional<std::error_code> refused;
    a.async_receive([&](std::error_code ec, const std::vector<std::byte>&) { refused = ec; });
    pump();
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(*refused, errc::bad_argument) << "a closed channel refuses";
    (void)a_->link.open_channel(1, ChannelMode::message);
    MessageSink sink(a);
    sink.arm();
    pump();
    ASSERT_EQ(sink.got.size(), 1U);
    EXPECT_EQ(sink.got[0], tx_bytes_);
    ASSERT_EQ(b_sent.size(), 1U);
    EXPECT_FALSE(b_sent[0]);
    EXPECT_EQ(a_->link.ups(), 1U);
}

TEST_F(LinkInMemory, CloseCancelsPendingSendsAndOneBegunStillEndsWhole)
{
    make();
    Channel& a = a_->link.open_channel(1, ChannelMode::message);
    Channel& b = b_->link.open_channel(1, ChannelMode::message);
    start_both();
    // b does not read yet: the first message fills most of the ring, the second is cut
    // short by it, the third waits.
    std::vector<std::vector<std::byte>> sent;
    std::vector<std::error_code> done;
    for (unsigned i = 0; i < 3; ++i) {
        sent.push_back(pattern(10'000, i));
        a.async_send(sent.back(), [&](std::error_code ec) { done.push_back(ec); });
    }
    pump();
    EXPECT_TRUE(done.empty());
    a.close();
    pump();
    ASSERT_EQ(done.size(), 3U);
    for (const auto& ec : done)
        EXPECT_EQ(ec, std::errc::operation_canceled);
    EXPECT_EQ(a.pending_sends(), 1U) << "the one begun is still being written";
    // b gets what went out, whole (the begun one is finished, not cut), then the end.
    MessageSink sink(b);
    sink.arm();
    pump();
    ASSERT_TRUE(sink.error.has_value());
    EXPECT_EQ(*sink.error, errc::end_of_stream);
    ASSERT_EQ(sink.got.size(), 2U);
    EXPECT_EQ(sink.got[0], sent[0]);
    EXPECT_EQ(sink.got[1], sent[1]);
    EXPECT_EQ(a.pending_sends(), 0U);
    EXPECT_EQ(a_->link.ups(), 1U);
}

TEST_F(LinkInMemory, WhatThePeerSentToAClosedEndIsDroppedAndItsSendsFail)
{
    make();
    Channel& a = a_->link.open_channel(1, ChannelMode::message);
    Channel& b = b_->link.open_channel(1, ChannelMode::message);
    start_both();
    // b sends; a never reads them and closes: they fail at b (a's application never had
    // them), and a reopened does not get them.
    std::vector<std::error_code> b_sent;
    const auto old1 = pattern(300, 1);
    const auto old2 = pattern(400, 2);
    b.async_send(old1, [&](std::error_code ec) { b_sent.push_back(ec); });
    b.async_send(old2, [&](std::error_code ec) { b_sent.push_back(ec); });
    pump();
    EXPECT_TRUE(b_sent.empty());
    a.close();
    pump();
    ASSERT_EQ(b_sent.size(), 2U);
    EXPECT_EQ(b_sent[0], errc::peer_closed);
    EXPECT_EQ(b_sent[1], errc::peer_closed);
    EXPECT_EQ(b.stats().messages_sent, 0U);
    // b's next send is kept for a's reopened end; b's old stream is gone.
    const auto fresh = pattern(500, 3);
    b.async_send(fresh, [&](std::error_code ec) { b_sent.push_back(ec); });
    (void)a_->link.open_channel(1, ChannelMode::message);
    MessageSink sink(a);
    sink.arm();
    pump();
    ASSERT_EQ(sink.got.size(), 1U);
    EXPECT_EQ(sink.got[0], fresh);
    ASSERT_EQ(b_sent.size(), 3U);
    EXPECT_FALSE(b_sent[2]);
}

TEST_F(LinkInMemory, ReopenInTheOtherModeIsAChannelErrorAndReopeningInTheSameModeMends)
{
    make();
    Channel& a = a_->link.open_channel(6, ChannelMode::message);
    Channel& b = b_->link.open_channel(6, ChannelMode::message);
    start_both();
    a.close();
    pump();
    (void)a_->link.open_channel(6, ChannelMode::stream);
    pump();
    const LinkEvent* e = b_->last(LinkEvent::Kind::channel_error);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->channel, 6U);
    EXPECT_EQ(e->error, errc::mode_mismatch);
    std::optional<std::error_code> sent;
    tx_bytes_ = pattern(10, 1);
    b.async_send(tx_bytes_, [&](std::error_code ec) { sent = ec; });
    pump();
    ASSERT_TRUE(sent.has_value());
    EXPECT_EQ(*sent, errc::mode_mismatch);
    // a closes and comes back in b's mode: messages flow again.
    a.close();
    (void)a_->link.open_channel(6, ChannelMode::message);
    pump();
    MessageSink sink(a);
    sink.arm();
    sent.reset();
    b.async_send(tx_bytes_, [&](std::error_code ec) { sent = ec; });
    pump();
    ASSERT_TRUE(sent.has_value());
    EXPECT_FALSE(*sent);
    ASSERT_FALSE(sink.got.empty());
    EXPECT_EQ(sink.got.back(), tx_bytes_);
    EXPECT_EQ(a_->link.ups(), 1U);
    EXPECT_FALSE(a_->saw(LinkEvent::Kind::reset_sent));
    EXPECT_FALSE(b_->saw(LinkEvent::Kind::reset_sent));
}

TEST_F(LinkInMemory, ClosingOneChannelLeavesTheOthersAlone)
{
    make();
    Channel& a1 = a_->link.open_channel(1, ChannelMode::message);
    Channel& b1 = b_->link.open_channel(1, ChannelMode::message);
    Channel& a2 = a_->link.open_channel(2, ChannelMode::stream);
    Channel& b2 = b_->link.open_channel(2, ChannelMode::stream);
    std::vector<bool> told2;
    b2.set_peer_handler([&](bool open) { told2.push_back(open); });
    start_both();
    StreamSink sink(b2);
    sink.arm();
    const auto bytes = pattern(20'000, 9);
    a2.async_write(bytes, [](std::error_code) {});
    a1.close();
    b1.close();
    pump();
    EXPECT_EQ(sink.got, bytes);
    EXPECT_FALSE(sink.error.has_value());
    EXPECT_EQ(told2, (std::vector<bool>{true}));
    EXPECT_TRUE(b2.peer_open());
    EXPECT_FALSE(b1.peer_open());
    EXPECT_EQ(a_->link.ups(), 1U);
}

}  // namespace
}  // namespace ism::link::test
