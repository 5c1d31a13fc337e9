// SPDX-License-Identifier: MIT
#include <random>

#include <gtest/gtest.h>

#include "golden_info.hpp"
#include "ism/vfio/vfio_device_file.hpp"

namespace ism::vfio {
namespace {

using testing::golden_group_offset;
using testing::golden_info_reply;
using testing::kGoldenBaseOffset;
using testing::put;

TEST(ZpciCaps, ParsesBaseV2AndGroupV2)
{
    auto info = parse_zpci_caps(golden_info_reply(2, 2));
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->start_dma, testing::kGoldenStartDma);
    EXPECT_EQ(info->end_dma, testing::kGoldenEndDma);
    EXPECT_EQ(info->pchid, testing::kGoldenPchid);
    EXPECT_EQ(info->vfn, testing::kGoldenVfn);
    EXPECT_EQ(info->pft, testing::kGoldenPft);
    EXPECT_EQ(info->pci_group, testing::kGoldenPciGroup);
    EXPECT_EQ(info->fh, testing::kGoldenFh);
    EXPECT_TRUE(info->has_group);
    EXPECT_EQ(info->noi, testing::kGoldenNoi);
}

TEST(ZpciCaps, StoreLimitIsImaxstblNotMaxstbl)
{
    auto info = parse_zpci_caps(golden_info_reply(2, 2));
    ASSERT_TRUE(info);
    EXPECT_EQ(info->imaxstbl, 4096);
    EXPECT_EQ(info->maxstbl, 128);
}

TEST(ZpciCaps, BaseV1HasNoFunctionHandle)
{
    auto info = parse_zpci_caps(golden_info_reply(1, 2));
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->fh, 0U);
    EXPECT_EQ(info->pft, testing::kGoldenPft);
    EXPECT_EQ(info->pchid, testing::kGoldenPchid);
    EXPECT_EQ(info->imaxstbl, 4096);  // the GROUP cap right after a 32-byte BASE
}

TEST(ZpciCaps, BaseV3IsReadLikeV2)
{
    auto buf = golden_info_reply(2, 2);
    put<uint16_t>(buf, kGoldenBaseOffset + 2, 3);
    auto info = parse_zpci_caps(buf);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->fh, testing::kGoldenFh);
}

TEST(ZpciCaps, GroupV1HasNoImaxstbl)
{
    auto info = parse_zpci_caps(golden_info_reply(2, 1));
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_TRUE(info->has_group);
    EXPECT_EQ(info->imaxstbl, 0);
    EXPECT_EQ(info->maxstbl, 128);
}

TEST(ZpciCaps, MissingGroupLeavesHasGroupFalse)
{
    auto info = parse_zpci_caps(golden_info_reply(2, 0));
    ASSERT_TRUE(info);
    EXPECT_FALSE(info->has_group);
    EXPECT_EQ(info->pft, testing::kGoldenPft);
}

TEST(ZpciCaps, NoCapsFlagGivesEmptyInfo)
{
    auto buf = golden_info_reply();
    put<uint32_t>(buf, 4, 0x03);
    auto info = parse_zpci_caps(buf);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->pft, 0);
    EXPECT_FALSE(info->has_group);
}

TEST(ZpciCaps, HonoursCapOffsetOfTwentyFromOlderKernels)
{
    // A kernel whose vfio_device_info has no pad puts the first capability at 20.
    auto golden = golden_info_reply(2, 2);
    std::vector<std::byte> buf(golden.begin(), golden.begin() + 20);
    buf.insert(buf.end(), golden.begin() + 24, golden.end());
    put<uint32_t>(buf, 16, 20);
    put<uint32_t>(buf, 20 + 4, static_cast<uint32_t>(golden_group_offset(2) - 4));
    auto info = parse_zpci_caps(buf);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->fh, testing::kGoldenFh);
    EXPECT_EQ(info->imaxstbl, 4096);
}

TEST(ZpciCaps, SkipsUnknownCapabilities)
{
    // BASE -> UTIL (id 3, 16 bytes: size 4 + 4 EBCDIC bytes) -> GROUP
    auto golden = golden_info_reply(2, 2);
    const std::size_t util = golden_group_offset(2);
    std::vector<std::byte> buf(golden.begin(), golden.begin() + static_cast<long>(util));
    put<uint16_t>(buf, util, 3);
    put<uint16_t>(buf, util + 2, 1);
    put<uint32_t>(buf, util + 4, static_cast<uint32_t>(util + 16));
    put<uint32_t>(buf, util + 8, 4);
    put<uint32_t>(buf, util + 12, 0xc9e2d440);
    buf.insert(buf.end(), golden.begin() + static_cast<long>(util), golden.end());
    put<uint32_t>(buf, kGoldenBaseOffset + 4, static_cast<uint32_t>(util));
    put<uint32_t>(buf, 0, static_cast<uint32_t>(buf.size()));
    auto info = parse_zpci_caps(buf);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->imaxstbl, 4096);
}

