// SPDX-License-Identifier: MIT
// What both IOMMU backends (src/vfio/backend.hpp) do alike, against the fake kernel: one
// suite run for the legacy container/group flow and for the iommufd cdev flow. What only
// one of them does (its ioctls and their order, its own failures) is in container_test.cpp
// and iommufd_test.cpp.
#include <cerrno>
#include <ostream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_vfio_kernel.hpp"
#include "ism/vfio/vfio_device_file.hpp"

namespace ism::vfio {
namespace {

using testing::FakeVfioKernel;
using Backend = VfioOptions::Backend;

struct BackendCase {
    Backend backend;
    const char* name;      // backend_name(), and the test's name
    const char* node;      // the node that gives access to the function: group or cdev
    uint32_t map_flags;    // what the backend asks of the kernel for a read-write mapping
    const char* map_op;    // its map ioctl in the fake kernel's log
    const char* unmap_op;  // and its unmap ioctl
};

const BackendCase kContainer{.backend = Backend::container,
                             .name = "container",
                             .node = "/dev/vfio/7",
                             .map_flags = 0x3,  // VFIO_DMA_MAP_FLAG_READ | WRITE
                             .map_op = "container MAP_DMA",
                             .unmap_op = "container UNMAP_DMA"};
const BackendCase kIommufd{.backend = Backend::iommufd,
                           .name = "iommufd",
                           .node = "/dev/vfio/devices/vfio3",
                           .map_flags = 0x7,  // IOMMU_IOAS_MAP_FIXED_IOVA | WRITEABLE | READABLE
                           .map_op = "iommufd IOAS_MAP",
                           .unmap_op = "iommufd IOAS_UNMAP"};

// NOLINTNEXTLINE(readability-identifier-naming): the name GoogleTest looks for
void PrintTo(const BackendCase& c, std::ostream* os)
{
    *os << c.name;
}

class VfioBackend : public ::testing::TestWithParam<BackendCase> {
protected:
    Result<std::unique_ptr<VfioDeviceFile>> open()
    {
        return open_vfio_device("0001:00:00.0", VfioOptions{.backend = GetParam().backend},
                                kernel_);
    }

    FakeVfioKernel kernel_;
};

TEST_P(VfioBackend, ReportsItsName)
{
    auto file = open();
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_STREQ((*file)->backend_name(), GetParam().name);
}

TEST_P(VfioBackend, PermissionDeniedOnTheDeviceNodeIsSystemError)
{
    kernel_.open_errno[GetParam().node] = EACCES;
    auto file = open();
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), std::error_code(EACCES, std::system_category()));
    EXPECT_EQ(kernel_.open_fds(), 0U);
}

TEST_P(VfioBackend, MapsDeviceReadWriteAtCallerIova)
{
    auto file = open();
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(2 * FakeVfioKernel::kPageSize);
    ASSERT_TRUE(mem);
    ASSERT_TRUE((*file)->map_dma(**mem, 0x20000));
    ASSERT_EQ(kernel_.mappings.count(0x20000), 1U);
    const auto& m = kernel_.mappings.at(0x20000);
    EXPECT_EQ(m.vaddr, reinterpret_cast<uintptr_t>((*mem)->data()));
    EXPECT_EQ(m.size, 2 * FakeVfioKernel::kPageSize);
    EXPECT_EQ(m.flags, GetParam().map_flags);  // the device writes SBA, IEQ and DMBs
    ASSERT_TRUE((*file)->unmap_dma(0x20000, 2 * FakeVfioKernel::kPageSize));
    EXPECT_TRUE(kernel_.mappings.empty());
}

