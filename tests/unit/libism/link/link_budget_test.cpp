// SPDX-License-Identifier: MIT
// Suite LinkBudgetInMemory: the receive budget (LinkOptions::rx_budget, docs/protocol.md
// section 9) between two links in memory.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
#include <array>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "link_pair_fixture.hpp"

namespace ism::link::test {
namespace {

class LinkBudgetInMemory : public LinkInMemory {
protected:
    static LinkOptions with_budget(std::size_t budget, uint32_t channels = 8)
    {
        LinkOptions o = options(channels, 256 * 1024);
        o.rx_budget = budget;
        return o;
    }

    // Keeps a vector receive pending on `ch`, collecting what arrives.
    void keep_receiving(Channel& ch, std::vector<std::vector<std::byte>>& into)
    {
        ch.async_receive([this, &ch, &into](std::error_code ec, std::vector<std::byte> m) {
            if (ec)
                return;
            into.push_back(std::move(m));
            keep_receiving(ch, into);
        });
    }

    // A's messages on `ch` (which must outlive the sends), each confirmed (or failed)
    // into `results`.
    void send_all(Channel& ch, const std::vector<std::vector<std::byte>>& messages,
                  std::vector<std::error_code>& results)
    {
        for (const auto& m : messages)
            ch.async_send(m, [&results](std::error_code ec) { results.push_back(ec); });
    }

