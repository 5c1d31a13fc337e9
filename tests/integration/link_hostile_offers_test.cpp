// SPDX-License-Identifier: MIT
// Suite LinkTwoProcessHostile; its fixture, the hostile peer, is in hostile_peer.hpp.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// OFFER and RESET events: refused, garbage, from a stranger, for another epoch, for a
// DMB that is too small, missing or smaller than claimed, floods and random events
// (docs/protocol.md sections 3 and 7).
#include "hostile_peer.hpp"

namespace ism::test::hostile {
namespace {

// ---- OFFERs --------------------------------------------------------------------------------

TEST_F(LinkTwoProcessHostile, OfferWithNoCommonVersion)
{
    ASSERT_NO_FATAL_FAILURE(new_own_end());
    const auto victim_token = offered_token();
    ASSERT_TRUE(victim_token);
    Offer o = our_offer();
    o.min_version = kProtocolVersion + 1;
    o.max_version = kProtocolVersion + 2;
    send_offer(o.pack());
    ASSERT_NO_FATAL_FAILURE(expect_offer_refused(1, *victim_token));
    // It does not come up with us, and keeps running.
    idle(500ms);
    EXPECT_EQ(count_lines("up "), 0U);
    ASSERT_NO_FATAL_FAILURE(assert_alive());
    // An honest OFFER afterwards is taken.
    ASSERT_NO_FATAL_FAILURE(bring_up());
}

TEST_F(LinkTwoProcessHostile, GarbageOfferIsIgnored)
{
    ASSERT_NO_FATAL_FAILURE(new_own_end());
    const uint64_t good = our_offer().pack();
    send_offer(good | (uint64_t{1} << 60));                             // reserved bits
    send_offer(good & ~uint64_t{0xFFFF0000});                           // epoch 0
    send_offer((good & ~uint64_t{0xFFFF}) | 0x0201);                    // min above max
    send_offer((good & ~(uint64_t{0xFF} << 48)) | uint64_t{40} << 48);  // DMB size 2^40
    for (int i = 0; i < 4; ++i) {
        const auto line = expect_line("offer_refused ", 5s);
        ASSERT_TRUE(line) << "offer " << i << " was not refused";
    }
    // None of them is answered with a RESET (there is no one to answer), or taken.
    idle(300ms);
    EXPECT_FALSE(has_event(kEventReset, any_event));
    EXPECT_EQ(count_lines("up "), 0U);
    ASSERT_NO_FATAL_FAILURE(assert_alive());
    ASSERT_NO_FATAL_FAILURE(bring_up());
}

TEST_F(LinkTwoProcessHostile, OfferFromAStrangerIsIgnored)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    auto file = sim::open_function({.fabric = fabric_, .name = "stranger"});
    ASSERT_TRUE(file) << file.error().message();
    auto stranger = device::IsmDevice::open(std::move(*file));
    ASSERT_TRUE(stranger) << stranger.error().message();
    auto dmb = (*stranger)->register_dmb(kOwnDmbSize, victim_gid_);
    ASSERT_TRUE(dmb);
    const Offer o{dmb->token, 0x1234, kProtocolVersion, kProtocolVersion, kOwnDmbSize};
    ASSERT_TRUE((*stranger)->signal_event(victim_gid_, kEventOffer, o.pack()));
    // A RESET naming our token and epoch, from the wrong GID.
    ASSERT_TRUE((*stranger)->signal_event(victim_gid_, kEventReset,
                                          own_.token | (uint64_t{epoch_} << 16) | 2));
    idle(500ms);
    EXPECT_EQ(count_lines("down"), 0U);
    EXPECT_EQ(count_lines("offer_refused"), 0U);
    EXPECT_EQ(count_lines("reset_received"), 0U);
    EXPECT_EQ(count_lines("up "), 1U);
    ASSERT_NO_FATAL_FAILURE(expect_still_up());
}

TEST_F(LinkTwoProcessHostile, OfferWithADmbTooSmallForTheRings)
{
    ASSERT_NO_FATAL_FAILURE(new_own_end());
    const auto victim_token = offered_token();
    ASSERT_TRUE(victim_token);
    Offer o = our_offer();
    o.dmb_size = std::size_t{16} << 10;  // 16 rings of less than 4096 bytes
    send_offer(o.pack());
    ASSERT_NO_FATAL_FAILURE(expect_offer_refused(2, *victim_token));
    ASSERT_NO_FATAL_FAILURE(assert_alive());
    ASSERT_NO_FATAL_FAILURE(bring_up());
}

TEST_F(LinkTwoProcessHostile, OfferForADmbThatDoesNotExist)
{
    ASSERT_NO_FATAL_FAILURE(new_own_end());
    Offer o = our_offer();
    o.token = uint64_t{0xFFF7} << 32;  // the token form, but nobody's DMB
    send_offer(o.pack());
    idle(300ms);
    EXPECT_EQ(count_lines("up "), 0U);
    ASSERT_NO_FATAL_FAILURE(assert_alive());
    ASSERT_NO_FATAL_FAILURE(bring_up());
}

TEST_F(LinkTwoProcessHostile, OfferClaimingALargerDmbThanRegistered)
{
    // We offer 1 MiB but registered 256 KiB: the victim's rings for us reach past our DMB,
    // so its first store there fails, which is peer loss: down, and a new epoch.
    ASSERT_NO_FATAL_FAILURE(bring_up(kChannels, std::size_t{1} << 20));
    const VictimEnd old = vp_;
    const uint32_t c = kChannels - 1;
    ASSERT_NO_FATAL_FAILURE(send_message(c, link_peer::make_message(c, 1, 64)));
    const auto line = expect_line("down ", 5s);
    ASSERT_TRUE(line) << "the victim did not notice its store failing";
    EXPECT_EQ(count_lines("reset_sent "), 0U);
    ASSERT_NO_FATAL_FAILURE(expect_fresh_offer(old));
    ASSERT_NO_FATAL_FAILURE(assert_alive());
    ASSERT_NO_FATAL_FAILURE(bring_up());
}

TEST_F(LinkTwoProcessHostile, OfferFloodWithChangingEpochs)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    // Far more than the victim's event queue holds; every one names a new incarnation.
    for (int i = 0; i < 300; ++i) {
        Offer o = our_offer();
        o.epoch = static_cast<uint16_t>(1 + rng_() % 0xFFFE);
        (void)dev_->signal_event(victim_gid_, kEventOffer, o.pack());
        if (i % 16 == 0)
            pump(0ms);
    }
    idle(300ms);
    ASSERT_NO_FATAL_FAILURE(assert_alive());
    ASSERT_NO_FATAL_FAILURE(bring_up());
    EXPECT_EQ(victim_dmbs(), 1U);
}

