// SPDX-License-Identifier: MIT
// The legacy container/group flow against the fake kernel.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_vfio_kernel.hpp"
#include "ism/vfio/vfio_device_file.hpp"

namespace ism::vfio {
namespace {

using ::testing::ElementsAre;
using testing::FakeVfioKernel;

VfioOptions container_options()
{
    VfioOptions opts;
    opts.backend = VfioOptions::Backend::container;
    return opts;
}

TEST(VfioContainer, OpensInDocumentedIoctlOrder)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_STREQ((*file)->backend_name(), "container");
    EXPECT_THAT(kernel.log,
                ElementsAre("open /dev/vfio/vfio", "container GET_API_VERSION",
                            "container CHECK_EXTENSION 3", "open /dev/vfio/7",
                            "group GROUP_GET_STATUS", "group GROUP_SET_CONTAINER",
                            "container SET_IOMMU 3", "group GROUP_GET_DEVICE_FD 0001:00:00.0",
                            "container IOMMU_GET_INFO", "container IOMMU_GET_INFO"));
}

TEST(VfioContainer, FallsBackToType1WithoutType1v2)
{
    FakeVfioKernel kernel;
    kernel.has_type1v2 = false;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_THAT(kernel.log_of("container SET_IOMMU"), ElementsAre("container SET_IOMMU 1"));
}

TEST(VfioContainer, NoType1AtAllIsNoIommuBackend)
{
    FakeVfioKernel kernel;
    kernel.has_type1v2 = false;
    kernel.has_type1 = false;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_iommu_backend);
    EXPECT_EQ(kernel.open_fds(), 0U);
}

TEST(VfioContainer, MissingContainerNodeIsNoIommuBackend)
{
    FakeVfioKernel kernel;
    kernel.nodes.erase("/dev/vfio/vfio");
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_iommu_backend);
}

TEST(VfioContainer, GroupNotViableIsReported)
{
    FakeVfioKernel kernel;
    kernel.group_viable = false;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::group_not_viable);
    EXPECT_EQ(kernel.open_fds(), 0U);
}

TEST(VfioContainer, PermissionDeniedOnGroupIsSystemError)
{
    FakeVfioKernel kernel;
    kernel.open_errno["/dev/vfio/7"] = EACCES;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), std::error_code(EACCES, std::system_category()));
    EXPECT_EQ(kernel.open_fds(), 0U);
}

TEST(VfioContainer, GroupBusyIsSystemError)
{
    FakeVfioKernel kernel;
    auto first = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_TRUE(first);
    auto second = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), std::error_code(EBUSY, std::system_category()));
}

TEST(VfioContainer, MapsDeviceReadWriteAtCallerIova)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(2 * FakeVfioKernel::kPageSize);
    ASSERT_TRUE(mem);
    ASSERT_TRUE((*file)->map_dma(**mem, 0x20000));
    ASSERT_EQ(kernel.mappings.count(0x20000), 1U);
    const auto& m = kernel.mappings.at(0x20000);
    EXPECT_EQ(m.vaddr, reinterpret_cast<uintptr_t>((*mem)->data()));
    EXPECT_EQ(m.size, 2 * FakeVfioKernel::kPageSize);
    EXPECT_EQ(m.flags, 0x3U);  // READ | WRITE: the device writes SBA, IEQ and DMBs
    ASSERT_TRUE((*file)->unmap_dma(0x20000, 2 * FakeVfioKernel::kPageSize));
    EXPECT_TRUE(kernel.mappings.empty());
}

TEST(VfioContainer, MemlockTooLowWhenMapFailsWithEnomem)
{
    FakeVfioKernel kernel;
    kernel.memlock = 64 * 1024;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file);
    auto small = (*file)->alloc_dma(32 * 1024);
    auto big = (*file)->alloc_dma(64 * 1024);
    ASSERT_TRUE(small && big);
    ASSERT_TRUE((*file)->map_dma(**small, 0x100000));
    auto r = (*file)->map_dma(**big, 0x200000);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::memlock_too_low);
    EXPECT_EQ(kernel.mappings.size(), 1U);
}

TEST(VfioContainer, EnomemWithUnlimitedMemlockStaysSystemError)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(4096);
    ASSERT_TRUE(mem);
    kernel.map_errno = ENOMEM;  // a real shortage: RLIMIT_MEMLOCK is unlimited
    auto r = (*file)->map_dma(**mem, 0x10000);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::error_code(ENOMEM, std::system_category()));
}

TEST(VfioContainer, RejectsIovaOutsideReportedRanges)
{
    FakeVfioKernel kernel;
    kernel.iova_ranges = {{0x10000, 0xffffffff}};
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(8192);
    ASSERT_TRUE(mem);
    EXPECT_EQ((*file)->map_dma(**mem, 0).error(), errc::bad_argument);
    EXPECT_EQ((*file)->map_dma(**mem, 0xfffff000).error(), errc::bad_argument);
    EXPECT_TRUE((*file)->map_dma(**mem, 0xffffe000));
    EXPECT_TRUE(kernel.log_of("container MAP_DMA").size() == 1);
}

TEST(VfioContainer, RejectsOverlappingAndUnalignedMappings)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file);
    auto a = (*file)->alloc_dma(8192);
    auto b = (*file)->alloc_dma(4096);
    ASSERT_TRUE(a && b);
    ASSERT_TRUE((*file)->map_dma(**a, 0x40000));
    EXPECT_EQ((*file)->map_dma(**b, 0x41000).error(), errc::bad_argument);
    EXPECT_EQ((*file)->map_dma(**b, 0x3f800).error(), errc::bad_argument);
    EXPECT_TRUE((*file)->map_dma(**b, 0x3f000));
}

TEST(VfioContainer, UnmapMustMatchAMapping)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(8192);
    ASSERT_TRUE(mem);
    ASSERT_TRUE((*file)->map_dma(**mem, 0x40000));
    EXPECT_EQ((*file)->unmap_dma(0x40000, 4096).error(), errc::bad_argument);
    EXPECT_EQ((*file)->unmap_dma(0x41000, 4096).error(), errc::bad_argument);
    EXPECT_TRUE(kernel.log_of("container UNMAP_DMA").empty());
}

TEST(VfioContainer, DestructorDisablesMsiUnmapsThenClosesDeviceGroupContainer)
{
    FakeVfioKernel kernel;
    {
        auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
        ASSERT_TRUE(file);
        auto mem = (*file)->alloc_dma(4096);
        ASSERT_TRUE(mem);
        ASSERT_TRUE((*file)->map_dma(**mem, 0x10000));
        ASSERT_TRUE((*file)->enable_msi());
        kernel.log.clear();
        file->reset();
        EXPECT_THAT(kernel.log,
                    ElementsAre("device SET_IRQS", "close eventfd", "container UNMAP_DMA",
                                "close device", "close group", "close container"));
        EXPECT_EQ(kernel.last_set_irqs.size(), 20U);  // the disable form
        EXPECT_TRUE(kernel.mappings.empty());
    }
    EXPECT_EQ(kernel.open_fds(), 0U);
    EXPECT_EQ(kernel.live_dma_buffers, 0);
    EXPECT_EQ(kernel.bad_closes, 0);
}

}  // namespace
}  // namespace ism::vfio