void expect_bad(const std::vector<std::byte>& buf)
{
    // An exactly sized heap copy, so that ASan sees any read past the end.
    std::vector<std::byte> exact(buf);
    auto info = parse_zpci_caps(exact);
    ASSERT_FALSE(info);
    EXPECT_EQ(info.error(), errc::bad_capability);
}

TEST(ZpciCaps, RejectsFirstOffsetPastEnd)
{
    auto buf = golden_info_reply();
    put<uint32_t>(buf, 16, static_cast<uint32_t>(buf.size()));
    expect_bad(buf);
    put<uint32_t>(buf, 16, 0xfffffff8);
    expect_bad(buf);
}

TEST(ZpciCaps, RejectsHeaderCrossingEnd)
{
    auto buf = golden_info_reply();
    put<uint32_t>(buf, 16, static_cast<uint32_t>(buf.size() - 4));
    expect_bad(buf);
}

TEST(ZpciCaps, RejectsNextOffsetPastEnd)
{
    auto buf = golden_info_reply();
    put<uint32_t>(buf, golden_group_offset(2) + 4, static_cast<uint32_t>(buf.size() + 8));
    expect_bad(buf);
}

TEST(ZpciCaps, RejectsLoopToItself)
{
    auto buf = golden_info_reply();
    put<uint32_t>(buf, kGoldenBaseOffset + 4, static_cast<uint32_t>(kGoldenBaseOffset));
    expect_bad(buf);
}

TEST(ZpciCaps, RejectsLoopBackwards)
{
    auto buf = golden_info_reply();
    put<uint32_t>(buf, golden_group_offset(2) + 4, static_cast<uint32_t>(kGoldenBaseOffset));
    expect_bad(buf);
}

TEST(ZpciCaps, RejectsCapabilityOverlappingTheHeader)
{
    auto buf = golden_info_reply();
    put<uint32_t>(buf, 16, 8);
    expect_bad(buf);
}

TEST(ZpciCaps, RejectsTruncatedBase)
{
    auto buf = golden_info_reply(2, 0);
    buf.resize(buf.size() - 6);  // v2 BASE cut to 34 bytes: fh is missing
    expect_bad(buf);
}

TEST(ZpciCaps, RejectsGroupV2CutShortByTheBuffer)
{
    auto buf = golden_info_reply(2, 2);
    buf.resize(buf.size() - 8);  // imaxstbl is there, but the cap is shorter than v2's 48
    expect_bad(buf);
}

TEST(ZpciCaps, RejectsBaseShorterThanItsVersionBeforeNext)
{
    // A v2 BASE whose next points 32 bytes in: reading fh would read the GROUP header.
    auto buf = golden_info_reply(1, 2);
    put<uint16_t>(buf, kGoldenBaseOffset + 2, 2);
    expect_bad(buf);
}

TEST(ZpciCaps, RejectsBufferShorterThanHeader)
{
    expect_bad(std::vector<std::byte>(12));
}

TEST(ZpciCaps, NeverReadsOutsideTheBufferOnRandomChains)
{
    // Random offsets and versions over random lengths must each give a value or
    // bad_capability; run under the asan preset this also proves no out-of-bounds read.
    std::mt19937 rng(1234);
    const auto golden = golden_info_reply();
    for (int i = 0; i < 20000; ++i) {
        std::vector<std::byte> buf(golden.begin(),
                                   golden.begin() + 20 + static_cast<long>(rng() % 69));
        put<uint32_t>(buf, 16, static_cast<uint32_t>(rng() % (buf.size() + 8)));
        if (buf.size() >= kGoldenBaseOffset + 8)
            put<uint32_t>(buf, kGoldenBaseOffset + 4, static_cast<uint32_t>(rng() % 80));
        buf[rng() % buf.size()] = static_cast<std::byte>(rng());
        auto info = parse_zpci_caps(buf);
        if (!info) {
            EXPECT_EQ(info.error(), errc::bad_capability);
        }
    }
}

}  // namespace
}  // namespace ism::vfio
