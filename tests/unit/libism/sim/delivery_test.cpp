// SPDX-License-Identifier: MIT
// The event queue and interrupts: wrap, silent overflow, registration rules. Holding
// interrupts back: faults_test.cpp.
#include <poll.h>

#include <algorithm>

#include "sim_test_util.hpp"

namespace {

using namespace simtest;
using namespace ism;

class SimEvents : public SimPair {};
class SimInterrupts : public SimPair {};

TEST_F(SimEvents, QueueWrapsAfterFifteenEntries)
{
    b_->init();
    for (uint64_t i = 1; i <= 17; ++i) {
        ASSERT_EQ(a_->signal(b_->gid, 0x83, i), kRcSuccess);
        EXPECT_EQ(load_be({b_->ieq, 8}), (i - 1) % 15 + 1) << i;
    }
    // Entries 16 and 17 overwrote slots 0 and 1; slot 2 still holds event 3.
    EXPECT_EQ(load_be({b_->ieq + 32 + 24, 8}), 16U);
    EXPECT_EQ(load_be({b_->ieq + 32 + 32 + 24, 8}), 17U);
    EXPECT_EQ(load_be({b_->ieq + 32 + 64 + 24, 8}), 3U);
}

TEST_F(SimEvents, OverflowIsSilent)
{
    b_->init();
    for (int i = 0; i < 15; ++i)
        ASSERT_EQ(a_->signal(b_->gid, 1, 0), kRcSuccess);
    // Fifteen unread events leave idx where it started: the consumer sees nothing new.
    EXPECT_EQ(load_be({b_->ieq, 8}), 15U);
    for (int i = 0; i < 15; ++i)
        ASSERT_EQ(a_->signal(b_->gid, 1, 0), kRcSuccess);
    EXPECT_EQ(load_be({b_->ieq, 8}), 15U);
    // Nothing else in the header or the SBA reports the loss.
    EXPECT_EQ(load_be({b_->ieq + 24, 8}), 0U);
    EXPECT_EQ(byte_at(b_->sba, 0), 0xC0);
}

TEST_F(SimEvents, NoEventWithoutRegisteredQueue)
{
    // Before any registration: the event is not kept for a queue registered later.
    EXPECT_EQ(a_->signal(b_->gid, 1, 111), kRcSuccess);
    b_->init();
    EXPECT_EQ(load_be({b_->ieq, 8}), 0U);
    EXPECT_EQ(b_->irqs(), 0U);

    // After UNREG_IEQ: the memory that was the queue is not written, the SBA's summary
    // and event bits stay clear and nothing interrupts.
    ASSERT_EQ(b_->cmd(0x12).rc, kRcSuccess);
    std::fill_n(b_->ieq, 512, std::byte{0xEE});
    EXPECT_EQ(a_->signal(b_->gid, 1, 222), kRcSuccess);
    for (std::size_t i = 0; i < 512; ++i)
        ASSERT_EQ(byte_at(b_->ieq, i), 0xEE) << "byte " << i << " of the unregistered queue";
    EXPECT_EQ(byte_at(b_->sba, 0), 0);
    EXPECT_EQ(b_->irqs(), 0U);

    // Registered again (init() put the queue one page after the SBA, at the second page
    // of b's first mapping): the next event is the only one there.
    Bytes q;
    put_be(q, 0, 8, kIovaBase + 4096);
    put_be(q, 8, 8, 512);
    ASSERT_EQ(b_->cmd(0x02, q).rc, kRcSuccess);
    EXPECT_EQ(load_be({b_->ieq, 8}), 0U);
    EXPECT_EQ(a_->signal(b_->gid, 1, 333), kRcSuccess);
    EXPECT_EQ(load_be({b_->ieq, 8}), 1U);
    EXPECT_EQ(load_be({b_->ieq + 32 + 24, 8}), 333U);
    EXPECT_EQ(byte_at(b_->sba, 0), 0xC0);
    EXPECT_EQ(b_->irqs(), 1U);
}

TEST_F(SimInterrupts, FdIsPollableAndCountsInterrupts)
{
    b_->init();
    pollfd p{b_->dev->irq_fd(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0);
    ASSERT_EQ(a_->signal(b_->gid, 1, 0), kRcSuccess);
    EXPECT_EQ(::poll(&p, 1, 1000), 1);
    EXPECT_EQ(b_->irqs(), 1U);
    EXPECT_EQ(::poll(&p, 1, 0), 0);
    EXPECT_EQ(b_->irqs(), 0U);
}

TEST_F(SimInterrupts, RaisedOnSignalAndEventsOnly)
{
    a_->init();
    b_->init();
    auto [rc, tok] = b_->reg_dmb(a_->gid, 4096);
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(a_->store(tok, 0, false, 0, Bytes(8)));
    EXPECT_EQ(b_->irqs(), 0U);
    ASSERT_TRUE(a_->store(tok, 0, true, 0, Bytes(8)));
    EXPECT_EQ(b_->irqs(), 1U);
    b_->sba[0] = std::byte{0};  // the driver's scan clears s first
    ASSERT_EQ(a_->signal(b_->gid, 1, 0), kRcSuccess);
    EXPECT_EQ(b_->irqs(), 1U);
    EXPECT_EQ(a_->irqs(), 0U);
}

TEST_F(SimInterrupts, NoSecondInterruptUntilTheDriverClearsTheSummaryBit)
{
    a_->init();
    b_->init();
    auto [rc, tok] = b_->reg_dmb(a_->gid, 4096);
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(a_->store(tok, 0, true, 0, Bytes(8)));
    EXPECT_EQ(b_->irqs(), 1U);
    // s is still set: the driver has not scanned yet and will find these too.
    ASSERT_TRUE(a_->store(tok, 0, true, 0, Bytes(8)));
    ASSERT_EQ(a_->signal(b_->gid, 1, 0), kRcSuccess);
    EXPECT_EQ(b_->irqs(), 0U);
    EXPECT_EQ(byte_at(b_->sba, 0), 0xC0);
    b_->sba[0] = std::byte{0};
    ASSERT_TRUE(a_->store(tok, 0, true, 0, Bytes(8)));
    EXPECT_EQ(b_->irqs(), 1U);
}

TEST_F(SimInterrupts, NoInterruptWhileSbaIsNotRegistered)
{
    auto [rc, tok] = b_->reg_dmb(a_->gid, 4096);
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(b_->dev->enable_msi());
    ASSERT_TRUE(a_->store(tok, 0, true, 0, bytes({9})));
    EXPECT_EQ(byte_at(b_->dmb_mem.back(), 0), 9);  // the data lands
    EXPECT_EQ(b_->irqs(), 0U);
}

TEST_F(SimInterrupts, DisabledMsiRaisesNothing)
{
    a_->init();
    b_->init();
    ASSERT_TRUE(b_->dev->disable_msi());
    ASSERT_EQ(a_->signal(b_->gid, 1, 0), kRcSuccess);
    ASSERT_TRUE(b_->dev->enable_msi());
    EXPECT_EQ(b_->irqs(), 0U);
}

}  // namespace
