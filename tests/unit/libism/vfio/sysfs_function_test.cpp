// SPDX-License-Identifier: MIT
// Finding the function: by PCI address or zPCI function id, and its driver.
#include <gtest/gtest.h>

#include "fake_vfio_kernel.hpp"
#include "ism/vfio/vfio_device_file.hpp"

namespace ism::vfio {
namespace {

using testing::FakeFunction;
using testing::FakeVfioKernel;

VfioOptions container_options()
{
    VfioOptions opts;
    opts.backend = VfioOptions::Backend::container;
    return opts;
}

/// The default function plus a second one, fid 0x2a in group 9, also bound.
void add_second_function(FakeVfioKernel& kernel)
{
    FakeFunction fn;
    fn.bdf = "002a:00:00.0";
    fn.function_id = "0x0000002a\n";
    fn.group = "9";
    fn.cdev = "vfio4";
    kernel.add_function(fn);
}

TEST(VfioSelect, SelectsByPciAddress)
{
    FakeVfioKernel kernel;
    add_second_function(kernel);
    auto file = open_vfio_device("002a:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_EQ((*file)->pci_address(), "002a:00:00.0");
    EXPECT_EQ((*file)->describe(), "vfio 002a:00:00.0");
    EXPECT_EQ(kernel.log_of("open /dev/vfio/9").size(), 1U);
}

TEST(VfioSelect, SelectsByHexFunctionId)
{
    FakeVfioKernel kernel;
    add_second_function(kernel);
    auto file = open_vfio_device("fid:0x2a", container_options(), kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_EQ((*file)->pci_address(), "002a:00:00.0");
}

TEST(VfioSelect, SelectsByDecimalFunctionId)
{
    FakeVfioKernel kernel;
    add_second_function(kernel);
    auto file = open_vfio_device("fid:17", container_options(), kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_EQ((*file)->pci_address(), "0001:00:00.0");
    EXPECT_EQ(kernel.log_of("group GROUP_GET_DEVICE_FD").back(),
              "group GROUP_GET_DEVICE_FD 0001:00:00.0");
}

TEST(VfioSelect, UpperCaseAddressIsNormalised)
{
    FakeVfioKernel kernel;
    add_second_function(kernel);
    auto file = open_vfio_device("002A:00:00.0", container_options(), kernel);
    ASSERT_TRUE(file) << file.error().message();
    EXPECT_EQ((*file)->pci_address(), "002a:00:00.0");
}

TEST(VfioSelect, UnknownAddressIsNoSuchDevice)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("0002:00:00.0", {}, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_such_device);
}

TEST(VfioSelect, UnknownFunctionIdIsNoSuchDevice)
{
    FakeVfioKernel kernel;
    auto file = open_vfio_device("fid:0x12", {}, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_such_device);
}

TEST(VfioSelect, NoPciDevicesDirectoryIsNoSuchDevice)
{
    FakeVfioKernel kernel;
    VfioOptions opts;
    opts.sysfs_root = "/nonexistent";
    auto file = open_vfio_device("fid:0x11", opts, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_such_device);
}

TEST(VfioSelect, MalformedSelectorIsBadArgument)
{
    FakeVfioKernel kernel;
    for (const char* selector : {"", "0001:00:00", "../../../etc:00:00.0", "0001:0:00.0",
                                 "fid:", "fid:0x", "fid:12z", "fid:0x100000000"}) {
        auto file = open_vfio_device(selector, {}, kernel);
        ASSERT_FALSE(file) << selector;
        EXPECT_EQ(file.error(), errc::bad_argument) << selector;
    }
}

TEST(VfioSelect, WrongDriverIsNotBoundToDriver)
{
    FakeVfioKernel kernel;
    kernel.links["/sys/bus/pci/devices/0001:00:00.0/driver"] = "../../../bus/pci/drivers/ism";
    auto file = open_vfio_device("0001:00:00.0", {}, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::not_bound_to_driver);
    EXPECT_TRUE(kernel.log.empty());  // nothing was opened
}

TEST(VfioSelect, NoDriverIsNotBoundToDriver)
{
    FakeVfioKernel kernel;
    kernel.links.erase("/sys/bus/pci/devices/0001:00:00.0/driver");
    auto file = open_vfio_device("fid:0x11", {}, kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::not_bound_to_driver);
}

TEST(VfioSelect, ConfiguredDriverNameIsTheOneChecked)
{
    FakeVfioKernel kernel;
    kernel.links["/sys/bus/pci/devices/0001:00:00.0/driver"] = "../../../bus/pci/drivers/vfio-pci";
    VfioOptions opts = container_options();
    opts.driver = "vfio-pci";
    EXPECT_TRUE(open_vfio_device("0001:00:00.0", opts, kernel));
}

TEST(VfioSelect, PermissionDeniedOnContainerIsSystemError)
{
    FakeVfioKernel kernel;
    kernel.open_errno["/dev/vfio/vfio"] = EACCES;
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), std::error_code(EACCES, std::system_category()));
}

TEST(VfioSelect, MissingIommuGroupIsNoIommuBackend)
{
    FakeVfioKernel kernel;
    kernel.links.erase("/sys/bus/pci/devices/0001:00:00.0/iommu_group");
    auto file = open_vfio_device("0001:00:00.0", container_options(), kernel);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error(), errc::no_iommu_backend);
}

}  // namespace
}  // namespace ism::vfio
