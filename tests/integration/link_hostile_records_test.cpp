// SPDX-License-Identifier: MIT
// Suite LinkTwoProcessHostile; its fixture, the hostile peer, is in hostile_peer.hpp.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// Records in the rings: headers, padding, pieces of a message, and the largest message
// (docs/protocol.md section 7, reason 5).
#include "hostile_peer.hpp"

namespace ism::test::hostile {
namespace {

TEST_F(LinkTwoProcessHostile, RecordLengthPastProducer)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(put_ring(1, 0, record(100, kRecordFirst | kRecordLast)));
    ASSERT_NO_FATAL_FAILURE(set_prod(1, 16));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 1));
}

TEST_F(LinkTwoProcessHostile, RecordWithReservedBitsSet)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    auto h = record(8, kRecordFirst | kRecordLast);
    h[6] = std::byte{0x40};
    ASSERT_NO_FATAL_FAILURE(put_ring(4, 0, h));
    ASSERT_NO_FATAL_FAILURE(set_prod(4, 16));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 4));
}

TEST_F(LinkTwoProcessHostile, RecordWithUnknownFlag)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(put_ring(4, 0, record(8, kRecordFirst | kRecordLast | 0x80)));
    ASSERT_NO_FATAL_FAILURE(set_prod(4, 16));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 4));
}

TEST_F(LinkTwoProcessHostile, RecordLastWithoutFirst)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(put_ring(6, 0, record(8, kRecordLast)));
    ASSERT_NO_FATAL_FAILURE(set_prod(6, 16));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 6));
}

TEST_F(LinkTwoProcessHostile, RecordFirstInsideMessage)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(put_ring(8, 0, record(16, kRecordFirst)));
    ASSERT_NO_FATAL_FAILURE(put_ring(8, kRecordHeaderSize, first_payload(100, 8)));
    ASSERT_NO_FATAL_FAILURE(put_ring(8, 24, record(8, kRecordFirst | kRecordLast)));
    ASSERT_NO_FATAL_FAILURE(set_prod(8, 40));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 8));
}

TEST_F(LinkTwoProcessHostile, RecordEmptyPieceInsideMessage)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(put_ring(9, 0, record(16, kRecordFirst)));
    ASSERT_NO_FATAL_FAILURE(put_ring(9, kRecordHeaderSize, first_payload(100, 8)));
    ASSERT_NO_FATAL_FAILURE(put_ring(9, 24, record(0, kRecordLast)));
    ASSERT_NO_FATAL_FAILURE(set_prod(9, 32));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 9));
}

TEST_F(LinkTwoProcessHostile, PaddingThatStopsShortOfTheRingEnd)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    // Padding fills the rest of the ring; a producer cursor just past its header does not.
    ASSERT_NO_FATAL_FAILURE(put_ring(12, 0, record(0, 0)));
    ASSERT_NO_FATAL_FAILURE(set_prod(12, 8));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 12));
}

TEST_F(LinkTwoProcessHostile, RecordLongerThanRing)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(put_ring(10, 0, record(tx_ring_, kRecordFirst | kRecordLast)));
    ASSERT_NO_FATAL_FAILURE(set_prod(10, tx_ring_));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 10));
}

TEST_F(LinkTwoProcessHostile, CursorStopsInsideRecordHeader)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    // A first piece (delivers nothing), then a producer cursor 4 bytes into the next header.
    const auto payload = first_payload(100, 8);
    ASSERT_NO_FATAL_FAILURE(put_ring(11, 0, record(16, kRecordFirst)));
    ASSERT_NO_FATAL_FAILURE(put_ring(11, kRecordHeaderSize, payload));
    ASSERT_NO_FATAL_FAILURE(put_ring(11, 24, record(8, kRecordLast)));
    ASSERT_NO_FATAL_FAILURE(set_prod(11, 28));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 11));
}

TEST_F(LinkTwoProcessHostile, MessageLongerThan16MiB)
{
    // One channel announced, so that our one ring in the victim's DMB is as large as it
    // gets. A first piece announcing 16 MiB is taken, and every piece up to the total
    // (a message above the victim's budget, for a receiver while nothing else is held);
    // a LAST piece going past it is one byte too long.
    ASSERT_NO_FATAL_FAILURE(bring_up(1));
    const std::size_t piece = 64 << 10;
    ASSERT_LE(piece + kRecordHeaderSize, tx_ring_);
    ASSERT_NO_FATAL_FAILURE(
        send_piece(0, first_payload(kMaxMessageSize, piece - kRecordTotalSize), kRecordFirst));
    std::size_t sent = piece - kRecordTotalSize;
    std::vector<std::byte> payload(piece, std::byte{0x33});
    for (; kMaxMessageSize - sent > piece; sent += piece)
        ASSERT_NO_FATAL_FAILURE(send_piece(0, payload, 0));
    ASSERT_TRUE(wait_until([&] { return load_cursor(cons_offset(0)) == tx_prod_[0]; }, 5s))
        << "the victim did not take the pieces of a 16 MiB message";
    EXPECT_EQ(count_lines("reset_sent "), 0U) << "16 MiB is not too long yet";
    ASSERT_NO_FATAL_FAILURE(
        send_piece(0, std::span(payload).first(kMaxMessageSize - sent + 8), kRecordLast));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 0));
}

TEST_F(LinkTwoProcessHostile, FirstPieceWithoutItsTotal)
{
    // A version-2 first piece: 8 bytes of data where the total belongs, none after it.
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(send_piece(2, std::vector<std::byte>(8, std::byte{0}), kRecordFirst));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 2));
}

TEST_F(LinkTwoProcessHostile, FirstPieceAnnouncingMoreThanMaxMessage)
{
    // Refused at the first piece: the victim never waits for, nor allocates, the rest.
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(send_piece(3, first_payload(kMaxMessageSize + 1, 64), kRecordFirst));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 3));
}

TEST_F(LinkTwoProcessHostile, FirstPieceAnnouncingNoMoreThanItCarries)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(send_piece(5, first_payload(64, 64), kRecordFirst));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 5));
}

TEST_F(LinkTwoProcessHostile, LastPieceShortOfTheTotal)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(send_piece(7, first_payload(1000, 400), kRecordFirst));
    ASSERT_NO_FATAL_FAILURE(send_piece(7, std::vector<std::byte>(599, std::byte{1}), kRecordLast));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 7));
}

TEST_F(LinkTwoProcessHostile, PieceReachingTheTotalWithoutLast)
{
    ASSERT_NO_FATAL_FAILURE(bring_up());
    ASSERT_NO_FATAL_FAILURE(send_piece(13, first_payload(1000, 400), kRecordFirst));
    ASSERT_NO_FATAL_FAILURE(send_piece(13, std::vector<std::byte>(600, std::byte{1}), 0));
    ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::record, 13));
}

}  // namespace
}  // namespace ism::test::hostile
