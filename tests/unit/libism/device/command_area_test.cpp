// SPDX-License-Identifier: MIT
// The device layer's command area (command_area.cpp): requests laid out as
// docs/hardware.md 1.3-1.4 says, payload before header, return codes mapped to named
// errors, and responses checked before they are believed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ism/byte_order.hpp"
#include "ism/device/ism_device.hpp"
#include "ism/return_codes.hpp"
#include "unit/libism/device/fake_ism_file.hpp"

namespace {

using ism::errc;
using ism::load_be;
using ism::store_be;
using ism::device::IsmDevice;
using ism::testing::bytes;
using ism::testing::FakeIsmFile;

struct Opened {
    FakeIsmFile* file;
    std::unique_ptr<IsmDevice> dev;
};

Opened open_fake()
{
    auto file = std::make_unique<FakeIsmFile>();
    FakeIsmFile* raw = file.get();
    auto dev = IsmDevice::open(std::move(file));
    EXPECT_TRUE(dev) << (dev ? "" : dev.error().message());
    return {raw, dev ? std::move(*dev) : nullptr};
}

TEST(CommandArea, CommandsAreBigEndianWithPayloadBeforeHeader)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    const auto& reg_sba = file->commands.at(0);
    EXPECT_EQ(reg_sba.cmd, 0x01U);
    EXPECT_EQ(reg_sba.len, 16);
    // The SBA address is an IOVA that the fake has mapped, naturally aligned.
    const uint64_t sba = load_be({reg_sba.payload.data(), 8});
    EXPECT_NE(file->dma_at(sba), nullptr);
    EXPECT_EQ(sba % 4096, 0U);
    const auto& reg_ieq = file->commands.at(1);
    EXPECT_EQ(reg_ieq.len, 24);
    EXPECT_EQ(load_be({reg_ieq.payload.data() + 8, 8}), 512U);
    const auto& add_vlan = file->commands.at(4);
    EXPECT_EQ(add_vlan.payload, bytes({0, 0, 0, 0, 0, 0, 0x1F, 0xFF}));
}

TEST(CommandArea, QueryRgidLayout)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    ASSERT_TRUE(dev->query_rgid(0x0A0B0C0D0E0F1011ULL));
    const auto& cmd = file->commands.back();
    EXPECT_EQ(cmd.cmd, 0x09U);
    EXPECT_EQ(cmd.len, 24);  // rgid, then vlan_valid and vlan_id, both 0
    EXPECT_EQ(cmd.payload,
              bytes({0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(CommandArea, SignalEventLayout)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    ASSERT_TRUE(dev->signal_event(0x0102030405060708ULL, 0xC0DE, 0xFEEDFACECAFEBEEFULL));
    const auto& cmd = file->commands.back();
    EXPECT_EQ(cmd.cmd, 0x0EU);
    EXPECT_EQ(cmd.len, 32);
    EXPECT_EQ(cmd.payload,
              bytes({1, 2, 3,    4,    5,    6,    7,    8,    0,    0,    0,    1,
                     0, 0, 0xC0, 0xDE, 0xFE, 0xED, 0xFA, 0xCE, 0xCA, 0xFE, 0xBE, 0xEF}));
}

TEST(CommandArea, QueryInfoReadsEachFieldAtItsOffset)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    file->rewrite = [](uint32_t cmd, std::vector<std::byte>& r) {
        if (cmd != 0x08)
            return;
        const std::span<std::byte> s(r);
        ism::store_be32(s, 8, 0x11);          // version
        ism::store_be32(s, 12, 0x22);         // max_len
        ism::store_be64(s, 16, 0x33);         // ism_state
        ism::store_be64(s, 24, 0x4444);       // my_gid
        ism::store_be64(s, 32, 0x5555'0000);  // sba
        ism::store_be64(s, 40, 0x6666'0000);  // ieq
        ism::store_be32(s, 48, 512);          // ieq_len
        ism::store_be32(s, 52, 0xFFFF'FFFF);  // reserved: ignored
        ism::store_be32(s, 56, 7);            // dmbs_owned
        ism::store_be32(s, 60, 8);            // dmbs_used
        ism::store_be32(s, 64, 1);            // vlan_required
        ism::store_be32(s, 68, 2);            // vlan_nr_ids
    };
    auto info = dev->query_info();
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->version, 0x11U);
    EXPECT_EQ(info->max_len, 0x22U);
    EXPECT_EQ(info->ism_state, 0x33U);
    EXPECT_EQ(info->my_gid, 0x4444U);
    EXPECT_EQ(info->sba, 0x5555'0000U);
    EXPECT_EQ(info->ieq, 0x6666'0000U);
    EXPECT_EQ(info->ieq_len, 512U);
    EXPECT_EQ(info->dmbs_owned, 7U);
    EXPECT_EQ(info->dmbs_used, 8U);
    EXPECT_EQ(info->vlan_required, 1U);
    EXPECT_EQ(info->vlan_nr_ids, 2U);
}

TEST(CommandArea, ResponsesAreCheckedBeforeTheyAreBelieved)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    uint16_t len = 0;
    file->rewrite = [&len](uint32_t, std::vector<std::byte>& r) {
        store_be({r.data() + 6, 2}, len);
    };
    len = 4;  // shorter than its own header
    EXPECT_EQ(dev->query_rgid(1).error(), errc::bad_response);
    len = 8192;  // longer than the command area
    EXPECT_EQ(dev->query_rgid(1).error(), errc::bad_response);
    len = 100;  // a QUERY_INFO answer without the fields the layout promises
    EXPECT_EQ(dev->query_info().error(), errc::bad_response);
    len = 8;
    EXPECT_TRUE(dev->query_rgid(1));
}

TEST(CommandArea, DeviceReturnCodesHaveNames)
{
    auto [file, dev] = open_fake();
    ASSERT_TRUE(dev);
    file->return_codes[0x09] = ism::kRcUnknownGid;
    EXPECT_EQ(dev->query_rgid(42).error(), errc::hw_unknown_gid);
    file->return_codes[0x09] = 0x4321;
    EXPECT_EQ(dev->query_rgid(42).error(), errc::hw_rejected);
    file->return_codes[0x09] = ism::kRcNoResponse;
    EXPECT_EQ(dev->query_rgid(42).error(), errc::hw_no_response);
    file->return_codes[0x0A] = ism::kRcDmbLimit;
    EXPECT_EQ(dev->register_dmb(4096, 1).error(), errc::hw_dmb_limit);
    EXPECT_EQ(dev->dmb_count(), 0U);
    EXPECT_EQ(file->mappings.size(), 2U);  // only SBA and event queue stay mapped
}

}  // namespace
