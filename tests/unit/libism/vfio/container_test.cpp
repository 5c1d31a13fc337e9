// SPDX-License-Identifier: MIT
// What only the legacy container/group flow does, against the fake kernel: its ioctls in
// their order, its IOMMU types and its group. What it does as the iommufd flow does is in
// backend_test.cpp.
#include <cerrno>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_vfio_kernel.hpp"
#include "ism/vfio/vfio_device_file.hpp"

namespace ism::vfio {
namespace {

using ::testing::ElementsAre;
using testing::FakeVfioKernel;

const VfioOptions kContainer{.backend = VfioOptions::Backend::container};

TEST(VfioContainer, OpensInDocumentedIoctlOrder)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", kContainer, kernel);
    ASSERT_TRUE(file) << file.error().message();
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
    auto file = open_vfio_device("0001:00:00.0", kContainer, kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_THAT(kernel.log_of("container SET_IOMMU"), ElementsAre("container SET_IOMMU 1"));
}

TEST(VfioContainer, NoType1AtAllIsNoIommuBackend)
{
    FakeVfioKernel kernel;
    kernel.has_type1v2 = false;
    kernel.has_type1 = false;
    auto file = open_vfio_device("0001:00:00.0", kContainer, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_iommu_backend);
    EXPECT_EQ(kernel.open_fds(), 0U);
}

TEST(VfioContainer, MissingContainerNodeIsNoIommuBackend)
{
    FakeVfioKernel kernel;
    kernel.nodes.erase("/dev/vfio/vfio");
    auto file = open_vfio_device("0001:00:00.0", kContainer, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_iommu_backend);
}

TEST(VfioContainer, GroupNotViableIsReported)
{
    FakeVfioKernel kernel;
    kernel.group_viable = false;
    auto file = open_vfio_device("0001:00:00.0", kContainer, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::group_not_viable);
    EXPECT_EQ(kernel.open_fds(), 0U);
}

TEST(VfioContainer, GroupBusyIsSystemError)
{
    FakeVfioKernel kernel;
    auto first = open_vfio_device("0001:00:00.0", kContainer, kernel);
    ASSERT_TRUE(first);
    auto second = open_vfio_device("0001:00:00.0", kContainer, kernel);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), std::error_code(EBUSY, std::system_category()));
}

TEST(VfioContainer, DestructorDisablesMsiUnmapsThenClosesDeviceGroupContainer)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", kContainer, kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(4096);
    ASSERT_TRUE(mem);
    ASSERT_TRUE((*file)->map_dma(**mem, 0x10000));
    ASSERT_TRUE((*file)->enable_msi());
    kernel.log.clear();
    file->reset();
    EXPECT_THAT(kernel.log, ElementsAre("device SET_IRQS", "close eventfd", "container UNMAP_DMA",
                                        "close device", "close group", "close container"));
}

}  // namespace
}  // namespace ism::vfio
