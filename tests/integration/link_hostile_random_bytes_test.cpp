// SPDX-License-Identifier: MIT
// Suite LinkTwoProcessHostile; its fixture, the hostile peer, is in hostile_peer.hpp.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// Everything at once: random stores into the whole of the victim's DMB.
#include "hostile_peer.hpp"

namespace ism::test::hostile {
namespace {

TEST_F(LinkTwoProcessHostile, RandomBytesIntoTheWholeDmb)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    const auto seed = rng_();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const auto pick = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
    std::size_t stores = 0;
    std::size_t handshakes = 1;
    const auto until = Clock::now() + 2s;
    while (Clock::now() < until) {
        uint64_t offset = 0;
        std::vector<std::byte> data;
        const auto kind = pick(100);
        const auto cursor_value = [&]() -> uint64_t {
            switch (pick(4)) {
                case 0:
                    return rng();
                case 1:
                    return pick(2 * uint64_t{tx_ring_});
                case 2:
                    return pick(2 * uint64_t{tx_ring_}) & ~uint64_t{7};
                default:
                    return pick(64);
            }
        };
        if (kind < 10) {  // the control block
            offset = pick(kControlBlockSize);
            data.resize(1 + pick(kControlBlockSize - offset));
            for (auto& b : data)
                b = static_cast<std::byte>(rng());
        } else if (kind < 40) {  // producer cursors
            offset = prod_offset(static_cast<uint32_t>(pick(kMaxChannels)));
            data.resize(8);
            store_be64(data, 0, cursor_value());
        } else if (kind < 55) {  // consumer cursors
            offset = cons_offset(static_cast<uint32_t>(pick(kMaxChannels)));
            data.resize(8);
            store_be64(data, 0, cursor_value());
        } else if (kind < 60) {  // the reserved area
            offset = kReservedAreaOffset + pick(kRingAreaOffset - kReservedAreaOffset);
            data.resize(1 + pick(kRingAreaOffset - offset));
            for (auto& b : data)
                b = static_cast<std::byte>(rng());
        } else if (kind < 80) {  // record headers, plausible or not
            const auto c = static_cast<uint32_t>(pick(kChannels));
            offset = ring_base(c) + (pick(tx_ring_) & ~uint64_t{7});
            const auto h = record(static_cast<uint32_t>(pick(4) == 0 ? rng() : pick(tx_ring_)),
                                  static_cast<uint8_t>(pick(4) == 0 ? rng() : pick(4)));
            data.assign(h.begin(), h.end());
            if (offset + data.size() > vp_.dmb_size)
                continue;
        } else {  // anywhere in the rings
            offset = kRingAreaOffset + pick(vp_.dmb_size - kRingAreaOffset);
            data.resize(1 + pick(std::min<uint64_t>(512, vp_.dmb_size - offset)));
            for (auto& b : data)
                b = static_cast<std::byte>(rng());
        }
        const bool signal = pick(3) != 0;
        if (store(offset, data, signal)) {
            ++stores;
        } else {
            // The victim dropped that DMB: it reset. Meet its new epoch and go on.
            ASSERT_TRUE(alive()) << test::describe_status(victim_->poll_exit());
            ASSERT_NO_FATAL_FAILURE(bring_up());
            ++handshakes;
        }
        pump(0ms);
    }
    victim_->read_lines();
    RecordProperty("stores", static_cast<int>(stores));
    RecordProperty("handshakes", static_cast<int>(handshakes));
    EXPECT_GE(count_lines("reset_sent "), 1U) << stores << " stores";
    ASSERT_TRUE(alive()) << test::describe_status(victim_->poll_exit());
    // It keeps answering OFFERs: one more handshake from a fresh end of ours.
    ASSERT_NO_FATAL_FAILURE(bring_up());
    EXPECT_TRUE(alive()) << test::describe_status(victim_->poll_exit());
    EXPECT_EQ(victim_dmbs(), 1U) << "one DMB per incarnation, none left behind";
}

}  // namespace
}  // namespace ism::test::hostile
