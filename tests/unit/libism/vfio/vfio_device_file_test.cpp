// SPDX-License-Identifier: MIT
// VfioDeviceFile: choosing a flow, then info, regions, read/write, MSI, reset, DMA memory.
#include "ism/vfio/vfio_device_file.hpp"

#include <array>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_vfio_kernel.hpp"
#include "golden_info.hpp"

namespace ism::vfio {
namespace {

using ::testing::ElementsAre;
using testing::FakeVfioKernel;
using testing::get;

class VfioDeviceFileTest : public ::testing::Test {
protected:
    void open()
    {
        VfioOptions opts;
        opts.backend = VfioOptions::Backend::container;
        auto opened = open_vfio_device("0001:00:00.0", opts, kernel_);
        ASSERT_TRUE(opened) << opened.error().message();
        file_ = std::move(*opened);
        kernel_.log.clear();
    }

    FakeVfioKernel kernel_;  // outlives file_
    std::unique_ptr<VfioDeviceFile> file_;
};

TEST_F(VfioDeviceFileTest, DeviceInfoReportsFlagsRegionsAndIrqs)
{
    kernel_.info_reply = testing::golden_info_reply();
    open();
    auto info = file_->device_info();
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->flags, kDeviceFlagReset | kDeviceFlagPci | kDeviceFlagCaps);
    EXPECT_EQ(info->num_regions, 9U);
    EXPECT_EQ(info->num_irqs, 5U);
}

TEST_F(VfioDeviceFileTest, ZpciInfoRefetchesWithTheArgszTheKernelAskedFor)
{
    kernel_.info_reply = testing::golden_info_reply();
    open();
    auto info = file_->zpci_info();
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_THAT(kernel_.get_info_argsz,
                ElementsAre(24U, static_cast<uint32_t>(kernel_.info_reply.size())));
    EXPECT_EQ(info->pft, 5);
    EXPECT_EQ(info->pchid, testing::kGoldenPchid);
    EXPECT_EQ(info->imaxstbl, 4096);
    EXPECT_EQ(info->maxstbl, 128);
}

TEST_F(VfioDeviceFileTest, ZpciInfoWithoutCapsIsOneCall)
{
    open();
    auto info = file_->zpci_info();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->pft, 0);
    EXPECT_THAT(kernel_.get_info_argsz, ElementsAre(24U));
}

TEST_F(VfioDeviceFileTest, ZpciInfoRejectsMalformedChainFromKernel)
{
    kernel_.info_reply = testing::golden_info_reply();
    testing::put<uint32_t>(kernel_.info_reply, testing::kGoldenBaseOffset + 4, 24);
    open();
    EXPECT_EQ(file_->zpci_info().error(), errc::bad_capability);
}

TEST_F(VfioDeviceFileTest, RegionOffsetsComeFromTheIsmDriver)
{
    open();
    auto bar0 = file_->region_info(kBar0RegionIndex);
    auto bar2 = file_->region_info(kBar2RegionIndex);
    auto config = file_->region_info(kConfigRegionIndex);
    ASSERT_TRUE(bar0 && bar2 && config);
    EXPECT_EQ(bar0->offset, 0U);
    EXPECT_EQ(bar0->size, 1ULL << 48);
    EXPECT_EQ(bar2->offset, 2ULL << 48);
    EXPECT_EQ(config->offset, 7ULL << 48);
    EXPECT_EQ(bar2->flags, kRegionFlagRead | kRegionFlagWrite);
}

TEST_F(VfioDeviceFileTest, RegionOffsetsOfAFortyBitLayoutAreHonoured)
{
    kernel_.set_region_layout(40);
    open();
    auto bar2 = file_->region_info(kBar2RegionIndex);
    ASSERT_TRUE(bar2);
    EXPECT_EQ(bar2->offset, 2ULL << 40);
    std::array<std::byte, 8> word{};
    ASSERT_TRUE(file_->read(bar2->offset + 8, word));
    EXPECT_EQ(kernel_.accesses.back().offset, (2ULL << 40) + 8);
}

TEST_F(VfioDeviceFileTest, UnknownRegionIsBadRegion)
{
    open();
    EXPECT_EQ(file_->region_info(42).error(), errc::bad_region);
}

