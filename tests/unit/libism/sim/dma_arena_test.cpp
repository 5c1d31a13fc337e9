// SPDX-License-Identifier: MIT
// A function's DMA memory, carved from its arena of the fabric file: whole pages that do
// not overlap, zeroed when reused, unmapped from the device when freed, and kept by their
// holder when the function closes.
#include "sim_test_util.hpp"

namespace {

using namespace simtest;
using namespace ism;

class SimDmaArena : public SimPair {};

bool overlap(const ism::vfio::DmaMemory& x, const ism::vfio::DmaMemory& y)
{
    return x.data() < y.data() + y.size() && y.data() < x.data() + x.size();
}

TEST_F(SimDmaArena, WholePagesThatDoNotOverlap)
{
    auto one = a_->dev->alloc_dma(1);
    auto odd = a_->dev->alloc_dma(4097);
    auto page = a_->dev->alloc_dma(4096);
    ASSERT_TRUE(one && odd && page);
    EXPECT_EQ((*one)->size(), 4096U);
    EXPECT_EQ((*odd)->size(), 8192U);
    EXPECT_EQ((*page)->size(), 4096U);
    for (const auto* m : {one->get(), odd->get(), page->get()})
        EXPECT_EQ(reinterpret_cast<uintptr_t>(m->data()) % 4096, 0U);
    EXPECT_FALSE(overlap(**one, **odd));
    EXPECT_FALSE(overlap(**one, **page));
    EXPECT_FALSE(overlap(**odd, **page));
}

TEST_F(SimDmaArena, FreedMemoryIsZeroWhenReused)
{
    auto m = a_->dev->alloc_dma(8192);
    ASSERT_TRUE(m);
    std::byte* const at = (*m)->data();
    std::fill_n(at, 8192, std::byte{0xA5});
    m->reset();
    auto again = a_->dev->alloc_dma(8192);
    ASSERT_TRUE(again);
    ASSERT_EQ((*again)->data(), at);  // the lowest free range: the same pages
    for (std::size_t i = 0; i < 8192; ++i)
        ASSERT_EQ(byte_at(at, i), 0) << i;
}

TEST_F(SimDmaArena, NeighboursMergeWhenFreed)
{
    auto x = a_->dev->alloc_dma(4096);
    auto y = a_->dev->alloc_dma(4096);
    auto z = a_->dev->alloc_dma(4096);
    ASSERT_TRUE(x && y && z);
    std::byte* const start = (*x)->data();
    x->reset();
    y->reset();
    // Two freed neighbours hold one allocation of both their sizes.
    auto both = a_->dev->alloc_dma(8192);
    ASSERT_TRUE(both);
    EXPECT_EQ((*both)->data(), start);
}

TEST_F(SimDmaArena, MoreThanTheArenaIsExhaustedNotACrash)
{
    auto big = a_->dev->alloc_dma(ism::sim::kDmaArenaSize + 1);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error(), errc::dma_exhausted);
    auto none = a_->dev->alloc_dma(0);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error(), errc::bad_argument);
    EXPECT_TRUE(a_->dev->alloc_dma(4096));  // the arena is still usable
}

TEST_F(SimDmaArena, FreedMemoryIsNoLongerMappedForTheDevice)
{
    // The device must not write into memory that was freed (and may be reused): freeing
    // drops its mappings, so the IOVA no longer translates.
    auto m = a_->dev->alloc_dma(4096);
    ASSERT_TRUE(m);
    ASSERT_TRUE(a_->dev->map_dma(**m, kIovaBase));
    m->reset();
    Bytes p;
    put_be(p, 0, 8, kIovaBase);
    EXPECT_EQ(a_->cmd(0x01, p).rc, kRcBadAddress);  // REG_SBA at the dead IOVA
}

TEST_F(SimDmaArena, DmaMemoryOutlivesItsFunction)
{
    auto m = b_->dev->alloc_dma(4096);
    ASSERT_TRUE(m);
    (*m)->data()[7] = std::byte{0x5A};
    b_.reset();
    EXPECT_EQ(std::to_integer<int>((*m)->data()[7]), 0x5A);
    // The slot's next owner does not share the orphaned pages.
    Fn c(fabric_, "c");
    auto n = c.dev->alloc_dma(4096);
    ASSERT_TRUE(n);
    (*n)->data()[7] = std::byte{0x11};
    EXPECT_EQ(std::to_integer<int>((*m)->data()[7]), 0x5A);
    m->reset();
}

}  // namespace
