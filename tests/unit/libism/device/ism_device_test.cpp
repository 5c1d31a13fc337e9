// SPDX-License-Identifier: MIT
// IsmDevice (ism_device.cpp): identity, init and teardown order, moves, DMBs. Its command
// exchange: command_area_test.cpp; interrupts: interrupts_test.cpp.
#include "ism/device/ism_device.hpp"

#include <algorithm>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ism/byte_order.hpp"
#include "ism/return_codes.hpp"
#include "unit/libism/device/fake_ism_file.hpp"

namespace {

using ism::errc;
using ism::load_be;
using ism::device::IsmDevice;
using ism::testing::FakeIsmFile;

struct Opened {
    FakeIsmFile* file;
    std::unique_ptr<IsmDevice> dev;
};

Opened open_fake(std::unique_ptr<FakeIsmFile> file = std::make_unique<FakeIsmFile>(),
                 ism::device::DeviceOptions options = {})
{
    FakeIsmFile* raw = file.get();
    auto dev = IsmDevice::open(std::move(file), options);
    EXPECT_TRUE(dev) << (dev ? "" : dev.error().message());
    return {raw, dev ? std::move(*dev) : nullptr};
}

TEST(IsmDevice, InitFollowsTheLinuxOrder)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    std::vector<std::string> cmds;
    for (const auto& l : *file->log) {
        if (l.rfind("cmd", 0) == 0 || l == "msi on")
            cmds.push_back(l);
    }
    EXPECT_THAT(cmds, ::testing::ElementsAre("msi on", "cmd 0x01", "cmd 0x02", "cmd 0x08",
                                             "cmd 0x03", "cmd 0x04"));
    EXPECT_EQ(dev->gid(), 0x1122334455667788ULL);
    EXPECT_TRUE(dev->ismv2());
    EXPECT_EQ(dev->pchid(), 0xFF00);
}

TEST(IsmDevice, RejectsAFunctionThatIsNotIsm)
{
    auto wrong_device = std::make_unique<FakeIsmFile>();
    wrong_device->device = 0x1234;
    EXPECT_EQ(IsmDevice::open(std::move(wrong_device)).error(), errc::not_ism_device);
    auto wrong_pft = std::make_unique<FakeIsmFile>();
    wrong_pft->zpci.pft = 0x0A;
    EXPECT_EQ(IsmDevice::open(std::move(wrong_pft)).error(), errc::not_ism_device);
}

TEST(IsmDevice, FailedInitUndoesWhatItDid)
{
    auto file = std::make_unique<FakeIsmFile>();
    file->return_codes[0x02] = ism::kRcBadAddress;  // REG_IEQ refused
    auto log = file->log;
    auto dev = IsmDevice::open(std::move(file));
    ASSERT_FALSE(dev);
    EXPECT_EQ(dev.error(), errc::hw_bad_address);
    // The SBA was registered, so it is unregistered, and only then unmapped.
    auto pos = [&log](const std::string& what) {
        return std::find(log->begin(), log->end(), what) - log->begin();
    };
    EXPECT_LT(pos("cmd 0x11"), pos("msi off"));
    auto unmap = std::find_if(log->begin(), log->end(),
                              [](const std::string& l) { return l.rfind("unmap", 0) == 0; });
    ASSERT_NE(unmap, log->end());
    EXPECT_LT(pos("msi off"), unmap - log->begin());
    EXPECT_EQ(std::count(log->begin(), log->end(), "cmd 0x12"), 0);  // IEQ never registered
}

TEST(IsmDevice, StoreLimitIsImaxstblNotTheCapabilityField)
{
    auto file = std::make_unique<FakeIsmFile>();
    file->zpci.maxstbl = 128;
    file->zpci.imaxstbl = 4096;
    auto [f, dev] = open_fake(std::move(file));
    ASSERT_TRUE(dev);
    EXPECT_EQ(dev->store_limit(), 4096U);
    std::vector<std::byte> data(4096, std::byte{7});
    ASSERT_TRUE(dev->move(0x0005'0000'0000ULL, 0, 0, data, false));
    EXPECT_EQ(f->bar0_stores.size(), 1U);
}

