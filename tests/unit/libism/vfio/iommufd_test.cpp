// SPDX-License-Identifier: MIT
// The iommufd cdev flow against the fake kernel.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_vfio_kernel.hpp"
#include "ism/vfio/vfio_device_file.hpp"

namespace ism::vfio {
namespace {

using ::testing::ElementsAre;
using testing::FakeVfioKernel;

VfioOptions iommufd_options()
{
    VfioOptions opts;
    opts.backend = VfioOptions::Backend::iommufd;
    return opts;
}

TEST(VfioIommufd, OpensInDocumentedIoctlOrder)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", iommufd_options(), kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_STREQ((*file)->backend_name(), "iommufd");
    EXPECT_THAT(kernel.log,
                ElementsAre("open /dev/vfio/devices/vfio3", "open /dev/iommu",
                            "device BIND_IOMMUFD", "iommufd IOAS_ALLOC", "device ATTACH_IOMMUFD_PT",
                            "iommufd IOAS_IOVA_RANGES", "iommufd IOAS_IOVA_RANGES"));
}

TEST(VfioIommufd, MapsWithFixedIovaReadableWriteable)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", iommufd_options(), kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(4096);
    ASSERT_TRUE(mem);
    ASSERT_TRUE((*file)->map_dma(**mem, 0x30000));
    ASSERT_EQ(kernel.mappings.count(0x30000), 1U);
    EXPECT_EQ(kernel.mappings.at(0x30000).flags, 0x7U);  // FIXED_IOVA | WRITEABLE | READABLE
    EXPECT_EQ(kernel.mappings.at(0x30000).vaddr, reinterpret_cast<uintptr_t>((*mem)->data()));
    ASSERT_TRUE((*file)->unmap_dma(0x30000, 4096));
    EXPECT_THAT(kernel.log_of("iommufd IOAS_"),
                ElementsAre("iommufd IOAS_ALLOC", "iommufd IOAS_IOVA_RANGES",
                            "iommufd IOAS_IOVA_RANGES", "iommufd IOAS_MAP", "iommufd IOAS_UNMAP"));
}

TEST(VfioIommufd, RejectsIovaOutsideIoasRanges)
{
    FakeVfioKernel kernel;
    kernel.iova_ranges = {{0x1000, 0x7fff}, {0x100000, 0x1fffff}};
    auto file = open_vfio_device("0001:00:00.0", iommufd_options(), kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(8192);
    ASSERT_TRUE(mem);
    EXPECT_EQ((*file)->map_dma(**mem, 0x7000).error(), errc::bad_argument);
    EXPECT_TRUE((*file)->map_dma(**mem, 0x1fe000));
}

TEST(VfioIommufd, MemlockTooLowWhenIoasMapFailsWithEnomem)
{
    FakeVfioKernel kernel;
    kernel.memlock = 4096;
    auto file = open_vfio_device("0001:00:00.0", iommufd_options(), kernel);
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(8192);
    ASSERT_TRUE(mem);
    EXPECT_EQ((*file)->map_dma(**mem, 0x10000).error(), errc::memlock_too_low);
}

TEST(VfioIommufd, DestructorDetachesAndClosesDeviceBeforeDestroyingIoas)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0001:00:00.0", iommufd_options(), kernel);
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
    EXPECT_EQ(kernel.open_fds(), 0U);
}

TEST(VfioIommufd, PermissionDeniedOnCdevIsSystemError)
{
    FakeVfioKernel kernel;
    kernel.open_errno["/dev/vfio/devices/vfio3"] = EPERM;
    auto file = open_vfio_device("0001:00:00.0", iommufd_options(), kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), std::error_code(EPERM, std::system_category()));
}

TEST(VfioIommufd, FailedAttachLeavesNothingOpen)
{
    FakeVfioKernel kernel;
    kernel.attach_errno = EOPNOTSUPP;
    auto file = open_vfio_device("0001:00:00.0", iommufd_options(), kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), std::error_code(EOPNOTSUPP, std::system_category()));
    EXPECT_EQ(kernel.open_fds(), 0U);
    EXPECT_THAT(kernel.log_of("close"), ElementsAre("close device", "close iommufd"));
}

}  // namespace
}  // namespace ism::vfio
