// SPDX-License-Identifier: MIT
// BAR0 stores: encoding, SBA bits and masks, the store rules, untorn 8-byte words.
#include <atomic>
#include <chrono>
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

// The two tests below have a reader thread poll the DMB while a writes it. On a loaded
// machine the two threads may rarely run at once, so each keeps going until the reader
// has been seen inside a store (or a round) often enough, and fails if it never was.
constexpr auto kOverlapDeadline = std::chrono::seconds(60);

uint8_t load_byte(const std::byte* p, std::memory_order order = std::memory_order_acquire)
{
    return std::atomic_ref<const uint8_t>(*reinterpret_cast<const uint8_t*>(p)).load(order);
}

uint64_t load_word(const std::byte* p, std::memory_order order = std::memory_order_acquire)
{
    return std::atomic_ref<const uint64_t>(*reinterpret_cast<const uint64_t*>(p)).load(order);
}

TEST_F(SimStore, AlignedWordsAreNeverTorn)
{
    // a rewrites a store while b's reader checks every aligned 8-byte word in it: a short
    // store at an odd offset (head bytes, then words) and longer ones (the bulk copy
    // path). Store i fills every byte with i % 255 + 1, so a word whose 8 bytes differ
    // is torn.
    struct Case {
        std::size_t offset;
        std::size_t length;
    };
    constexpr int kMinStores = 20000;
    constexpr uint64_t kMinOverlaps = 20;
    for (const Case c : {Case{5, 24}, Case{3, 300}, Case{8, 4088}}) {
        SCOPED_TRACE("store of " + std::to_string(c.length) + " at " + std::to_string(c.offset));
        ASSERT_TRUE(a_->store(tok_, 0, false, 0, Bytes(4096)));
        std::atomic<bool> stop{false};
        std::atomic<uint64_t> torn{0};
        std::atomic<uint64_t> overlaps{0};  // stores the reader was seen inside
        const std::byte* first = dmb_ + c.offset;
        const std::byte* last = dmb_ + c.offset + c.length - 1;
        const std::byte* words = dmb_ + (c.offset + 7) / 8 * 8;
        const std::byte* words_end = dmb_ + (c.offset + c.length) / 8 * 8;
        std::thread reader([&] {
            uint8_t counted = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                // Bytes are copied in ascending order: the first byte already from store
                // k and the last one still from store k - 1 means the words were read
                // while store k was under way.
                const uint8_t f = load_byte(first);
                for (const std::byte* w = words; w < words_end; w += 8) {
                    const uint64_t v = load_word(w);
                    if (v != (v & 0xFF) * 0x0101'0101'0101'0101ULL)
                        torn.fetch_add(1, std::memory_order_relaxed);
                }
                const uint8_t l = load_byte(last);
                if (f != 0 && f != counted && l == (f == 1 ? 255 : f - 1)) {
                    counted = f;
                    overlaps.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
        const auto deadline = std::chrono::steady_clock::now() + kOverlapDeadline;
        int stores = 0;
        for (;; ++stores) {
            const auto fill = static_cast<std::byte>(stores % 255 + 1);
            if (!a_->store(tok_, 0, false, c.offset, Bytes(c.length, fill))) {
                ADD_FAILURE() << "store " << stores << " failed";
                break;
            }
            if (stores >= kMinStores && stores % 1024 == 0 &&
                (overlaps.load() >= kMinOverlaps || std::chrono::steady_clock::now() > deadline))
                break;
        }
        stop = true;
        reader.join();
        EXPECT_EQ(torn.load(), 0U) << "torn words read";
        EXPECT_GE(overlaps.load(), kMinOverlaps)
            << "the reader was seen inside only " << overlaps.load() << " of " << stores
            << " stores: it did not test untorn words";
    }
}

TEST_F(SimStore, StoresApplyInOrderBeforeTheSignal)
{
    // Round r: a writes the whole 64 KiB DMB in sixteen 4 KiB stores in ascending order,
    // every byte r % 255 + 1, the last store with the signal flag. b's reader polls the
    // DMB's SBA bit meanwhile. While the last store is under way the earlier ones must be
    // complete; once the bit is set, every byte of the round must be there (checked from
    // the end, where a signal raised too early would show first). Then the reader clears
    // the bit and lets a start the next round.
    constexpr uint64_t kMinRounds = 300;
    constexpr uint64_t kMinOverlaps = 20;
    constexpr std::size_t kSize = 65536;
    constexpr std::size_t kLastStore = kSize - 4096;
    constexpr std::size_t kBit = 4 + 40 / 8;
    constexpr auto kMask = static_cast<uint8_t>(0x80U >> (40 % 8));
    auto word_of = [](uint64_t round) { return (round % 255 + 1) * 0x0101'0101'0101'0101ULL; };

    std::atomic<uint64_t> acked{0};  // the last round the reader checked
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> overlaps{0};  // rounds whose signalled store the reader saw under way
    uint64_t out_of_order = 0;
    uint64_t incomplete = 0;
    std::thread reader([&] {
        auto bit = std::atomic_ref<uint8_t>(*reinterpret_cast<uint8_t*>(b_->sba + kBit));
        for (uint64_t round = 1; !stop.load(std::memory_order_relaxed); ++round) {
            const uint64_t want = word_of(round);
            bool inside = false;
            while (!stop.load(std::memory_order_relaxed) &&
                   (bit.load(std::memory_order_acquire) & kMask) == 0) {
                if (load_word(dmb_ + kLastStore) != want)
                    continue;
                // The last store has begun: the ones before it are complete.
                if (load_word(dmb_ + kLastStore - 8) != want || load_word(dmb_) != want)
                    ++out_of_order;
                if (load_word(dmb_ + kSize - 8) != want)
                    inside = true;
            }
            if (stop.load(std::memory_order_relaxed))
                break;
            for (std::size_t i = kSize; i > 0; i -= 8) {
                if (load_word(dmb_ + i - 8, std::memory_order_relaxed) != want) {
                    ++incomplete;
                    break;
                }
            }
            if (inside)
                overlaps.fetch_add(1, std::memory_order_relaxed);
            bit.fetch_and(static_cast<uint8_t>(~kMask));
            acked.store(round, std::memory_order_release);
        }
    });

    const auto deadline = std::chrono::steady_clock::now() + kOverlapDeadline;
    uint64_t round = 1;
    for (bool going = true; going; ++round) {
        const Bytes data(4096, static_cast<std::byte>(round % 255 + 1));
        for (std::size_t at = 0; going && at < kSize; at += 4096) {
            going = a_->store(tok_, 0, at == kLastStore, at, data).has_value();
            EXPECT_TRUE(going) << "round " << round << " offset " << at;
        }
        while (going && acked.load(std::memory_order_acquire) != round) {
            going = std::chrono::steady_clock::now() < deadline + std::chrono::seconds(10);
            EXPECT_TRUE(going) << "the reader never saw the signal of round " << round;
            std::this_thread::yield();
        }
        if (round >= kMinRounds &&
            (overlaps.load() >= kMinOverlaps || std::chrono::steady_clock::now() > deadline))
            break;
    }
    stop = true;
    reader.join();
    EXPECT_EQ(incomplete, 0U) << "rounds whose signal came before all their data";
    EXPECT_EQ(out_of_order, 0U) << "a later store seen before an earlier one";
    EXPECT_GE(overlaps.load(), kMinOverlaps)
        << "the reader was inside the signalled store in only " << overlaps.load() << " of "
        << round << " rounds: it did not test the order";
    EXPECT_EQ(b_->irqs(), 1U);  // the reader never clears the summary bit: one interrupt
}

}  // namespace
