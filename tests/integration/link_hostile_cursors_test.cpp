// SPDX-License-Identifier: MIT
// Suite LinkTwoProcessHostile; its fixture, the hostile peer, is in hostile_peer.hpp.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// Producer and consumer cursors (docs/protocol.md section 7, reasons 3 and 4).
#include "hostile_peer.hpp"

namespace ism::test::hostile {
namespace {

// ---- section 7, reason 3: producer cursors -------------------------------------------------

TEST_F(LinkTwoProcessHostile, ProducerCursorBeyondRing)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(set_prod(3, tx_ring_ + 8));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::producer, 3));
}

TEST_F(LinkTwoProcessHostile, ProducerCursorGoingBackwards)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    // A valid first piece of a longer message: nothing is delivered yet, and the victim
    // returns the record's room, so we know it took the cursor.
    const uint32_t c = 5;
    const auto payload = first_payload(1000, 92, std::byte{0x5A});
    ASSERT_NO_FATAL_FAILURE(put_ring(c, 0, record(100, kRecordFirst)));
    ASSERT_NO_FATAL_FAILURE(put_ring(c, kRecordHeaderSize, payload));
    const uint64_t end = kRecordHeaderSize + 104;
    ASSERT_NO_FATAL_FAILURE(set_prod(c, end));
    ASSERT_TRUE(wait_until([&] { return load_cursor(cons_offset(c)) == end; }, 5s))
        << "the victim never consumed the record";
    ASSERT_NO_FATAL_FAILURE(set_prod(c, end - 8));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::producer, c));
}

TEST_F(LinkTwoProcessHostile, BadCursorWaitingWhenTheLinkComesUp)
{
    // The cursor is in place before our control block: the victim finds it the moment
    // it comes up, from inside the handshake.
    ASSERT_NO_FATAL_FAILURE(new_own_end());
    before_control_ = [this] { (void)store_word(prod_offset(2), tx_ring_ + 64, false); };
    ASSERT_NO_FATAL_FAILURE(write_control_after_offers());
    before_control_ = nullptr;
    ASSERT_TRUE(expect_line("up ", 5s));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::producer, 2));
}

// ---- reason 4: consumer cursors ------------------------------------------------------------

TEST_F(LinkTwoProcessHostile, ConsumerCursorBeyondWhatWasSent)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(set_cons(7, 64));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::consumer, 7));
}

TEST_F(LinkTwoProcessHostile, ConsumerCursorGoingBackwards)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    const uint32_t c = 2;
    ASSERT_NO_FATAL_FAILURE(send_message(c, link_peer::make_message(c, 1, 100)));
    ASSERT_TRUE(wait_until([&] { return load_cursor(prod_offset(c)) > 0; }, 5s)) << "no echo";
    const uint64_t echoed = load_cursor(prod_offset(c));
    // Consume the echo honestly...
    ASSERT_NO_FATAL_FAILURE(set_cons(c, echoed));
    // ...and make sure the victim has read that cursor: the next message's producer
    // cursor is stored after it, and its echo comes from a poll that saw both.
    ASSERT_NO_FATAL_FAILURE(send_message(c, link_peer::make_message(c, 2, 100)));
    ASSERT_TRUE(wait_until([&] { return load_cursor(prod_offset(c)) > echoed; }, 5s))
        << "no second echo";
    ASSERT_NO_FATAL_FAILURE(set_cons(c, echoed - 8));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::consumer, c));
}

}  // namespace
}  // namespace ism::test::hostile