TEST_F(LinkTwoProcessHostile, RandomEventsFromThePeer)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    const auto seed = rng_();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const auto until = Clock::now() + 1s;
    std::size_t sent = 0;
    while (Clock::now() < until) {
        uint64_t info = rng();
        switch (rng() % 4) {
            case 0:  // our token, anything else random
                info = own_.token | (info & 0xFFFF'FFFF);
                break;
            case 1:  // the victim's token
                info = vp_.token | (info & 0xFFFF'FFFF);
                break;
            case 2:  // a well-formed OFFER of ours with a random epoch and versions
                info = (info & 0xFFFF'FFFF) | own_.token | (uint64_t{18} << 48);
                break;
            default:
                break;
        }
        const uint32_t code = rng() % 3 == 0 ? static_cast<uint32_t>(rng())
                                             : (rng() % 2 == 0 ? kEventOffer : kEventReset);
        (void)dev_->signal_event(victim_gid_, code, info);
        ++sent;
        pump(1ms);
    }
    RecordProperty("events", static_cast<int>(sent));
    ASSERT_NO_FATAL_FAILURE(assert_alive());
    ASSERT_NO_FATAL_FAILURE(bring_up());
    EXPECT_EQ(victim_dmbs(), 1U);
}

// ---- RESETs --------------------------------------------------------------------------------

TEST_F(LinkTwoProcessHostile, ResetForAnotherEpochIsIgnored)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    const uint16_t wrong = static_cast<uint16_t>(epoch_ + 1);  // not our epoch
    ASSERT_TRUE(
        dev_->signal_event(victim_gid_, kEventReset, own_.token | (uint64_t{wrong} << 16) | 3));
    ASSERT_TRUE(
        dev_->signal_event(victim_gid_, kEventReset,
                           (own_.token + (uint64_t{1} << 32)) | (uint64_t{epoch_} << 16) | 3));
    idle(500ms);
    EXPECT_EQ(count_lines("down"), 0U);
    EXPECT_EQ(count_lines("reset_received"), 0U);
    ASSERT_NO_FATAL_FAILURE(expect_still_up());
}

TEST_F(LinkTwoProcessHostile, ResetFromThePeerStartsANewEpoch)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    const VictimEnd old = vp_;
    ASSERT_TRUE(
        dev_->signal_event(victim_gid_, kEventReset, own_.token | (uint64_t{epoch_} << 16) | 3));
    const auto line = expect_line("reset_received ", 5s);
    ASSERT_TRUE(line);
    EXPECT_EQ(field(*line, "reason"), 3UL) << *line;
    ASSERT_TRUE(expect_line("down ", 5s));
    ASSERT_NO_FATAL_FAILURE(expect_fresh_offer(old));
    EXPECT_FALSE(has_event(kEventReset, any_event)) << "a RESET is not answered with one";
    ASSERT_NO_FATAL_FAILURE(bring_up());
}

}  // namespace
}  // namespace ism::test::hostile
