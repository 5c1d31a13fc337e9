// SPDX-License-Identifier: MIT
// BAR0 stores: encoding, SBA bits and masks, the store rules, untorn 8-byte words.
#include <atomic>
#include <thread>

#include "ism/sim/faults.hpp"
#include "sim_test_util.hpp"

namespace {

using namespace simtest;
using namespace ism;

class SimStore : public SimPair {
protected:
    void SetUp() override
    {
        SimPair::SetUp();
        a_->init();
        b_->init();
        auto [rc, tok] = b_->reg_dmb(a_->gid, 65536, 40);  // b's DMB, written by a
        ASSERT_EQ(rc, kRcSuccess);
        tok_ = tok;
        dmb_ = b_->dmb_mem.back();
    }

    void expect_eio(const ism::Result<void>& r)
    {
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), std::error_code(EIO, std::system_category()));
    }

    void expect_einval(const ism::Result<void>& r)
    {
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), std::error_code(EINVAL, std::system_category()));
    }

    uint64_t tok_ = 0;
    std::byte* dmb_ = nullptr;
};

TEST_F(SimStore, DataLandsAtTheEncodedOffset)
{
    const Bytes data = bytes({1, 2, 3, 4, 5});
    ASSERT_TRUE(a_->store(tok_, 0, false, 4096 + 4001, data));
    EXPECT_EQ(byte_at(dmb_, 8097), 1);
    EXPECT_EQ(byte_at(dmb_, 8101), 5);
    EXPECT_EQ(byte_at(dmb_, 8102), 0);
    // Without the signal flag nothing is announced.
    EXPECT_EQ(byte_at(b_->sba, 0), 0);
    EXPECT_EQ(byte_at(b_->sba, 4 + 40 / 8), 0);
    EXPECT_EQ(b_->irqs(), 0U);
}

TEST_F(SimStore, SignalSetsSbaBitMaskAndSummary)
{
    ASSERT_TRUE(a_->store(tok_, 0, true, 0, Bytes(16, std::byte{7})));
    const std::byte* sba = b_->sba;
    EXPECT_EQ(byte_at(sba, 0), 0x80);                       // s only, no event
    EXPECT_EQ(byte_at(sba, 4 + 40 / 8), 0x80 >> (40 % 8));  // DMB 40, MSB-first
    for (std::size_t i = 4; i < 244; ++i) {
        if (i != 4 + 40 / 8) {
            EXPECT_EQ(byte_at(sba, i), 0) << i;
        }
    }
    EXPECT_EQ(load_be({sba + 256 + 2 * 40, 2}), 0x1000U);  // ror16(0x1000, 0)
    EXPECT_EQ(b_->irqs(), 1U);
}

TEST_F(SimStore, DmbeIndexMaskRotates)
{
    ASSERT_TRUE(a_->store(tok_, 3, true, 0, Bytes(8)));
    EXPECT_EQ(load_be({b_->sba + 256 + 80, 2}), 0x0200U);
    ASSERT_TRUE(a_->store(tok_, 15, true, 0, Bytes(8)));
    EXPECT_EQ(load_be({b_->sba + 256 + 80, 2}), 0x0200U | 0x2000U);
    expect_eio(a_->store(tok_, 16, true, 0, Bytes(8)));
}

TEST_F(SimStore, StoreOverLimitIsEinval)
{
    Fn c(fabric_, "c", 256);
    auto [rc, tok] = b_->reg_dmb(c.gid, 8192);
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(c.store(tok, 0, false, 0, Bytes(256)));
    expect_einval(c.store(tok, 0, false, 0, Bytes(257)));
    expect_einval(a_->store(tok_, 0, false, 0, Bytes(4097)));
    expect_einval(a_->store(tok_, 0, false, 0, Bytes()));
}

TEST_F(SimStore, StoreCrossingFourKiBIsEinval)
{
    expect_einval(a_->store(tok_, 0, false, 4000, Bytes(97)));
    ASSERT_TRUE(a_->store(tok_, 0, false, 4000, Bytes(96)));
    expect_einval(a_->dev->write((uint64_t{1} << 48) - 8, Bytes(16)));
}