TEST_F(VfioDeviceFileTest, IrqInfoReportsOneMsi)
{
    open();
    auto msi = file_->irq_info(kMsiIrqIndex);
    ASSERT_TRUE(msi);
    EXPECT_EQ(msi->count, 1U);
    EXPECT_EQ(file_->irq_info(17).error(), errc::bad_argument);
}

TEST_F(VfioDeviceFileTest, ReadIsPreadAtTheAbsoluteOffset)
{
    open();
    std::array<std::byte, 8> out{};
    ASSERT_TRUE(file_->read((2ULL << 48) + 0x10, out));
    ASSERT_EQ(kernel_.accesses.size(), 1U);
    EXPECT_FALSE(kernel_.accesses[0].write);
    EXPECT_EQ(kernel_.accesses[0].offset, (2ULL << 48) + 0x10);
    EXPECT_EQ(out[0], std::byte{0x10});
}

TEST_F(VfioDeviceFileTest, ReadRetriesEintr)
{
    open();
    kernel_.pread_eintr = 2;
    std::array<std::byte, 8> out{};
    EXPECT_TRUE(file_->read(2ULL << 48, out));
    EXPECT_EQ(kernel_.accesses.size(), 1U);
}

TEST_F(VfioDeviceFileTest, ShortReadIsAnError)
{
    open();
    kernel_.pread_returns = 4;
    std::array<std::byte, 8> out{};
    EXPECT_EQ(file_->read(2ULL << 48, out).error(), errc::short_access);
}

TEST_F(VfioDeviceFileTest, WriteIsOnePwrite)
{
    open();
    std::array<std::byte, 256> in{};
    in[0] = std::byte{0xab};
    ASSERT_TRUE(file_->write(0x123000, in));
    ASSERT_EQ(kernel_.accesses.size(), 1U);
    EXPECT_TRUE(kernel_.accesses[0].write);
    EXPECT_EQ(kernel_.accesses[0].offset, 0x123000U);
    EXPECT_EQ(kernel_.accesses[0].data.size(), 256U);
    EXPECT_EQ(kernel_.accesses[0].data[0], std::byte{0xab});
}

TEST_F(VfioDeviceFileTest, ShortWriteIsAnErrorAndNotRetried)
{
    open();
    kernel_.pwrite_returns = 128;
    std::array<std::byte, 256> in{};
    EXPECT_EQ(file_->write(0, in).error(), errc::short_access);
    EXPECT_EQ(kernel_.accesses.size(), 1U);
}

TEST_F(VfioDeviceFileTest, WriteInterruptedIsNotRetried)
{
    open();
    kernel_.pwrite_eintr = 1;
    std::array<std::byte, 8> in{};
    EXPECT_EQ(file_->write(0, in).error(), std::error_code(EINTR, std::system_category()));
    EXPECT_TRUE(kernel_.accesses.empty());
}

TEST_F(VfioDeviceFileTest, AccessOutsideRegionsIsTheKernelsError)
{
    open();
    std::array<std::byte, 8> out{};
    EXPECT_EQ(file_->read(3ULL << 48, out).error(),
              std::error_code(EINVAL, std::system_category()));
}

TEST_F(VfioDeviceFileTest, EnableMsiPassesOneEventfdForVectorZero)
{
    open();
    ASSERT_TRUE(file_->enable_msi());
    const auto& set = kernel_.last_set_irqs;
    ASSERT_EQ(set.size(), 24U);
    EXPECT_EQ(get<uint32_t>(set, 0), 24U);    // argsz
    EXPECT_EQ(get<uint32_t>(set, 4), 0x24U);  // DATA_EVENTFD | ACTION_TRIGGER
    EXPECT_EQ(get<uint32_t>(set, 8), 1U);     // index: MSI
    EXPECT_EQ(get<uint32_t>(set, 12), 0U);    // start
    EXPECT_EQ(get<uint32_t>(set, 16), 1U);    // count
    EXPECT_EQ(get<int32_t>(set, 20), file_->irq_fd());
    EXPECT_EQ(kernel_.msi_eventfd, file_->irq_fd());
}

