// SPDX-License-Identifier: MIT
// Suite LinkInMemory (LinkInMemoryHostile is in link_hostile_test.cpp).
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// The link state machine between two in-memory ports: handshake, channels, credit,
// liveness and resets, with time and event delivery under the test's control.
#include "ism/link/link.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "ism/byte_order.hpp"
#include "link_pair_fixture.hpp"

namespace {

using namespace ism;
using namespace ism::link;
using namespace std::chrono_literals;
using namespace ism::link::test;

TEST_F(LinkInMemory, BothSidesStartingAtOnceComeUp)
{
    make();
    start_both();
    EXPECT_EQ(a_->link.version(), 3);
    EXPECT_EQ(a_->link.ups(), 1U);
    EXPECT_TRUE(a_->saw(LinkEvent::Kind::up));
    EXPECT_TRUE(b_->saw(LinkEvent::Kind::up));
}

TEST_F(LinkInMemory, LostOffersAreRetriedUntilThePeerAnswers)
{
    make();
    b_->port.drop_events = true;  // b's OFFERs never arrive
    ASSERT_TRUE(a_->link.start(now_));
    ASSERT_TRUE(b_->link.start(now_));
    pump();
    EXPECT_FALSE(a_->link.up());
    b_->port.drop_events = false;
    advance(150ms);
    EXPECT_TRUE(a_->link.up());
    EXPECT_TRUE(b_->link.up());
}

TEST_F(LinkInMemory, PeerStartingLateIsFoundByRetries)
{
    make();
    ASSERT_TRUE(a_->link.start(now_));
    pump();  // a's OFFER goes to b's queue, but b is not running: drop it
    b_->port.events.clear();
    advance(2s);
    ASSERT_TRUE(b_->link.start(now_));
    pump();
    EXPECT_TRUE(a_->link.up());
    EXPECT_TRUE(b_->link.up());
}

TEST_F(LinkInMemory, SendIsConfirmedOnlyAfterTheReceiversHandlerHasTheMessage)
{
    // b re-arms inside its handler, which hands it the next message at once: the credit
    // for that message must not go back (and confirm a's send) before its handler ran.
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    start_both();
    std::array<bool, 3> confirmed{};
    std::vector<std::size_t> handled;
    std::function<void()> receive = [&] {
        rx.async_receive([&](std::error_code ec, const std::vector<std::byte>& m) {
            if (ec)
                return;
            const std::size_t i = handled.size();
            handled.push_back(m.size());
            // Let a look at its DMB now: what b confirmed so far is visible to it.
            a_->link.poll(now_);
            EXPECT_FALSE(confirmed[i]) << "message " << i << " confirmed before its handler ran";
            receive();
        });
    };
    const auto payload = pattern(100, 1);
    // By index: each send's handler records its own slot.
    for (std::size_t i = 0; i < confirmed.size(); ++i)  // NOLINT(modernize-loop-convert)
        tx.async_send(payload, [&, i](std::error_code ec) {
            EXPECT_FALSE(ec);
            confirmed[i] = true;
        });
    receive();
    pump();
    EXPECT_EQ(handled.size(), confirmed.size());
    EXPECT_TRUE(std::all_of(confirmed.begin(), confirmed.end(), [](bool c) { return c; }));
}

TEST_F(LinkInMemory, SendsConfirmedJustBeforeThePeerDiedCompleteAsDelivered)
{
    // b took the message and confirmed it, then died before a handled the interrupt:
    // a must not report that send as lost.
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    start_both();
    bool got = false;
    rx.async_receive([&](std::error_code ec, const std::vector<std::byte>&) { got = !ec; });
    std::optional<std::error_code> first;
    std::optional<std::error_code> second;
    const auto payload = pattern(64, 3);
    tx.async_send(payload, [&](std::error_code ec) { first = ec; });
    b_->port.signalled = false;
    b_->link.poll(now_);  // receives, confirms into a's DMB
    ASSERT_TRUE(got);
    tx.async_send(payload, [&](std::error_code ec) { second = ec; });  // never received
    b_->port.dead = true;
    a_->link.on_peer_disabled(now_);
    ASSERT_TRUE(first.has_value());
    EXPECT_FALSE(*first) << first->message();
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(*second, errc::peer_gone);
    EXPECT_EQ(tx.stats().messages_sent, 1U);
    EXPECT_EQ(tx.stats().sends_failed, 1U);
}

TEST_F(LinkInMemory, APeerWithALongerKeepaliveIsNotTakenForDead)
{
    // a expects a keepalive every second (dead after 3 s); b keeps alive every 5 s.
    LinkOptions slow = options();
    slow.keepalive_interval = 5s;
    slow.dead_after = 15s;
    make(options(), slow);
    start_both();
    for (int i = 0; i < 30; ++i)
        advance(1s);
    EXPECT_EQ(a_->link.ups(), 1U) << "a declared b dead between its keepalives";
    EXPECT_FALSE(a_->saw(LinkEvent::Kind::down));
    // Really silent: dead after three of b's intervals.
    b_->port.hung = true;
    for (int i = 0; i < 16; ++i)
        advance(1s);
    EXPECT_FALSE(a_->link.up());
}

TEST_F(LinkInMemory, SendingOnAChannelThePeerLacksFailsLocally)
{
    make(options(16), options(4));
    Channel& tx = a_->link.open_channel(9, ChannelMode::message);
    start_both();
    std::optional<std::error_code> result;
    const auto payload = pattern(64, 5);
    tx.async_send(payload, [&](std::error_code ec) { result = ec; });
    pump();
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(*result, errc::no_peer_channel);
    EXPECT_EQ(a_->link.ups(), 1U) << "the link was not reset";
    EXPECT_FALSE(b_->saw(LinkEvent::Kind::reset_sent));
}

TEST_F(LinkInMemory, AnEmptyStreamSendCompletesOnceEverythingBeforeItIsConfirmed)
{
    make();
    Channel& tx = a_->link.open_channel(2, ChannelMode::stream);
    Channel& rx = b_->link.open_channel(2, ChannelMode::stream);
    start_both();
    std::array<std::byte, 64> buffer{};
    std::size_t got = 0;
    rx.async_read_some(buffer, [&](std::error_code ec, std::size_t n) { got = ec ? 0 : n; });
    const auto payload = pattern(10, 2);
    std::vector<int> done;
    tx.async_send(payload, [&](std::error_code ec) { done.push_back(ec ? -1 : 1); });
    tx.async_send({}, [&](std::error_code ec) { done.push_back(ec ? -2 : 2); });
    pump();
    EXPECT_EQ(got, payload.size());
    EXPECT_EQ(done, (std::vector<int>{1, 2}));
    // Nothing outstanding at all: it completes right away.
    tx.async_send({}, [&](std::error_code ec) { done.push_back(ec ? -3 : 3); });
    pump();
    EXPECT_EQ(done, (std::vector<int>{1, 2, 3}));
}

TEST_F(LinkInMemory, MessagesOfEverySizeArriveInOrderOnEveryChannel)
{
    make();
    std::vector<Channel*> tx, rx;
    for (uint32_t c = 0; c < 16; ++c) {
        tx.push_back(&a_->link.open_channel(c, ChannelMode::message));
        rx.push_back(&b_->link.open_channel(c, ChannelMode::message));
    }
    start_both();
    const std::vector<std::size_t> sizes{0, 1, 7, 8, 9, 100, 4096, 15000, 16320, 65536, 1 << 20};
    std::vector<std::vector<std::byte>> payloads;
    for (std::size_t i = 0; i < sizes.size(); ++i)
        payloads.push_back(pattern(sizes[i], static_cast<unsigned>(i)));
    int confirmed = 0;
    std::map<uint32_t, std::vector<std::vector<std::byte>>> got;
    std::function<void(uint32_t)> receive = [&](uint32_t c) {
        rx[c]->async_receive([&, c](std::error_code ec, std::vector<std::byte> m) {
            if (ec)
                return;
            got[c].push_back(std::move(m));
            receive(c);
        });
    };
    for (uint32_t c = 0; c < 16; ++c) {
        receive(c);
        for (auto& p : payloads)
            tx[c]->async_send(p, [&](std::error_code ec) {
                EXPECT_FALSE(ec) << ec.message();
                ++confirmed;
            });
    }
    pump();
    EXPECT_EQ(confirmed, static_cast<int>(16 * sizes.size()));
    for (uint32_t c = 0; c < 16; ++c) {
        ASSERT_EQ(got[c].size(), payloads.size()) << "channel " << c;
        for (std::size_t i = 0; i < payloads.size(); ++i)
            EXPECT_EQ(got[c][i], payloads[i]) << "channel " << c << " message " << i;
        EXPECT_EQ(tx[c]->stats().messages_sent, sizes.size());
        EXPECT_EQ(rx[c]->stats().messages_received, sizes.size());
    }
}

TEST_F(LinkInMemory, MessagesArriveStraightInTheCallersBuffer)
{
    // Sizes from empty to several rings (pieces over many polls), into one buffer.
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    start_both();
    std::vector<std::byte> buffer(1 << 20);
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{1000}, std::size_t{20'000},
                             std::size_t{700'000}}) {
        const auto m = pattern(size, static_cast<unsigned>(size));
        std::optional<std::error_code> sent;
        std::optional<std::pair<std::error_code, std::size_t>> got;
        rx.async_receive(std::span(buffer), [&](std::error_code ec, std::size_t n) {
            got.emplace(ec, n);
            EXPECT_FALSE(sent.has_value()) << "confirmed before the handler ran";
        });
        tx.async_send(m, [&](std::error_code ec) { sent = ec; });
        pump(1'000'000);
        ASSERT_TRUE(got && sent) << size;
        EXPECT_FALSE(got->first) << got->first.message();
        ASSERT_EQ(got->second, size);
        EXPECT_TRUE(std::equal(m.begin(), m.end(), buffer.begin())) << size;
        EXPECT_FALSE(*sent);
    }
}

TEST_F(LinkInMemory, AMessageLongerThanTheBufferIsDroppedAndSaysSo)
{
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    start_both();
    const auto big = pattern(5000, 1);
    const auto small = pattern(100, 2);
    tx.async_send(big, [](std::error_code) {});
    tx.async_send(small, [](std::error_code) {});
    std::array<std::byte, 1000> buffer{};
    std::vector<std::pair<std::error_code, std::size_t>> got;
    const auto record = [&](std::error_code ec, std::size_t n) { got.emplace_back(ec, n); };
    rx.async_receive(std::span(buffer), record);
    rx.async_receive(std::span(buffer), record);
    pump();
    ASSERT_EQ(got.size(), 2U);
    EXPECT_EQ(got[0].first, errc::message_too_large);
    EXPECT_EQ(got[0].second, 5000U);
    EXPECT_FALSE(got[1].first);
    EXPECT_EQ(got[1].second, 100U);
    EXPECT_TRUE(std::equal(small.begin(), small.end(), buffer.begin()));
}

TEST_F(LinkInMemory, ACancelledReceiveCompletesAbortedAndTheChannelGoesOn)
{
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    Channel& stx = a_->link.open_channel(1, ChannelMode::stream);
    Channel& srx = b_->link.open_channel(1, ChannelMode::stream);
    start_both();
    std::array<std::byte, 64> buffer{};
    std::optional<std::error_code> first;
    const auto id =
        rx.async_receive(std::span(buffer), [&](std::error_code ec, std::size_t) { first = ec; });
    std::optional<std::error_code> read;
    const auto rid =
        srx.async_read_some(buffer, [&](std::error_code ec, std::size_t) { read = ec; });
    EXPECT_TRUE(rx.cancel(id));
    EXPECT_TRUE(srx.cancel(rid));
    EXPECT_FALSE(rx.cancel(id)) << "already done";
    ASSERT_TRUE(first && read);
    EXPECT_EQ(*first, std::errc::operation_canceled);
    EXPECT_EQ(*read, std::errc::operation_canceled);
    const auto m = pattern(10, 3);
    std::optional<std::size_t> got;
    rx.async_receive(std::span(buffer), [&](std::error_code ec, std::size_t n) {
        if (!ec)
            got = n;
    });
    tx.async_send(m, [](std::error_code) {});
    std::optional<std::size_t> bytes;
    srx.async_read_some(buffer, [&](std::error_code ec, std::size_t n) {
        if (!ec)
            bytes = n;
    });
    stx.async_send(m, [](std::error_code) {});
    pump();
    EXPECT_EQ(got, 10U);
    EXPECT_EQ(bytes, 10U);
}

TEST_F(LinkInMemory, ASendNotStartedCanBeCancelledAStartedOneCannot)
{
    // b does not receive: a's ring fills, the last sends wait unwritten.
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    (void)b_->link.open_channel(0, ChannelMode::message);
    start_both();
    const auto m = pattern(ring_size_for(256 * 1024, 16) / 2, 4);
    std::vector<std::optional<std::error_code>> done(3);
    std::vector<Channel::OpId> ids;
    for (std::size_t i = 0; i < done.size(); ++i)  // NOLINT(modernize-loop-convert): by slot
        ids.push_back(tx.async_send(m, [&, i](std::error_code ec) { done[i] = ec; }));
    pump();
    EXPECT_FALSE(tx.cancel(ids[0])) << "written already";
    EXPECT_TRUE(tx.cancel(ids[2]));
    ASSERT_TRUE(done[2].has_value());
    EXPECT_EQ(*done[2], std::errc::operation_canceled);
    EXPECT_FALSE(done[0].has_value());
    EXPECT_EQ(a_->link.ups(), 1U);
    // Shutting down completes the rest (before `done` goes out of scope).
    a_->link.shutdown();
    ASSERT_TRUE(done[0] && done[1]);
    EXPECT_EQ(*done[0], std::errc::operation_canceled);
    EXPECT_EQ(*done[1], std::errc::operation_canceled);
}

TEST_F(LinkInMemory, AWriteCompletesWhenTheBufferIsReusableBeforeThePeerHasIt)
{
    // b does not receive: a send would wait; a write completes once it is in b's ring.
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    start_both();
    auto buffer = pattern(300, 1);
    const auto sent = buffer;
    std::optional<std::error_code> written;
    std::optional<std::error_code> delivered;
    tx.async_write(buffer, [&](std::error_code ec) { written = ec; });
    tx.async_send(buffer, [&](std::error_code ec) { delivered = ec; });
    pump();
    ASSERT_TRUE(written.has_value());
    EXPECT_FALSE(*written);
    EXPECT_FALSE(delivered.has_value()) << "b's application has nothing yet";
    std::fill(buffer.begin(), buffer.end(), std::byte{0});  // reused: already in b's ring
    std::vector<std::byte> got;
    rx.async_receive([&](std::error_code, std::vector<std::byte> m) { got = std::move(m); });
    pump();
    EXPECT_EQ(got, sent);
    b_->link.shutdown();
    a_->link.shutdown();
}

TEST_F(LinkInMemory, TheSendQueueIsBounded)
{
    auto o = options();
    o.send_queue = 3;
    make(o, o);
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    (void)b_->link.open_channel(0, ChannelMode::message);
    start_both();
    const auto m = pattern(10, 1);
    std::vector<std::error_code> results;
    for (int i = 0; i < 4; ++i)
        tx.async_send(m, [&](std::error_code ec) { results.push_back(ec); });
    pump();
    ASSERT_EQ(results.size(), 1U) << "three wait for b, the fourth is refused";
    EXPECT_EQ(results[0], errc::send_queue_full);
    EXPECT_EQ(tx.pending_sends(), 3U);
    a_->link.shutdown();
    EXPECT_EQ(results.size(), 4U);
}

TEST_F(LinkInMemory, AChannelIsToldWhenThePeerOpensItsEndAndWhenThatEndIsGone)
{
    make();
    Channel& ch = a_->link.open_channel(5, ChannelMode::stream);
    std::vector<bool> told;
    ch.set_peer_handler([&](bool open) { told.push_back(open); });
    start_both();
    EXPECT_FALSE(ch.peer_open());
    EXPECT_TRUE(told.empty());
    (void)b_->link.open_channel(4, ChannelMode::stream);  // another channel: not ours
    pump();
    EXPECT_TRUE(told.empty());
    (void)b_->link.open_channel(5, ChannelMode::stream);
    pump();
    EXPECT_TRUE(ch.peer_open());
    EXPECT_EQ(told, (std::vector<bool>{true}));
    b_->link.shutdown();
    pump();
    EXPECT_FALSE(ch.peer_open());
    EXPECT_EQ(told, (std::vector<bool>{true, false}));
}

TEST_F(LinkInMemory, ShutdownCompletesEverythingPendingAndThePeerKnowsAtOnce)
{
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = a_->link.open_channel(1, ChannelMode::message);
    Channel& peer_rx = b_->link.open_channel(1, ChannelMode::message);
    (void)b_->link.open_channel(0, ChannelMode::message);
    start_both();
    std::vector<std::error_code> results;
    const auto m = pattern(100, 1);
    tx.async_send(m, [&](std::error_code ec) { results.push_back(ec); });  // b never takes it
    rx.async_receive(
        [&](std::error_code ec, const std::vector<std::byte>&) { results.push_back(ec); });
    std::optional<std::error_code> peer_result;
    peer_rx.async_receive(
        [&](std::error_code ec, const std::vector<std::byte>&) { peer_result = ec; });
    pump();
    const uint64_t token = a_->link.own_token();
    a_->link.shutdown();
    ASSERT_EQ(results.size(), 2U);
    EXPECT_EQ(results[0], std::errc::operation_canceled);
    EXPECT_EQ(results[1], std::errc::operation_canceled);
    EXPECT_EQ(a_->link.own_token(), 0U) << "the DMB is unregistered";
    EXPECT_THROW((void)a_->port.dmb(token), std::out_of_range);
    // Later operations complete the same way, and nothing restarts.
    std::optional<std::error_code> late;
    tx.async_send(m, [&](std::error_code ec) { late = ec; });
    ASSERT_TRUE(late.has_value());
    EXPECT_EQ(*late, std::errc::operation_canceled);
    pump();
    EXPECT_FALSE(b_->link.up()) << "b learnt at once, not after dead_after";
    const LinkEvent* e = b_->last(LinkEvent::Kind::reset_received);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->reason, ResetReason::shutdown);
    ASSERT_TRUE(peer_result.has_value());
    EXPECT_EQ(*peer_result, errc::peer_gone);
    advance(5s);
    EXPECT_EQ(a_->link.own_token(), 0U);
    EXPECT_EQ(a_->link.next_deadline(), Clock::time_point::max());
}

TEST_F(LinkInMemory, AServiceResetsTheLinkAndBothSidesComeBackInANewEpoch)
{
    make();
    Channel& rx = a_->link.open_channel(1, ChannelMode::message);
    Channel& peer_rx = b_->link.open_channel(1, ChannelMode::message);
    start_both();
    ASSERT_TRUE(a_->link.up() && b_->link.up());
    const uint16_t epoch = a_->link.epoch();
    std::optional<std::error_code> ours;
    std::optional<std::error_code> theirs;
    rx.async_receive([&](std::error_code ec, const std::vector<std::byte>&) { ours = ec; });
    peer_rx.async_receive([&](std::error_code ec, const std::vector<std::byte>&) { theirs = ec; });
    pump();
    a_->link.reset(1, make_error_code(std::errc::protocol_error));
    ASSERT_TRUE(ours.has_value());
    EXPECT_EQ(*ours, errc::link_reset);
    pump();
    const LinkEvent* e = b_->last(LinkEvent::Kind::reset_received);
    ASSERT_NE(e, nullptr) << "b is told at once";
    EXPECT_EQ(e->reason, ResetReason::service);
    ASSERT_TRUE(theirs.has_value());
    EXPECT_EQ(*theirs, errc::link_reset);
    for (int i = 0; i < 50 && !(a_->link.up() && b_->link.up()); ++i)
        advance(100ms);
    EXPECT_TRUE(a_->link.up() && b_->link.up()) << "an honest peer reconnects at once";
    EXPECT_NE(a_->link.epoch(), epoch);
    // A reset while down does nothing.
    a_->link.shutdown();
    a_->link.reset(1, make_error_code(std::errc::protocol_error));
}

TEST_F(LinkInMemory, TheLinksDestructorCompletesWhatIsPending)
{
    make();
    Channel& rx = a_->link.open_channel(1, ChannelMode::message);
    start_both();
    std::optional<std::error_code> result;
    rx.async_receive([&](std::error_code ec, const std::vector<std::byte>&) { result = ec; });
    pump();
    a_.reset();
    b_->port.peer = nullptr;
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(*result, std::errc::operation_canceled);
    pump();
    EXPECT_FALSE(b_->link.up());
}

TEST_F(LinkInMemory, AHandlerThatThrowsIsCaughtAndTheOthersStillRun)
{
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    start_both();
    int received = 0;
    rx.async_receive([&](std::error_code, const std::vector<std::byte>&) {
        ++received;
        throw std::runtime_error("handler bug");
    });
    rx.async_receive([&](std::error_code, const std::vector<std::byte>&) { ++received; });
    const auto m = pattern(10, 1);
    tx.async_send(m, [](std::error_code) {});
    tx.async_send(m, [](std::error_code) {});
    EXPECT_NO_THROW(pump());
    EXPECT_EQ(received, 2);
    EXPECT_EQ(b_->link.handler_exceptions(), 1U);
    auto e = b_->link.take_handler_exception();
    ASSERT_TRUE(e);
    EXPECT_THROW(std::rethrow_exception(e), std::runtime_error);
    EXPECT_FALSE(b_->link.take_handler_exception());
    EXPECT_TRUE(b_->link.up());
    // Nor does one reach a destructor: b's pending receive throws as it is cancelled.
    rx.async_receive([](std::error_code, const std::vector<std::byte>&) {
        throw std::runtime_error("while shutting down");
    });
    b_.reset();
    a_->port.peer = nullptr;
}

TEST_F(LinkInMemory, StreamBytesCrossTheRingWrapInOrder)
{
    make(options(4, 64 * 1024), options(4, 64 * 1024));
    Channel& tx = a_->link.open_channel(2, ChannelMode::stream);
    Channel& rx = b_->link.open_channel(2, ChannelMode::stream);
    start_both();
    const auto data = pattern(200'000, 3);
    bool sent = false;
    tx.async_send(data, [&](std::error_code ec) { sent = !ec; });
    std::vector<std::byte> got;
    std::vector<std::byte> buf(777);
    std::function<void()> read = [&] {
        rx.async_read_some(buf, [&](std::error_code ec, std::size_t n) {
            if (ec)
                return;
            got.insert(got.end(), buf.begin(), buf.begin() + static_cast<long>(n));
            read();
        });
    };
    read();
    pump();
    EXPECT_TRUE(sent);
    EXPECT_EQ(got, data);
}

TEST_F(LinkInMemory, ASendIsConfirmedOnlyOnceTheApplicationHasTheMessage)
{
    make();
    Channel& tx = a_->link.open_channel(1, ChannelMode::message);
    Channel& rx = b_->link.open_channel(1, ChannelMode::message);
    start_both();
    const auto m = pattern(100, 1);
    bool confirmed = false;
    tx.async_send(m, [&](std::error_code ec) { confirmed = !ec; });
    pump();
    EXPECT_FALSE(confirmed) << "nobody received it yet";
    std::vector<std::byte> got;
    rx.async_receive([&](std::error_code, std::vector<std::byte> v) { got = std::move(v); });
    pump();
    EXPECT_EQ(got, m);
    EXPECT_TRUE(confirmed);
}

TEST_F(LinkInMemory, AStalledChannelNeverBlocksTheOthers)
{
    make(options(4, 64 * 1024), options(4, 64 * 1024));
    Channel& stalled_tx = a_->link.open_channel(0, ChannelMode::message);
    (void)b_->link.open_channel(0, ChannelMode::message);  // never read
    Channel& busy_tx = a_->link.open_channel(3, ChannelMode::message);
    Channel& busy_rx = b_->link.open_channel(3, ChannelMode::message);
    start_both();
    const auto m = pattern(4000, 2);
    for (int i = 0; i < 200; ++i)
        stalled_tx.async_send(m, [](std::error_code) {});
    std::size_t received = 0;
    std::function<void()> receive = [&] {
        busy_rx.async_receive([&](std::error_code ec, const std::vector<std::byte>&) {
            if (!ec) {
                ++received;
                receive();
            }
        });
    };
    receive();
    for (int i = 0; i < 500; ++i)
        busy_tx.async_send(m, [](std::error_code) {});
    pump();
    EXPECT_EQ(received, 500U);
    EXPECT_EQ(busy_tx.pending_sends(), 0U);
    EXPECT_EQ(stalled_tx.pending_sends(), 200U) << "the stalled reader confirmed nothing";
}

TEST_F(LinkInMemory, AMessageLargerThanTheRingGoesInPieces)
{
    make(options(8, 64 * 1024), options(8, 64 * 1024));  // rings of 8064 bytes
    Channel& tx = a_->link.open_channel(5, ChannelMode::message);
    Channel& rx = b_->link.open_channel(5, ChannelMode::message);
    start_both();
    const auto m = pattern(3 << 20, 9);
    bool confirmed = false;
    tx.async_send(m, [&](std::error_code ec) { confirmed = !ec; });
    std::vector<std::byte> got;
    rx.async_receive([&](std::error_code, std::vector<std::byte> v) { got = std::move(v); });
    pump(1'000'000);
    EXPECT_TRUE(confirmed);
    EXPECT_EQ(got, m);
}

TEST_F(LinkInMemory, OversizedMessagesAreRefusedToTheSender)
{
    auto o = options();
    o.max_message = 1000;
    make(o, o);
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    start_both();
    const auto m = pattern(1001, 0);
    std::error_code got;
    tx.async_send(m, [&](std::error_code ec) { got = ec; });
    pump();
    EXPECT_EQ(got, errc::message_too_large);
}

TEST_F(LinkInMemory, AMessageLargerThanThePeerTakesFailsLocallyAndTheLinkStays)
{
    // a may send 16 MiB, b takes at most 1000 bytes: b announced it, so a's send fails
    // on a's side instead of b resetting the link (on every retry).
    auto small = options();
    small.max_message = 1000;
    make(options(), small);
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    start_both();
    std::optional<std::error_code> big;
    std::optional<std::error_code> fits;
    const auto m = pattern(1001, 1);
    const auto n = pattern(1000, 2);
    tx.async_send(m, [&](std::error_code ec) { big = ec; });
    tx.async_send(n, [&](std::error_code ec) { fits = ec; });
    std::vector<std::byte> got;
    rx.async_receive([&](std::error_code, std::vector<std::byte> v) { got = std::move(v); });
    pump();
    ASSERT_TRUE(big && fits);
    EXPECT_EQ(*big, errc::message_too_large);
    EXPECT_FALSE(*fits);
    EXPECT_EQ(got, n);
    EXPECT_EQ(a_->link.ups(), 1U);
    EXPECT_FALSE(b_->saw(LinkEvent::Kind::reset_sent));
}

TEST_F(LinkInMemory, AChannelOpenInTwoModesIsAChannelErrorNotAReset)
{
    make();
    Channel& a1 = a_->link.open_channel(1, ChannelMode::message);
    Channel& b1 = b_->link.open_channel(1, ChannelMode::stream);
    Channel& a2 = a_->link.open_channel(2, ChannelMode::message);
    Channel& b2 = b_->link.open_channel(2, ChannelMode::message);
    start_both();
    for (Side* s : {a_.get(), b_.get()}) {
        const LinkEvent* e = s->last(LinkEvent::Kind::channel_error);
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->channel, 1U);
        EXPECT_EQ(e->error, errc::mode_mismatch);
    }
    std::optional<std::error_code> sent;
    std::optional<std::error_code> read;
    std::array<std::byte, 16> buf{};
    tx_bytes_ = pattern(8, 3);
    a1.async_send(tx_bytes_, [&](std::error_code ec) { sent = ec; });
    b1.async_read_some(buf, [&](std::error_code ec, std::size_t) { read = ec; });
    pump();
    ASSERT_TRUE(sent && read);
    EXPECT_EQ(*sent, errc::mode_mismatch);
    EXPECT_EQ(*read, errc::mode_mismatch);
    // The other channels and the link go on.
    std::vector<std::byte> got;
    b2.async_receive([&](std::error_code, std::vector<std::byte> v) { got = std::move(v); });
    a2.async_send(tx_bytes_, [](std::error_code) {});
    pump();
    EXPECT_EQ(got, tx_bytes_);
    EXPECT_EQ(a_->link.ups(), 1U);
    EXPECT_FALSE(a_->saw(LinkEvent::Kind::reset_sent));
    EXPECT_FALSE(b_->saw(LinkEvent::Kind::reset_sent));
}

TEST_F(LinkInMemory, AModeMismatchFoundAfterDataWasSentFailsTheSendNotTheLink)
{
    // a sends before b opens (the data waits in b's ring); b then opens in the other
    // mode: b must not parse a's messages as a stream or the reverse.
    make();
    Channel& a1 = a_->link.open_channel(1, ChannelMode::message);
    start_both();
    std::optional<std::error_code> sent;
    tx_bytes_ = pattern(100, 4);
    a1.async_send(tx_bytes_, [&](std::error_code ec) { sent = ec; });
    pump();
    EXPECT_FALSE(sent.has_value()) << "b has not taken it yet";
    Channel& b1 = b_->link.open_channel(1, ChannelMode::stream);
    std::array<std::byte, 256> buf{};
    std::optional<std::error_code> read;
    b1.async_read_some(buf, [&](std::error_code ec, std::size_t) { read = ec; });
    pump();
    ASSERT_TRUE(sent && read);
    EXPECT_EQ(*sent, errc::mode_mismatch);
    EXPECT_EQ(*read, errc::mode_mismatch);
    EXPECT_TRUE(a_->link.up());
    EXPECT_EQ(a_->link.ups(), 1U);
    EXPECT_FALSE(b_->saw(LinkEvent::Kind::reset_sent));
}

TEST_F(LinkInMemory, APeerAnnouncingAnHourOfKeepaliveIsHeldToOurLimit)
{
    // b announces a keepalive every hour; a waits three of at most peer_keepalive_limit
    // (10 s by default), not three hours.
    LinkOptions lazy = options();
    lazy.keepalive_interval = 3600s;
    lazy.dead_after = 3601s;
    lazy.peer_keepalive_limit = 3600s;
    make(options(), lazy);
    start_both();
    b_->port.hung = true;
    for (int i = 0; i < 29; ++i)
        advance(1s);
    EXPECT_TRUE(a_->link.up()) << "dead before three of the limit";
    advance(2s);
    EXPECT_FALSE(a_->link.up()) << "still waiting for a peer silent for 31 s";
}

TEST_F(LinkInMemory, ADeadPeerFailsEveryWaiterAndTheLinkComesBackWithANewOne)
{
    auto o = options();
    make(o, o);
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    std::vector<bool> states;
    tx.set_state_handler([&](bool up) { states.push_back(up); });
    (void)b_->link.open_channel(0, ChannelMode::message);
    start_both();
    const auto m = pattern(10, 0);
    std::error_code sent, received;
    tx.async_send(m, [&](std::error_code ec) { sent = ec; });
    tx.async_receive([&](std::error_code ec, const std::vector<std::byte>&) { received = ec; });
    pump();
    // b hangs: no keepalive, no credit, but its memory still takes our stores.
    b_->port.hung = true;
    advance(1s);
    advance(1s);
    EXPECT_TRUE(a_->link.up());
    advance(1s);
    EXPECT_FALSE(a_->link.up());
    EXPECT_EQ(sent, errc::peer_gone);
    EXPECT_EQ(received, errc::peer_gone);
    EXPECT_EQ(tx.stats().sends_failed, 1U);
    EXPECT_EQ(tx.stats().bytes_failed, 10U);
    ASSERT_NE(a_->last(LinkEvent::Kind::down), nullptr);
    EXPECT_EQ(a_->last(LinkEvent::Kind::down)->error, errc::peer_gone);

    // A new process takes b's place: new DMB, new epoch.
    b_ = std::make_unique<Side>(0x200, o);
    wire();
    Channel& rx2 = b_->link.open_channel(0, ChannelMode::message);
    ASSERT_TRUE(b_->link.start(now_));
    pump();
    EXPECT_TRUE(a_->link.up());
    EXPECT_EQ(a_->link.ups(), 2U);
    EXPECT_EQ(states, (std::vector<bool>{true, false, true}));
    std::vector<std::byte> got;
    rx2.async_receive([&](std::error_code, std::vector<std::byte> v) { got = std::move(v); });
    sent = make_error_code(errc::peer_gone);
    tx.async_send(m, [&](std::error_code ec) { sent = ec; });
    pump();
    EXPECT_FALSE(sent);
    EXPECT_EQ(got, m);
}

TEST_F(LinkInMemory, ARestartedPeerIsNoticedFromItsOffer)
{
    auto o = options();
    make(o, o);
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    start_both();
    std::error_code sent;
    const auto m = pattern(10, 0);
    tx.async_send(m, [&](std::error_code ec) { sent = ec; });
    pump();
    const uint64_t old_token = a_->link.own_token();
    b_ = std::make_unique<Side>(0x300, o);
    wire();
    ASSERT_TRUE(b_->link.start(now_));
    pump();
    EXPECT_EQ(sent, errc::peer_gone);
    EXPECT_TRUE(a_->link.up());
    EXPECT_TRUE(b_->link.up());
    EXPECT_NE(a_->link.own_token(), old_token) << "a new epoch gets a new DMB";
}

TEST_F(LinkInMemory, TheDevicesGidDisabledEventTakesTheLinkDown)
{
    make();
    start_both();
    a_->link.on_peer_disabled(now_);
    EXPECT_TRUE(a_->saw(LinkEvent::Kind::down));
    pump();  // a's new OFFER reaches b, which starts over too
    EXPECT_TRUE(a_->link.up());
    EXPECT_EQ(a_->link.ups(), 2U);
}

TEST_F(LinkInMemory, AFailedStoreIntoThePeerIsPeerLoss)
{
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    start_both();
    b_->port.dead = true;
    std::error_code sent;
    const auto m = pattern(10, 0);
    tx.async_send(m, [&](std::error_code ec) { sent = ec; });
    EXPECT_EQ(sent, errc::peer_gone);
    EXPECT_FALSE(a_->link.up());
    ASSERT_NE(a_->last(LinkEvent::Kind::down), nullptr);
    EXPECT_EQ(a_->last(LinkEvent::Kind::down)->error, errc::hw_unknown_token);
    // The loss happened at the test's time, not the machine's: the new epoch's first
    // OFFER retry is due 100 ms after now_.
    EXPECT_EQ(a_->link.next_deadline(), now_ + LinkOptions{}.offer_first);
}

TEST_F(LinkInMemory, SendsWhileDownFailAtOnce)
{
    make();
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    ASSERT_TRUE(a_->link.start(now_));
    std::error_code sent;
    tx.async_send(pattern(1, 0), [&](std::error_code ec) { sent = ec; });
    EXPECT_EQ(sent, errc::peer_gone);
}

TEST_F(LinkInMemory, OptionsOutOfRangeAreRefused)
{
    LinkOptions o;
    o.dmb_size = 3 << 16;
    EXPECT_EQ(o.validate().error(), errc::bad_argument);
    o = LinkOptions{};
    o.channels = 33;
    EXPECT_EQ(o.validate().error(), errc::bad_argument);
    o = LinkOptions{};
    o.dmb_size = 64 * 1024;  // 16 rings of 4032 bytes: below the minimum ring
    EXPECT_EQ(o.validate().error(), errc::bad_argument);
    o.channels = 15;
    EXPECT_TRUE(o.validate());
}

}  // namespace