    [[nodiscard]] bool no_reset() const
    {
        return !a_->saw(LinkEvent::Kind::down) && !b_->saw(LinkEvent::Kind::down);
    }
};

TEST_F(LinkBudgetInMemory, AFloodOn32ChannelsNeverHoldsMoreThanTheBudget)
{
    // 32 rings of 8128 bytes; messages from one record to eight rings' worth, every
    // channel at once: far more than 64 KiB wants room at the same time.
    constexpr std::size_t kBudget = 64 * 1024;
    make(with_budget(kBudget, 32), with_budget(kBudget, 32));
    std::vector<Channel*> tx, rx;
    for (uint32_t c = 0; c < 32; ++c) {
        tx.push_back(&a_->link.open_channel(c, ChannelMode::message));
        rx.push_back(&b_->link.open_channel(c, ChannelMode::message));
    }
    start_both();
    std::vector<std::vector<std::byte>> messages;
    for (std::size_t size : {100U, 3000U, 20'000U, 500U, 64U * 1024, 7U, 40'000U, 1U})
        messages.push_back(pattern(size, static_cast<unsigned>(size)));
    std::vector<std::vector<std::vector<std::byte>>> got(32);
    std::vector<std::vector<std::error_code>> sent(32);
    for (uint32_t c = 0; c < 32; ++c) {
        keep_receiving(*rx[c], got[c]);
        send_all(*tx[c], messages, sent[c]);
    }
    pump(1'000'000);
    EXPECT_TRUE(no_reset()) << "back-pressure, not a reset";
    for (uint32_t c = 0; c < 32; ++c) {
        ASSERT_EQ(sent[c].size(), messages.size()) << "channel " << c;
        for (const auto& ec : sent[c])
            EXPECT_FALSE(ec) << ec.message();
        ASSERT_EQ(got[c].size(), messages.size()) << "every message once, channel " << c;
        for (std::size_t i = 0; i < messages.size(); ++i)
            EXPECT_EQ(got[c][i], messages[i]) << "in order: channel " << c << " message " << i;
    }
    EXPECT_LE(b_->link.rx_held_peak(), kBudget);
    EXPECT_GE(b_->link.rx_held_peak(), 64U * 1024) << "the flood filled the budget";
    EXPECT_EQ(b_->link.rx_held(), 0U) << "everything handed over";
}

TEST_F(LinkBudgetInMemory, AStalledChannelHoldsNoMoreThanTheBudgetAndTheOthersFlow)
{
    // Channel 0's application took one message and stopped: what the link reads ahead
    // for it stays within the budget, its sender waits, and channel 1 (vectors) and
    // channel 2 (a caller's buffer, messages four times the budget) go on.
    constexpr std::size_t kBudget = 16 * 1024;
    make(with_budget(kBudget), with_budget(kBudget));
    Channel& stalled_tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& stalled_rx = b_->link.open_channel(0, ChannelMode::message);
    Channel& vec_tx = a_->link.open_channel(1, ChannelMode::message);
    Channel& vec_rx = b_->link.open_channel(1, ChannelMode::message);
    Channel& buf_tx = a_->link.open_channel(2, ChannelMode::message);
    Channel& buf_rx = b_->link.open_channel(2, ChannelMode::message);
    start_both();

    std::vector<std::vector<std::byte>> small;
    for (unsigned i = 0; i < 300; ++i)
        small.push_back(pattern(1000, i));
    std::vector<std::vector<std::byte>> first;
    stalled_rx.async_receive([&](std::error_code ec, std::vector<std::byte> m) {
        if (!ec)
            first.push_back(std::move(m));
    });
    std::vector<std::error_code> stalled_sent;
    send_all(stalled_tx, small, stalled_sent);
    pump(1'000'000);
    ASSERT_EQ(first.size(), 1U);
    EXPECT_GT(b_->link.rx_held(), 0U) << "read ahead for the stalled channel";
    EXPECT_LE(b_->link.rx_held(), kBudget);

    std::vector<std::vector<std::byte>> mixed;
    for (std::size_t size : {500U, 12'000U, 3000U, 15'000U, 16U * 1024})
        mixed.push_back(pattern(size, static_cast<unsigned>(size)));
    std::vector<std::vector<std::byte>> vec_got;
    std::vector<std::error_code> vec_sent;
    keep_receiving(vec_rx, vec_got);
    send_all(vec_tx, mixed, vec_sent);

    const auto big = pattern(64 * 1024, 5);
    std::vector<std::byte> buffer(big.size());
    std::vector<std::error_code> buf_sent;
    std::size_t buf_got = 0;
    std::function<void()> receive_into = [&] {
        buf_rx.async_receive(std::span(buffer), [&](std::error_code ec, std::size_t n) {
            if (ec || n != big.size() || !std::equal(big.begin(), big.end(), buffer.begin()))
                return;
            ++buf_got;
            receive_into();
        });
    };
    receive_into();
    const std::vector<std::vector<std::byte>> bigs{big, big, big};
    send_all(buf_tx, bigs, buf_sent);
    pump(1'000'000);

    EXPECT_EQ(vec_got, mixed) << "the vector channel got everything, in order";
    EXPECT_EQ(vec_sent.size(), mixed.size());
    EXPECT_EQ(buf_got, 3U) << "messages of four budgets, into the caller's buffer";
    EXPECT_EQ(buf_sent.size(), 3U);
    EXPECT_LT(stalled_sent.size(), small.size()) << "the stalled channel's sender waits";
    EXPECT_LE(b_->link.rx_held_peak(), kBudget);
    EXPECT_TRUE(no_reset());

    // The stalled application comes back: every message, once, in order, none lost to
    // the room the others took meanwhile.
    keep_receiving(stalled_rx, first);
    pump(1'000'000);
    ASSERT_EQ(first.size(), small.size());
    for (std::size_t i = 0; i < small.size(); ++i)
        EXPECT_EQ(first[i], small[i]) << "message " << i;
    EXPECT_EQ(stalled_sent.size(), small.size());
    EXPECT_EQ(b_->link.rx_held(), 0U);
}

TEST_F(LinkBudgetInMemory, AMessageLargerThanTheBudgetReachesAVectorReceiverWhenNothingElseIsHeld)
{
    // The link holds messages read ahead for a stalled channel; a receiver asks for a
    // message of twelve budgets on another. Those messages are still in their ring whole:
    // they make way, the large message comes through alone, and the stalled channel's
    // messages come later, once each. No deadlock, no loss.
    constexpr std::size_t kBudget = 16 * 1024;
    make(with_budget(kBudget), with_budget(kBudget));
    Channel& stalled_tx = a_->link.open_channel(3, ChannelMode::message);
    Channel& stalled_rx = b_->link.open_channel(3, ChannelMode::message);
    Channel& tx = a_->link.open_channel(4, ChannelMode::message);
    Channel& rx = b_->link.open_channel(4, ChannelMode::message);
    start_both();
    std::vector<std::vector<std::byte>> held;
    std::vector<std::vector<std::byte>> stalled_got;
    for (unsigned i = 0; i < 20; ++i)
        held.push_back(pattern(700, i));
    std::optional<std::error_code> cancelled;
    // A receive posted and cancelled: the channel reads ahead for vectors from then on.
    const auto id = stalled_rx.async_receive(
        [&](std::error_code ec, const std::vector<std::byte>&) { cancelled = ec; });
    ASSERT_TRUE(stalled_rx.cancel(id));
    std::vector<std::error_code> stalled_sent;
    send_all(stalled_tx, held, stalled_sent);
    pump(1'000'000);
    ASSERT_GT(b_->link.rx_held(), 0U) << "messages read ahead and held";

    const auto large = pattern(200 * 1024, 11);
    std::vector<std::vector<std::byte>> got;
    std::vector<std::error_code> sent;
    keep_receiving(rx, got);
    const std::vector<std::vector<std::byte>> larges{large};
    send_all(tx, larges, sent);
    pump(1'000'000);
    ASSERT_EQ(got.size(), 1U) << "the large message came through";
    EXPECT_EQ(got[0], large);
    ASSERT_EQ(sent.size(), 1U);
    EXPECT_FALSE(sent[0]);
    EXPECT_EQ(b_->link.rx_held_peak(), large.size()) << "alone: nothing else held with it";
    EXPECT_TRUE(no_reset());

    keep_receiving(stalled_rx, stalled_got);
    pump(1'000'000);
    EXPECT_EQ(stalled_got, held) << "the messages that made way, once each, in order";
    EXPECT_EQ(b_->link.rx_held(), 0U);
}

TEST_F(LinkBudgetInMemory, TheFirstReceiverWaitingForRoomHasItKeptUntilItIsCancelled)
{
    // Rings of 8064 bytes. Channel 1's message (12 KiB of a 16 KiB budget) is half in:
    // its sender stopped. Channel 2 asks for 8 KiB, which does not fit: it waits, and the
    // room it needs is kept, so channel 3's 2 KiB (which would fit on its own) waits too.
    // Cancelling channel 2's receive gives the room to channel 3.
    constexpr std::size_t kBudget = 16 * 1024;
    LinkOptions o = with_budget(kBudget);
    o.dmb_size = 64 * 1024;
    make(o, o);
    std::array<Channel*, 4> tx{}, rx{};
    for (uint32_t c = 1; c < 4; ++c) {
        tx[c] = &a_->link.open_channel(c, ChannelMode::message);
        rx[c] = &b_->link.open_channel(c, ChannelMode::message);
    }
    start_both();
    const auto partial = pattern(12 * 1024, 1);
    const auto wants = pattern(8 * 1024, 2);
    const auto fits = pattern(2 * 1024, 3);
    std::array<std::vector<std::vector<std::byte>>, 4> got;
    std::array<std::vector<std::error_code>, 4> sent;
    keep_receiving(*rx[1], got[1]);
    tx[1]->async_send(partial, [&](std::error_code ec) { sent[1].push_back(ec); });
    a_->port.hung = true;  // what is in the ring now is all of channel 1's message for a while
    pump();
    ASSERT_EQ(b_->link.rx_held(), partial.size()) << "charged whole at its first piece";
    ASSERT_TRUE(got[1].empty());

    std::optional<std::error_code> cancelled;
    const auto id = rx[2]->async_receive(
        [&](std::error_code ec, const std::vector<std::byte>&) { cancelled = ec; });
    tx[2]->async_send(wants, [&](std::error_code ec) { sent[2].push_back(ec); });
    keep_receiving(*rx[3], got[3]);
    tx[3]->async_send(fits, [&](std::error_code ec) { sent[3].push_back(ec); });
    pump();
    EXPECT_FALSE(cancelled);
    EXPECT_TRUE(got[3].empty()) << "room kept for the receiver that waited first";
    EXPECT_EQ(b_->link.rx_held(), partial.size());

    ASSERT_TRUE(rx[2]->cancel(id));
    pump();
    EXPECT_EQ(cancelled, std::make_error_code(std::errc::operation_canceled));
    ASSERT_EQ(got[3].size(), 1U) << "the kept room went to the next";
    EXPECT_EQ(got[3][0], fits);

    // The sender goes on: channel 1 completes, and channel 2's message, still in its ring,
    // reaches the next receive.
    a_->port.hung = false;
    a_->port.signalled = true;
    keep_receiving(*rx[2], got[2]);
    pump();
    ASSERT_EQ(got[1].size(), 1U);
    EXPECT_EQ(got[1][0], partial);
    ASSERT_EQ(got[2].size(), 1U);
    EXPECT_EQ(got[2][0], wants);
    for (uint32_t c = 1; c < 4; ++c)
        EXPECT_EQ(sent[c], std::vector<std::error_code>{std::error_code{}}) << "channel " << c;
    EXPECT_EQ(b_->link.rx_held(), 0U);
    EXPECT_LE(b_->link.rx_held_peak(), kBudget);
    EXPECT_TRUE(no_reset());
}

TEST_F(LinkBudgetInMemory, ABudgetOfNothingIsRefused)
{
    LinkOptions o;
    o.rx_budget = 0;
    EXPECT_EQ(o.validate().error(), errc::bad_argument);
    o.rx_budget = 1;
    EXPECT_TRUE(o.validate());
}

TEST_F(LinkBudgetInMemory, ClosingAChannelGivesBackWhatItsReadAheadHeld)
{
    // Messages read ahead for channel 0 hold room; its application closes the channel
    // instead of taking them. The room comes back: a close must not shrink the budget
    // of the link's other channels for the rest of the epoch.
    constexpr std::size_t kBudget = 16 * 1024;
    make(with_budget(kBudget), with_budget(kBudget));
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    start_both();
    const auto id = rx.async_receive([](std::error_code, const std::vector<std::byte>&) {});
    ASSERT_TRUE(rx.cancel(id));  // the channel reads ahead for vectors from then on
    std::vector<std::vector<std::byte>> messages;
    for (unsigned i = 0; i < 8; ++i)
        messages.push_back(pattern(1000, i));
    std::vector<std::error_code> sent;
    send_all(tx, messages, sent);
    pump(1'000'000);
    ASSERT_GT(b_->link.rx_held(), 0U) << "read ahead";
    rx.close();
    pump(1'000'000);
    EXPECT_EQ(b_->link.rx_held(), 0U) << "given back at the close";
    EXPECT_TRUE(no_reset());
}

TEST_F(LinkBudgetInMemory, ReadAheadMakesWayOnlyAfterTheLastEndOfStreamItHolds)
{
    // Channel 0 read ahead a message, the peer's end of stream and two messages of the
    // peer's next stream. A receiver on channel 1 needs room: only the two messages after
    // the end of stream may be dropped and read again (the mark before them is passed,
    // and its bytes are no record). Everything then arrives once, in order, with the end
    // of stream between, and the link is never reset.
    constexpr std::size_t kBudget = 16 * 1024;
    make(with_budget(kBudget), with_budget(kBudget));
    Channel& tx = a_->link.open_channel(0, ChannelMode::message);
    Channel& rx = b_->link.open_channel(0, ChannelMode::message);
    Channel& big_tx = a_->link.open_channel(1, ChannelMode::message);
    Channel& big_rx = b_->link.open_channel(1, ChannelMode::message);
    start_both();
    std::vector<std::byte> first;
    rx.async_receive([&](std::error_code ec, std::vector<std::byte> m) {
        if (!ec)
            first = std::move(m);
    });
    const auto m0 = pattern(3000, 1);
    const auto m1 = pattern(3000, 2);
    const auto m2 = pattern(3000, 3);
    const auto m3 = pattern(3000, 4);
    std::vector<std::error_code> sent;
    send_all(tx, {m0, m1}, sent);
    pump(1'000'000);
    ASSERT_EQ(first, m0);
    tx.close();
    pump(1'000'000);
    (void)a_->link.open_channel(0, ChannelMode::message);
    send_all(tx, {m2, m3}, sent);
    pump(1'000'000);
    const std::size_t held = b_->link.rx_held();
    ASSERT_EQ(held, 3U * 3000) << "m1, the end of stream and m2, m3 read ahead";

    // 12 KiB: fits once m2 and m3 make way (3000 + 12288 <= 16384), not beside all three.
    const auto big = pattern(12 * 1024, 9);
    std::vector<std::vector<std::byte>> big_got;
    keep_receiving(big_rx, big_got);
    std::vector<std::error_code> big_sent;
    send_all(big_tx, {big}, big_sent);
    pump(1'000'000);
    ASSERT_EQ(big_got.size(), 1U) << "room made by the messages after the end of stream";
    EXPECT_EQ(big_got[0], big);
    EXPECT_TRUE(no_reset());

    std::vector<std::pair<std::error_code, std::vector<std::byte>>> rest;
    std::function<void()> next = [&] {
        rx.async_receive([&](std::error_code ec, std::vector<std::byte> m) {
            rest.emplace_back(ec, std::move(m));
            if (rest.size() < 4)
                next();
        });
    };
    next();
    pump(1'000'000);
    ASSERT_EQ(rest.size(), 4U);
    EXPECT_FALSE(rest[0].first);
    EXPECT_EQ(rest[0].second, m1);
    EXPECT_EQ(rest[1].first, make_error_code(errc::end_of_stream));
    EXPECT_FALSE(rest[2].first);
    EXPECT_EQ(rest[2].second, m2);
    EXPECT_FALSE(rest[3].first);
    EXPECT_EQ(rest[3].second, m3);
    EXPECT_TRUE(no_reset());
    EXPECT_EQ(b_->link.rx_held(), 0U);
}

}  // namespace
}  // namespace ism::link::test