TEST_F(VfioDeviceFileTest, DisableMsiPassesDataNoneWithCountZero)
{
    open();
    ASSERT_TRUE(file_->enable_msi());
    ASSERT_TRUE(file_->disable_msi());
    const auto& set = kernel_.last_set_irqs;
    ASSERT_EQ(set.size(), 20U);
    EXPECT_EQ(get<uint32_t>(set, 0), 20U);
    EXPECT_EQ(get<uint32_t>(set, 4), 0x21U);  // DATA_NONE | ACTION_TRIGGER
    EXPECT_EQ(get<uint32_t>(set, 8), 1U);
    EXPECT_EQ(get<uint32_t>(set, 12), 0U);
    EXPECT_EQ(get<uint32_t>(set, 16), 0U);
    EXPECT_EQ(file_->irq_fd(), -1);
    EXPECT_EQ(kernel_.msi_eventfd, -1);
    EXPECT_THAT(kernel_.log, ElementsAre("device SET_IRQS", "device SET_IRQS", "close eventfd"));
}

TEST_F(VfioDeviceFileTest, ConsumeIrqCountsInterruptsAndIsZeroWhenIdle)
{
    open();
    EXPECT_EQ(file_->consume_irq().error(), errc::bad_argument);
    ASSERT_TRUE(file_->enable_msi());
    EXPECT_EQ(file_->consume_irq().value(), 0U);
    kernel_.fire_msi(3);
    EXPECT_EQ(file_->consume_irq().value(), 3U);
    EXPECT_EQ(file_->consume_irq().value(), 0U);
}

TEST_F(VfioDeviceFileTest, ResetIssuesDeviceReset)
{
    open();
    ASSERT_TRUE(file_->reset());
    EXPECT_THAT(kernel_.log, ElementsAre("device RESET"));
}

TEST_F(VfioDeviceFileTest, AllocDmaRoundsUpToPagesAndFreesOnDestruction)
{
    open();
    auto mem = file_->alloc_dma(5000);
    ASSERT_TRUE(mem);
    EXPECT_EQ((*mem)->size(), 8192U);
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*mem)->data()) % 4096, 0U);
    (*mem)->bytes()[8191] = std::byte{1};  // all of it is usable
    EXPECT_EQ(kernel_.live_dma_buffers, 1);
    mem->reset();
    EXPECT_EQ(kernel_.live_dma_buffers, 0);
    EXPECT_EQ(file_->alloc_dma(0).error(), errc::bad_argument);
}

TEST_F(VfioDeviceFileTest, DeviceFdIsTheOneTheGroupHandedOut)
{
    open();
    EXPECT_GE(file_->device_fd(), 0);
    EXPECT_TRUE(file_->reset());
}

// Which backend open_vfio_device() takes when the caller lets it choose.

TEST(VfioAutomatic, PrefersIommufdWhenCdevAndDevIommuExist)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", {}, kernel);
    ASSERT_TRUE(file);
    EXPECT_STREQ((*file)->backend_name(), "iommufd");
}

TEST(VfioAutomatic, UsesContainerWithoutDevIommu)
{
    FakeVfioKernel kernel;
    kernel.nodes.erase("/dev/iommu");
    auto file = open_vfio_device("0001:00:00.0", {}, kernel);
    ASSERT_TRUE(file);
    EXPECT_STREQ((*file)->backend_name(), "container");
    EXPECT_TRUE(kernel.log_of("open /dev/vfio/devices").empty());
}

TEST(VfioAutomatic, UsesContainerWithoutVfioDevDirectory)
{
    FakeVfioKernel kernel;
    kernel.files.erase("/sys/bus/pci/devices/0001:00:00.0/vfio-dev/vfio3/dev");
    auto file = open_vfio_device("0001:00:00.0", {}, kernel);
    ASSERT_TRUE(file);
    EXPECT_STREQ((*file)->backend_name(), "container");
}

TEST(VfioAutomatic, FallsBackToContainerWhenIommufdAttachFails)
{
    FakeVfioKernel kernel;
    kernel.attach_errno = EOPNOTSUPP;
    auto file = open_vfio_device("0001:00:00.0", {}, kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_STREQ((*file)->backend_name(), "container");
}

TEST(VfioAutomatic, ReportsPermissionErrorWithoutFallingBack)
{
    FakeVfioKernel kernel;
    kernel.open_errno["/dev/iommu"] = EACCES;
    auto file = open_vfio_device("0001:00:00.0", {}, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), std::error_code(EACCES, std::system_category()));
    EXPECT_TRUE(kernel.log_of("open /dev/vfio/vfio").empty());
}

}  // namespace
}  // namespace ism::vfio
