// SPDX-License-Identifier: MIT
// Suite LinkTwoProcessHostile; its fixture, the hostile peer, is in hostile_peer.hpp.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// A peer that stops its keepalive is declared dead (docs/protocol.md section 6).
#include "hostile_peer.hpp"

namespace ism::test::hostile {
namespace {

TEST_F(LinkTwoProcessHostile, SilentPeerIsDeclaredDead)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    const VictimEnd old = vp_;
    keepalive_on_ = false;
    const auto line = expect_line("down ", 5s);  // dead after 1.5 s
    ASSERT_TRUE(line) << "a silent peer was never declared dead";
    EXPECT_EQ(count_lines("reset_sent "), 0U);
    ASSERT_NO_FATAL_FAILURE(expect_fresh_offer(old));
    ASSERT_NO_FATAL_FAILURE(bring_up());
}

}  // namespace
}  // namespace ism::test::hostile
