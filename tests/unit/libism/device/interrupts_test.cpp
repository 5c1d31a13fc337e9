// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include "ism/byte_order.hpp"
#include "ism/device/ism_device.hpp"
#include "unit/libism/device/fake_ism_file.hpp"

namespace {

using ism::load_be;
using ism::store_be;
using ism::device::IsmDevice;
using ism::testing::FakeIsmFile;

class IsmInterrupts : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto file = std::make_unique<FakeIsmFile>();
        file_ = file.get();
        auto dev = IsmDevice::open(std::move(file));
        ASSERT_TRUE(dev);
        dev_ = std::move(*dev);
        sba_ = file_->dma_at(load_be({file_->commands.at(0).payload.data(), 8}));
        ieq_ = file_->dma_at(load_be({file_->commands.at(1).payload.data(), 8}));
        ASSERT_NE(sba_, nullptr);
        ASSERT_NE(ieq_, nullptr);
    }

    // What the device does on a store with the signal flag (docs/hardware.md 1.6, 1.7).
    void device_signals(uint32_t k, uint16_t dmbe_mask)
    {
        sba_[4 + k / 8] |= static_cast<std::byte>(0x80U >> (k % 8));
        const uint16_t old = static_cast<uint16_t>(load_be({sba_ + 256 + 2 * k, 2}));
        store_be({sba_ + 256 + 2 * k, 2}, old | dmbe_mask);
        sba_[0] |= std::byte{0x80};
    }

    // What the device does to queue an event (1.8): entry first, then the index.
    void device_queues(uint32_t type, uint32_t code, uint64_t tok, uint64_t info)
    {
        const uint64_t idx = load_be({ieq_, 8});
        const uint64_t slot = idx % 15;
        std::byte* e = ieq_ + 32 + 32 * slot;
        store_be({e, 4}, type);
        store_be({e + 4, 4}, code);
        store_be({e + 8, 8}, tok);
        store_be({e + 16, 8}, 0x1234);
        store_be({e + 24, 8}, info);
        store_be({ieq_, 8}, slot + 1);
        sba_[0] |= std::byte{0xC0};
    }

    FakeIsmFile* file_ = nullptr;
    std::unique_ptr<IsmDevice> dev_;
    std::byte* sba_ = nullptr;
    std::byte* ieq_ = nullptr;
};

TEST_F(IsmInterrupts, ReportsEachSignalledDmbOnceWithItsMask)
{
    device_signals(32, 0x1000);
    device_signals(45, 0x0800);
    device_signals(1919, 0x1000);
    device_signals(45, 0x0001);
    auto r = dev_->handle_interrupt();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->dmbs.size(), 3U);
    EXPECT_EQ(r->dmbs[0].sba_idx, 32U);
    EXPECT_EQ(r->dmbs[0].dmbe_mask, 0x1000);
    EXPECT_EQ(r->dmbs[1].sba_idx, 45U);
    EXPECT_EQ(r->dmbs[1].dmbe_mask, 0x0801);
    EXPECT_EQ(r->dmbs[2].sba_idx, 1919U);
    // Bits, masks and the summary bit are cleared.
    EXPECT_EQ(sba_[0], std::byte{0});
    for (std::size_t i = 4; i < 4096; ++i)
        ASSERT_EQ(sba_[i], std::byte{0}) << "SBA byte " << i;
    auto again = dev_->handle_interrupt();
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->dmbs.empty());
}

TEST_F(IsmInterrupts, IgnoresTheFirst32Bits)
{
    // Bits 0..31 (SBA bytes 4..7) are never DMBs, with masks or without; DMB 32, the
    // first real one, is reported next to them.
    for (uint32_t k = 0; k < 32; ++k)
        device_signals(k, 0x1000);
    device_signals(32, 0x0400);
    auto r = dev_->handle_interrupt();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->dmbs.size(), 1U);
    EXPECT_EQ(r->dmbs[0].sba_idx, 32U);
    EXPECT_EQ(r->dmbs[0].dmbe_mask, 0x0400);
}

TEST_F(IsmInterrupts, EventsArriveInOrderAcrossTheWrap)
{
    std::vector<uint64_t> seen;
    for (uint64_t round = 0; round < 4; ++round) {
        for (uint64_t i = 0; i < 10; ++i)
            device_queues(2, 0x100, 7, round * 10 + i);
        auto r = dev_->handle_interrupt();
        ASSERT_TRUE(r);
        for (const auto& ev : r->events) {
            EXPECT_EQ(ev.type, 2U);
            EXPECT_EQ(ev.code, 0x100U);
            EXPECT_EQ(ev.tok, 7U);
            EXPECT_EQ(ev.time, 0x1234U);
            seen.push_back(ev.info);
        }
    }
    ASSERT_EQ(seen.size(), 40U);
    for (uint64_t i = 0; i < 40; ++i)
        EXPECT_EQ(seen[i], i);
    EXPECT_EQ(sba_[0], std::byte{0});
}

TEST_F(IsmInterrupts, FourteenUnreadEventsAreAllReported)
{
    for (uint64_t i = 0; i < 14; ++i)
        device_queues(2, 1, 0, i);
    auto r = dev_->handle_interrupt();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->events.size(), 14U);
}

TEST_F(IsmInterrupts, FifteenUnreadEventsAreLostSilentlyAsOnHardware)
{
    // The queue has no overflow indication: a full lap looks like an empty queue. The
    // link's handshake retries because of this.
    device_queues(2, 1, 0, 1000);
    auto first = dev_->handle_interrupt();
    ASSERT_TRUE(first);
    ASSERT_EQ(first->events.size(), 1U);
    for (uint64_t i = 0; i < 15; ++i)
        device_queues(2, 1, 0, i);
    auto r = dev_->handle_interrupt();
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->events.empty());
    device_queues(2, 1, 0, 99);
    r = dev_->handle_interrupt();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->events.size(), 1U);
    EXPECT_EQ(r->events[0].info, 99U);
}

TEST_F(IsmInterrupts, ConsumesThePendingInterrupt)
{
    file_->irq_count = 3;
    ASSERT_TRUE(dev_->handle_interrupt());
    EXPECT_EQ(file_->irq_count, 0U);
}

}  // namespace