TEST_P(VfioBackend, MemlockTooLowWhenMapFailsWithEnomem)
{
    kernel_.memlock = 64 * 1024;
    auto file = open();
    ASSERT_TRUE(file);
    auto small = (*file)->alloc_dma(32 * 1024);
    auto big = (*file)->alloc_dma(64 * 1024);
    ASSERT_TRUE(small && big);
    ASSERT_TRUE((*file)->map_dma(**small, 0x100000));
    auto r = (*file)->map_dma(**big, 0x200000);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::memlock_too_low);
    EXPECT_EQ(kernel_.mappings.size(), 1U);
}

TEST_P(VfioBackend, EnomemWithUnlimitedMemlockStaysSystemError)
{
    auto file = open();
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(4096);
    ASSERT_TRUE(mem);
    kernel_.map_errno = ENOMEM;  // a real shortage: RLIMIT_MEMLOCK is unlimited
    auto r = (*file)->map_dma(**mem, 0x10000);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::error_code(ENOMEM, std::system_category()));
}

TEST_P(VfioBackend, RejectsIovaOutsideReportedRanges)
{
    kernel_.iova_ranges = {{0x10000, 0x7ffff}, {0x100000, 0xffffffff}};
    auto file = open();
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(8192);
    ASSERT_TRUE(mem);
    EXPECT_EQ((*file)->map_dma(**mem, 0).error(), errc::bad_argument);           // below them
    EXPECT_EQ((*file)->map_dma(**mem, 0x7f000).error(), errc::bad_argument);     // past the first
    EXPECT_EQ((*file)->map_dma(**mem, 0xfffff000).error(), errc::bad_argument);  // past the last
    EXPECT_TRUE((*file)->map_dma(**mem, 0xffffe000));
    EXPECT_EQ(kernel_.log_of(GetParam().map_op).size(), 1U) << "the kernel saw only the good one";
}

TEST_P(VfioBackend, RejectsOverlappingAndUnalignedMappings)
{
    auto file = open();
    ASSERT_TRUE(file);
    auto a = (*file)->alloc_dma(8192);
    auto b = (*file)->alloc_dma(4096);
    ASSERT_TRUE(a && b);
    ASSERT_TRUE((*file)->map_dma(**a, 0x40000));
    EXPECT_EQ((*file)->map_dma(**b, 0x41000).error(), errc::bad_argument);
    EXPECT_EQ((*file)->map_dma(**b, 0x3f800).error(), errc::bad_argument);
    EXPECT_TRUE((*file)->map_dma(**b, 0x3f000));
}

TEST_P(VfioBackend, UnmapMustMatchAMapping)
{
    auto file = open();
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(8192);
    ASSERT_TRUE(mem);
    ASSERT_TRUE((*file)->map_dma(**mem, 0x40000));
    EXPECT_EQ((*file)->unmap_dma(0x40000, 4096).error(), errc::bad_argument);
    EXPECT_EQ((*file)->unmap_dma(0x41000, 4096).error(), errc::bad_argument);
    EXPECT_TRUE(kernel_.log_of(GetParam().unmap_op).empty());
}

TEST_P(VfioBackend, DestructorLeavesNothingOpenMappedOrEnabled)
{
    auto file = open();
    ASSERT_TRUE(file);
    auto mem = (*file)->alloc_dma(4096);
    ASSERT_TRUE(mem);
    ASSERT_TRUE((*file)->map_dma(**mem, 0x10000));
    ASSERT_TRUE((*file)->enable_msi());
    file->reset();
    EXPECT_EQ(kernel_.last_set_irqs.size(), 20U);  // the disable form
    EXPECT_TRUE(kernel_.mappings.empty());
    EXPECT_EQ(kernel_.open_fds(), 0U);
    mem->reset();
    EXPECT_EQ(kernel_.live_dma_buffers, 0);
    EXPECT_EQ(kernel_.bad_closes, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, VfioBackend, ::testing::Values(kContainer, kIommufd),
                         [](const auto& param_info) {
                             std::string name = param_info.param.name;
                             name[0] = static_cast<char>(name[0] - 'a' + 'A');
                             return name;
                         });

}  // namespace
}  // namespace ism::vfio
