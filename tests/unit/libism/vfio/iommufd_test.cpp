// SPDX-License-Identifier: MIT
// What only the iommufd cdev flow does, against the fake kernel: its ioctls in their order,
// its IOAS and its attach. What it does as the container/group flow does is in
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

const VfioOptions kIommufd{.backend = VfioOptions::Backend::iommufd};

TEST(VfioIommufd, OpensInDocumentedIoctlOrder)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", kIommufd, kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_THAT(kernel.log,
                ElementsAre("open /dev/vfio/devices/vfio3", "open /dev/iommu",
                            "device BIND_IOMMUFD", "iommufd IOAS_ALLOC", "device ATTACH_IOMMUFD_PT",
                            "iommufd IOAS_IOVA_RANGES", "iommufd IOAS_IOVA_RANGES"));
}

TEST(VfioIommufd, MapsAndUnmapsThroughTheIoas)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", kIommufd, kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(4096);
    ASSERT_TRUE(mem);
    ASSERT_TRUE((*file)->map_dma(**mem, 0x30000));
    ASSERT_TRUE((*file)->unmap_dma(0x30000, 4096));
    EXPECT_THAT(kernel.log_of("iommufd IOAS_"),
                ElementsAre("iommufd IOAS_ALLOC", "iommufd IOAS_IOVA_RANGES",
                            "iommufd IOAS_IOVA_RANGES", "iommufd IOAS_MAP", "iommufd IOAS_UNMAP"));
}

TEST(VfioIommufd, FailedAttachLeavesNothingOpen)
{
    FakeVfioKernel kernel;
    kernel.attach_errno = EOPNOTSUPP;
    auto file = open_vfio_device("0001:00:00.0", kIommufd, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), std::error_code(EOPNOTSUPP, std::system_category()));
    EXPECT_EQ(kernel.open_fds(), 0U);
    EXPECT_THAT(kernel.log_of("close"), ElementsAre("close device", "close iommufd"));
}

TEST(VfioIommufd, DestructorDetachesAndClosesDeviceBeforeDestroyingIoas)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", kIommufd, kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(4096);
    ASSERT_TRUE(mem);
    ASSERT_TRUE((*file)->map_dma(**mem, 0x10000));
    ASSERT_TRUE((*file)->enable_msi());
    kernel.log.clear();
    file->reset();
    EXPECT_THAT(kernel.log, ElementsAre("device SET_IRQS", "close eventfd", "iommufd IOAS_UNMAP",
                                        "device DETACH_IOMMUFD_PT", "close device",
                                        "iommufd DESTROY", "close iommufd"));
}

}  // namespace
}  // namespace ism::vfio
