// SPDX-License-Identifier: MIT
// The emulated function as a VFIO device file: regions, config space, capabilities.
// Its DMA memory: dma_arena_test.cpp.
#include <poll.h>

#include "sim_test_util.hpp"

namespace {

using namespace simtest;
using ism::vfio::kRegionFlagMmap;
using ism::vfio::kRegionFlagRead;
using ism::vfio::kRegionFlagWrite;

class SimRegions : public SimPair {};

TEST_F(SimRegions, RegionsFollowTheIsmDriverLayout)
{
    auto& d = *a_->dev;
    auto info = d.device_info();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->flags, 0x1U | 0x2U | 0x80U);
    EXPECT_EQ(info->num_regions, 9U);
    EXPECT_EQ(info->num_irqs, 5U);
    auto bar0 = d.region_info(0);
    ASSERT_TRUE(bar0);
    EXPECT_EQ(bar0->offset, 0U);
    EXPECT_EQ(bar0->size, uint64_t{1} << 48);
    EXPECT_EQ(bar0->flags, kRegionFlagRead | kRegionFlagWrite);
    EXPECT_EQ(bar0->flags & kRegionFlagMmap, 0U);
    auto bar2 = d.region_info(2);
    EXPECT_EQ(bar2->offset, uint64_t{2} << 48);
    EXPECT_EQ(bar2->size, 4096U);
    auto cfg = d.region_info(7);
    EXPECT_EQ(cfg->offset, uint64_t{7} << 48);
    EXPECT_EQ(cfg->size, 256U);
    for (uint32_t i : {1U, 3U, 4U, 5U, 6U, 8U}) {
        auto r = d.region_info(i);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->size, 0U);
        EXPECT_EQ(r->flags, 0U);
    }
    auto bad = d.region_info(9);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), ism::errc::bad_region);
}

TEST_F(SimRegions, ConfigSpaceIdentifiesIsmLittleEndian)
{
    Bytes cfg(256);
    ASSERT_TRUE(a_->dev->read(a_->bar(7), cfg));
    EXPECT_EQ(byte_at(cfg.data(), 0), 0x14);
    EXPECT_EQ(byte_at(cfg.data(), 1), 0x10);
    EXPECT_EQ(byte_at(cfg.data(), 2), 0xED);
    EXPECT_EQ(byte_at(cfg.data(), 3), 0x04);
}

TEST_F(SimRegions, ConfigWritesOnlyChangeCommandBits)
{
    const uint64_t cfg = a_->bar(7);
    ASSERT_TRUE(a_->dev->write(cfg + 0, bytes({0xFF, 0xFF})));
    ASSERT_TRUE(a_->dev->write(cfg + 4, bytes({0xFF, 0xFF})));
    Bytes b(6);
    ASSERT_TRUE(a_->dev->read(cfg, b));
    EXPECT_EQ(byte_at(b.data(), 0), 0x14);
    EXPECT_EQ(byte_at(b.data(), 4), 0x06);
    EXPECT_EQ(byte_at(b.data(), 5), 0x04);
}

TEST_F(SimRegions, ZpciReportsStoreLimitInImaxstbl)
{
    Fn small(fabric_, "small", 256);
    auto z = small.dev->zpci_info();
    ASSERT_TRUE(z);
    EXPECT_EQ(z->pft, 5);
    EXPECT_EQ(z->maxstbl, 128);
    EXPECT_EQ(z->imaxstbl, 256);
    EXPECT_EQ(z->noi, 1);
    EXPECT_TRUE(z->has_group);
    EXPECT_EQ(z->start_dma, ism::sim::kDmaWindowStart);
    EXPECT_EQ(z->end_dma, ism::sim::kDmaWindowEnd);
    EXPECT_EQ(z->pchid, ism::sim::pchid_for_fabric(fabric_));
    EXPECT_GE(z->pchid, 0xFF01);
    EXPECT_LE(z->pchid, 0xFFFE);
    EXPECT_EQ(ism::sim::pchid_for_fabric("default"), ism::sim::kDefaultPchid);
}

TEST_F(SimRegions, IrqInfoHasOneMsiVector)
{
    auto msi = a_->dev->irq_info(1);
    ASSERT_TRUE(msi);
    EXPECT_EQ(msi->count, 1U);
    EXPECT_EQ(msi->flags & 1U, 1U);
    EXPECT_EQ(a_->dev->irq_fd(), -1);
    ASSERT_TRUE(a_->dev->enable_msi());
    EXPECT_GE(a_->dev->irq_fd(), 0);
}

TEST_F(SimRegions, Bar0ReadsAreRefused)
{
    Bytes b(8);
    auto r = a_->dev->read(a_->bar(0), b);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
}

TEST_F(SimRegions, Bar2ReadsAnyLengthAndAlignment)
{
    auto resp = a_->cmd(0x03);
    ASSERT_EQ(resp.rc, 0);
    Bytes one(1);
    ASSERT_TRUE(a_->dev->read(a_->bar(2) + 15, one));
    EXPECT_EQ(std::to_integer<uint64_t>(one[0]), a_->gid & 0xFF);
    Bytes three(3);
    ASSERT_TRUE(a_->dev->read(a_->bar(2) + 5, three));
    EXPECT_EQ(load_be({three.data(), 3}), 0x000010U);  // ret 0, len 16
    Bytes over(8);
    EXPECT_FALSE(a_->dev->read(a_->bar(2) + 4092, over));
}

TEST_F(SimRegions, Bar2StoreRulesAreTheDrivers)
{
    Fn small(fabric_, "small", 64);
    const uint64_t b2 = small.bar(2);
    auto too_long = small.dev->write(b2 + 8, Bytes(65));
    ASSERT_FALSE(too_long);
    EXPECT_EQ(too_long.error(), std::errc::invalid_argument);
    auto past_end = small.dev->write(b2 + 4090, Bytes(8));
    ASSERT_FALSE(past_end);
    EXPECT_EQ(past_end.error(), std::errc::invalid_argument);
    EXPECT_FALSE(small.dev->write(uint64_t{3} << 48, Bytes(8)));
}

TEST_F(SimRegions, DmaMappingsStayInTheWindow)
{
    auto m = a_->dev->alloc_dma(100);
    ASSERT_TRUE(m);
    EXPECT_EQ((*m)->size(), 4096U);
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*m)->data()) % 4096, 0U);
    EXPECT_FALSE(a_->dev->map_dma(**m, 0x1000));
    EXPECT_FALSE(a_->dev->map_dma(**m, kIovaBase + 1));
    ASSERT_TRUE(a_->dev->map_dma(**m, kIovaBase));
    auto again = a_->dev->map_dma(**m, kIovaBase);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), std::errc::file_exists);
    EXPECT_TRUE(a_->dev->unmap_dma(kIovaBase, 4096));
}

}  // namespace