TEST(IsmDevice, MissingImaxstblFallsBackToOnePage)
{
    auto file = std::make_unique<FakeIsmFile>();
    file->zpci.imaxstbl = 0;
    auto [f, dev] = open_fake(std::move(file));
    ASSERT_TRUE(dev);
    EXPECT_EQ(dev->store_limit(), ism::device::kFallbackStoreLimit);
}

TEST(IsmDevice, MoveSplitsAtPageBoundariesAndSignalsOnlyTheLastStore)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    std::vector<std::byte> data(5000);
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<std::byte>(i * 7);
    const uint64_t token = 0x0123'0000'0000ULL;
    ASSERT_TRUE(dev->move(token, 3, 4000, data, true));
    ASSERT_EQ(file->bar0_stores.size(), 3U);
    const uint64_t base = token | (uint64_t{3} << 24);
    EXPECT_EQ(file->bar0_stores[0].offset, base | 4000);
    EXPECT_EQ(file->bar0_stores[0].data.size(), 96U);
    EXPECT_EQ(file->bar0_stores[1].offset, base | 4096);
    EXPECT_EQ(file->bar0_stores[1].data.size(), 4096U);
    EXPECT_EQ(file->bar0_stores[2].offset, base | (uint64_t{1} << 23) | 8192);
    EXPECT_EQ(file->bar0_stores[2].data.size(), 808U);
    std::vector<std::byte> joined;
    for (const auto& s : file->bar0_stores)
        joined.insert(joined.end(), s.data.begin(), s.data.end());
    EXPECT_EQ(joined, data);
}

TEST(IsmDevice, MoveHonoursASmallStoreLimit)
{
    auto file = std::make_unique<FakeIsmFile>();
    file->zpci.imaxstbl = 256;
    auto [f, dev] = open_fake(std::move(file));
    ASSERT_TRUE(dev);
    std::vector<std::byte> data(1000, std::byte{1});
    ASSERT_TRUE(dev->move(0x0001'0000'0000ULL, 0, 100, data, false));
    ASSERT_EQ(f->bar0_stores.size(), 4U);
    for (const auto& s : f->bar0_stores) {
        EXPECT_LE(s.data.size(), 256U);
        EXPECT_EQ(s.offset & (uint64_t{1} << 23), 0U);  // no signal requested
    }
}

TEST(IsmDevice, MoveStopsAtTheFirstFailedStore)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    file->fail_store_at = 1;
    std::vector<std::byte> data(3 * 4096, std::byte{1});
    auto r = dev->move(0x0001'0000'0000ULL, 0, 0, data, true);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
    EXPECT_EQ(file->bar0_stores.size(), 1U);  // the signalled last store never happened
}

TEST(IsmDevice, MoveRejectsWhatTheStoreAddressCannotEncode)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    std::vector<std::byte> one(1);
    EXPECT_EQ(dev->move(0x0001'0000'0001ULL, 0, 0, one, false).error(), errc::bad_argument);
    EXPECT_EQ(dev->move(uint64_t{1} << 48, 0, 0, one, false).error(), errc::bad_argument);
    EXPECT_EQ(dev->move(0x0001'0000'0000ULL, 16, 0, one, false).error(), errc::bad_argument);
    EXPECT_EQ(dev->move(0x0001'0000'0000ULL, 0, uint64_t{1} << 23, one, false).error(),
              errc::bad_argument);
    EXPECT_EQ(dev->move(0x0001'0000'0000ULL, 0, 0, {}, false).error(), errc::bad_argument);
    EXPECT_EQ(dev->move(0x0001'0000'0000ULL, 0, ~uint64_t{0}, one, false).error(),
              errc::bad_argument);  // an offset that would wrap around
    EXPECT_TRUE(file->bar0_stores.empty());
}

