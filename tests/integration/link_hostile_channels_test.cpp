// SPDX-License-Identifier: MIT
// Suite LinkTwoProcessHostile; its fixture, the hostile peer, is in hostile_peer.hpp.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// Channels the victim does not have (docs/protocol.md section 7, reason 6).
#include "hostile_peer.hpp"

namespace ism::test::hostile {
namespace {

TEST_F(LinkTwoProcessHostile, DataOnChannelBeyondAnnouncedCount)
{
    ASSERT_NO_FATAL_FAILURE(bring_up(4));
    ASSERT_NO_FATAL_FAILURE(set_prod(10, 8));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::channel, 10));
}

TEST_F(LinkTwoProcessHostile, ConsumerCursorOnChannelTheVictimDoesNotHave)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(set_cons(20, 8));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::channel, 20));
}

}  // namespace
}  // namespace ism::test::hostile
