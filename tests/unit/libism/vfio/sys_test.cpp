// SPDX-License-Identifier: MIT
// Sys::real() on a directory tree shaped like sysfs: selection and driver check use real
// readlink, read and directory listing. No /dev/vfio is needed: the flow stops there.
#include "ism/vfio/sys.hpp"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "ism/vfio/vfio_device_file.hpp"

namespace ism::vfio {
namespace {

class VfioRealSysTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string tmpl = ::testing::TempDir() + "vfio_sysfs_XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        root_ = tmpl;
        const std::string dev = root_ + "/sys/bus/pci/devices/0001:00:00.0";
        for (const char* d : {"/sys", "/sys/bus", "/sys/bus/pci", "/sys/bus/pci/devices",
                              "/sys/bus/pci/devices/0001:00:00.0", "/dev"})
            ASSERT_EQ(::mkdir((root_ + d).c_str(), 0755), 0) << d;
        std::ofstream(dev + "/function_id") << "0x00000011\n";
        ASSERT_EQ(::symlink("../../../bus/pci/drivers/ism_vfio_pci", (dev + "/driver").c_str()), 0);
        ASSERT_EQ(::symlink("../../../kernel/iommu_groups/7", (dev + "/iommu_group").c_str()), 0);
        opts_.sysfs_root = root_ + "/sys";
        opts_.dev_root = root_ + "/dev";
        opts_.backend = VfioOptions::Backend::container;
    }

    void TearDown() override
    {
        const std::string dev = root_ + "/sys/bus/pci/devices/0001:00:00.0";
        for (const char* f : {"/function_id", "/driver", "/iommu_group"})
            ::unlink((dev + f).c_str());
        for (const char* d : {"/sys/bus/pci/devices/0001:00:00.0", "/sys/bus/pci/devices",
                              "/sys/bus/pci", "/sys/bus", "/sys", "/dev", ""})
            ::rmdir((root_ + d).c_str());
    }

    std::string root_;
    VfioOptions opts_;
};

TEST_F(VfioRealSysTest, SelectsByFidAndReachesTheMissingContainer)
{
    // Selection and the driver check passed: what stops it is the absent /dev/vfio/vfio.
    auto file = open_vfio_device("fid:0x11", opts_);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_iommu_backend);
}

TEST_F(VfioRealSysTest, UnknownFidIsNoSuchDevice)
{
    auto file = open_vfio_device("fid:0x12", opts_);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_such_device);
}

TEST_F(VfioRealSysTest, WrongDriverIsNotBoundToDriver)
{
    opts_.driver = "vfio-pci";
    auto file = open_vfio_device("0001:00:00.0", opts_);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::not_bound_to_driver);
}

TEST(VfioRealSys, EventfdCounterReadsBackAndIsEmptyAfterwards)
{
    Sys& sys = Sys::real();
    auto fd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_TRUE(fd);
    SysFd owned(sys, *fd);
    uint64_t value = 0;
    auto n = sys.read(owned.get(), &value, sizeof(value));
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error(), std::errc::resource_unavailable_try_again);
    EXPECT_TRUE(sys.page_size() >= 4096);
    EXPECT_TRUE(sys.memlock_limit());
}

}  // namespace
}  // namespace ism::vfio