TEST(IsmDevice, RegisterDmbSendsTheDocumentedLayout)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    auto dmb = dev->register_dmb(65536, 0xAABBCCDDEEFF0011ULL);
    ASSERT_TRUE(dmb) << dmb.error().message();
    const auto& cmd = file->commands.back();
    EXPECT_EQ(cmd.cmd, 0x0AU);
    EXPECT_EQ(cmd.len, 40);
    EXPECT_EQ(load_be({cmd.payload.data(), 8}), dmb->iova);
    EXPECT_EQ(load_be({cmd.payload.data() + 8, 4}), 65536U);
    EXPECT_EQ(load_be({cmd.payload.data() + 12, 4}), 32U);  // lowest usable SBA index
    EXPECT_EQ(load_be({cmd.payload.data() + 16, 8}), 0U);   // no VLAN
    EXPECT_EQ(load_be({cmd.payload.data() + 24, 8}), 0xAABBCCDDEEFF0011ULL);
    EXPECT_EQ(dmb->token, 0x0001'0000'0000ULL);
    EXPECT_EQ(dmb->iova % 65536, 0U);  // naturally aligned
    EXPECT_EQ(dmb->memory.size(), 65536U);
    for (std::byte b : dmb->memory)
        ASSERT_EQ(b, std::byte{0});  // DMBs start zeroed
    EXPECT_EQ(file->dma_at(dmb->iova), dmb->memory.data());
}

TEST(IsmDevice, SbaIndexesAreTheLowestFree)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    auto a = dev->register_dmb(4096, 1);
    auto b = dev->register_dmb(4096, 1);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->sba_idx, 32U);
    EXPECT_EQ(b->sba_idx, 33U);
    ASSERT_TRUE(dev->unregister_dmb(a->token));
    auto c = dev->register_dmb(4096, 1);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->sba_idx, 32U);
    EXPECT_EQ(dev->register_dmb(4096, 1, 33).error(), errc::bad_argument);
    EXPECT_EQ(dev->register_dmb(4096, 1, 31).error(), errc::bad_argument);
}

TEST(IsmDevice, DmbLimitsAreEnforced)
{
    auto [file, dev] = open_fake(std::make_unique<FakeIsmFile>(), {.max_dmbs = 2});
    ASSERT_TRUE(dev);
    EXPECT_EQ(dev->register_dmb(0, 1).error(), errc::dmb_limit);
    EXPECT_EQ(dev->register_dmb((1 << 20) + 1, 1).error(), errc::dmb_limit);
    ASSERT_TRUE(dev->register_dmb(1 << 20, 1));
    ASSERT_TRUE(dev->register_dmb(4096, 1));
    EXPECT_EQ(dev->register_dmb(4096, 1).error(), errc::dmb_limit);
}

TEST(IsmDevice, TeardownUnregistersBeforeUnmapping)
{
    auto file = std::make_unique<FakeIsmFile>();
    auto log = file->log;
    auto dev = IsmDevice::open(std::move(file));
    ASSERT_TRUE(dev);
    ASSERT_TRUE((*dev)->register_dmb(4096, 1));
    log->clear();
    dev->reset();
    std::vector<std::string> cmds;
    std::size_t first_unmap = log->size();
    for (std::size_t i = 0; i < log->size(); ++i) {
        if ((*log)[i].rfind("unmap", 0) == 0)
            first_unmap = std::min(first_unmap, i);
        else
            cmds.push_back((*log)[i]);
    }
    // UNREG_DMB, DEL_VLAN_ID, UNREG_IEQ, UNREG_SBA, MSI off, and only then the unmaps.
    EXPECT_THAT(cmds,
                ::testing::ElementsAre("cmd 0x0b", "cmd 0x05", "cmd 0x12", "cmd 0x11", "msi off"));
    EXPECT_EQ(first_unmap, cmds.size());
    EXPECT_EQ(log->size() - first_unmap, 3U);  // DMB, event queue, SBA
}

}  // namespace
