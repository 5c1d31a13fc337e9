// SPDX-License-Identifier: MIT
// Suites LinkRing and LinkRingHostile.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
#include "ism/link/ring.hpp"

#include <gtest/gtest.h>

namespace {

using namespace ism::link;
using ism::errc;

TEST(LinkRing, ReaderFollowsTheProducerAcrossTheWrap)
{
    RxRing rx(4096);
    ASSERT_TRUE(rx.update_producer(4000));
    EXPECT_EQ(rx.available(), 4000U);
    rx.consume(4000);
    rx.release_all();
    (void)rx.publish();
    ASSERT_TRUE(rx.update_producer(4000 + 200));
    EXPECT_EQ(rx.read_offset(), 4000U);
    EXPECT_EQ(rx.contiguous(), 96U);  // up to the ring's end, then from 0
    rx.consume(96);
    EXPECT_EQ(rx.read_offset(), 0U);
    EXPECT_EQ(rx.contiguous(), 104U);
}

TEST(LinkRingHostile, ProducerCursorGoingBackwardsIsRefused)
{
    RxRing rx(4096);
    ASSERT_TRUE(rx.update_producer(100));
    EXPECT_EQ(rx.update_producer(99).error(), errc::bad_cursor);
    EXPECT_EQ(rx.available(), 100U);  // state unchanged
}

TEST(LinkRingHostile, ProducerCursorPastCapacityIsRefused)
{
    RxRing rx(4096);
    EXPECT_EQ(rx.update_producer(4097).error(), errc::bad_cursor);
    ASSERT_TRUE(rx.update_producer(4096));
    rx.consume(10);
    rx.release_all();
    // Read but not yet returned: the writer has no room yet.
    EXPECT_EQ(rx.update_producer(4096 + 1).error(), errc::bad_cursor);
    (void)rx.publish();
    EXPECT_EQ(rx.update_producer(4096 + 11).error(), errc::bad_cursor);
    EXPECT_TRUE(rx.update_producer(4096 + 10));
    EXPECT_EQ(rx.update_producer(~uint64_t{0}).error(), errc::bad_cursor);
}

TEST(LinkRing, ConsumerCursorIsReturnedEveryQuarterRingOrWhenDrained)
{
    RxRing rx(4096);
    ASSERT_TRUE(rx.update_producer(4096));
    rx.consume(1000);
    rx.release_all();
    EXPECT_FALSE(rx.should_publish());
    rx.consume(24);
    rx.release_all();
    EXPECT_TRUE(rx.should_publish());
    EXPECT_EQ(rx.publish(), 1024U);
    EXPECT_FALSE(rx.should_publish());
    rx.consume(3072);  // drained: the writer may be waiting
    rx.release_all();
    EXPECT_TRUE(rx.should_publish());
}

TEST(LinkRing, CreditWaitsUntilTheApplicationHasTheBytes)
{
    RxRing rx(4096);
    ASSERT_TRUE(rx.update_producer(4096));
    rx.consume(4096);  // read into a message nobody has received yet
    EXPECT_FALSE(rx.should_publish());
    rx.release(1000);
    rx.release(500);  // never backwards
    EXPECT_FALSE(rx.should_publish());
    rx.release(8192);  // clamped to what was read
    EXPECT_TRUE(rx.should_publish());
    EXPECT_EQ(rx.publish(), 4096U);
}

TEST(LinkRing, ConsumeNeverPassesTheProducer)
{
    RxRing rx(4096);
    ASSERT_TRUE(rx.update_producer(10));
    rx.consume(1000);
    EXPECT_EQ(rx.available(), 0U);
    EXPECT_EQ(rx.read_offset(), 10U);
}

TEST(LinkRing, WriterSpaceComesBackWithCredit)
{
    TxRing tx(4096);
    EXPECT_EQ(tx.free_space(), 4096U);
    tx.produce(5000);  // clamped to the room there is
    EXPECT_EQ(tx.producer(), 4096U);
    EXPECT_EQ(tx.free_space(), 0U);
    EXPECT_EQ(tx.consumer(), 0U);
    tx.mark_published();
    ASSERT_TRUE(tx.update_consumer(1024));
    EXPECT_EQ(tx.free_space(), 1024U);
    EXPECT_EQ(tx.write_offset(), 0U);
    EXPECT_EQ(tx.consumer(), 1024U);
}

TEST(LinkRingHostile, ConsumerCursorBeyondWhatWasProducedIsRefused)
{
    TxRing tx(4096);
    tx.produce(100);
    tx.mark_published();
    EXPECT_EQ(tx.update_consumer(101).error(), errc::bad_cursor);
    ASSERT_TRUE(tx.update_consumer(50));
    EXPECT_EQ(tx.update_consumer(49).error(), errc::bad_cursor);
    EXPECT_EQ(tx.free_space(), 4046U);
}

TEST(LinkRingHostile, ConsumerCursorBeyondWhatWasPublishedIsRefused)
{
    // Written but not yet published: the peer cannot have read it.
    TxRing tx(4096);
    tx.produce(100);
    tx.mark_published();
    tx.produce(200);
    EXPECT_EQ(tx.published(), 100U);
    EXPECT_EQ(tx.update_consumer(150).error(), errc::bad_cursor);
    ASSERT_TRUE(tx.update_consumer(100));
    tx.mark_published();
    EXPECT_TRUE(tx.update_consumer(300));
}

}  // namespace