TEST_F(SimStore, UnknownTokenIsEio)
{
    expect_eio(a_->store(tok_ + (uint64_t{1} << 32), 0, false, 0, Bytes(8)));
    expect_eio(a_->store(0, 0, false, 0, Bytes(8)));
}

TEST_F(SimStore, WrongWriterGidIsEio)
{
    expect_eio(b_->store(tok_, 0, false, 0, Bytes(8)));
    Fn c(fabric_, "c");
    expect_eio(c.store(tok_, 0, true, 0, Bytes(8)));
    EXPECT_EQ(byte_at(b_->sba, 0), 0);
}

TEST_F(SimStore, BeyondTheDmbIsEio)
{
    auto [rc, tok] = b_->reg_dmb(a_->gid, 6000);  // the length need not be whole pages
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(a_->store(tok, 0, false, 5992, Bytes(8)));
    expect_eio(a_->store(tok, 0, false, 5993, Bytes(8)));
    expect_eio(a_->store(tok, 0, false, 6000, Bytes(1)));
    expect_eio(a_->store(tok_, 0, false, 65536, Bytes(1)));
}

TEST_F(SimStore, ResetUnregistersEverything)
{
    ASSERT_TRUE(b_->dev->reset());
    expect_eio(a_->store(tok_, 0, true, 0, Bytes(8)));
    EXPECT_EQ(b_->cmd(0x11).rc, kRcNotRegistered);
    EXPECT_EQ(b_->cmd(0x12).rc, kRcNotRegistered);
}

TEST_F(SimStore, UnmappedDmbIsEio)
{
    auto [m, iova] = b_->dma(4096);
    auto [rc, tok] = b_->reg_dmb_at(iova, a_->gid, 4096, 0);
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(b_->dev->unmap_dma(iova, 4096));
    expect_eio(a_->store(tok, 0, false, 0, Bytes(8)));
}

TEST_F(SimStore, AlignedWordsAreNeverTorn)
{
    // a rewrites stores around aligned 8-byte fields while b polls them: a short store at
    // an odd offset (word by word) and a long one (the bulk copy path).
    struct Case {
        std::size_t offset;
        std::size_t length;
        std::size_t field;
    };
    for (const Case c : {Case{5, 24, 8}, Case{3, 300, 64}, Case{8, 4088, 2048}}) {
        SCOPED_TRACE("store of " + std::to_string(c.length) + " at " + std::to_string(c.offset));
        std::atomic<bool> stop{false};
        std::atomic<uint64_t> torn{0};
        const std::byte* field = dmb_ + c.field;
        std::thread reader([&] {
            while (!stop.load()) {
                const uint64_t v =
                    std::atomic_ref<const uint64_t>(*reinterpret_cast<const uint64_t*>(field))
                        .load(std::memory_order_relaxed);
                if (v != 0 && v != ~uint64_t{0} && v != 0x5555'5555'5555'5555ULL)
                    torn.fetch_add(1);
            }
        });
        for (int i = 0; i < 20000; ++i) {
            const auto fill = static_cast<std::byte>(i % 2 == 0 ? 0xFF : 0x55);
            ASSERT_TRUE(a_->store(tok_, 0, false, c.offset, Bytes(c.length, fill)));
        }
        stop = true;
        reader.join();
        EXPECT_EQ(torn.load(), 0U);
    }
}

TEST_F(SimStore, StoresApplyInOrderBeforeTheSignal)
{
    Bytes big(4096, std::byte{0xAB});
    for (uint64_t off = 0; off < 65536; off += 4096)
        ASSERT_TRUE(a_->store(tok_, 0, off + 4096 == 65536, off, big));
    EXPECT_EQ(b_->irqs(), 1U);
    for (std::size_t i = 0; i < 65536; ++i)
        ASSERT_EQ(byte_at(dmb_, i), 0xAB) << i;
}

}  // namespace
