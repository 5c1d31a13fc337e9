// SPDX-License-Identifier: MIT
// ismctl bind against a sysfs tree made of plain files: each step is written where the
// kernel expects it, and every refusal names what is wrong.
#include "tools/ismctl/bind.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace ismd::tools {
namespace {

namespace fs = std::filesystem;

class BindTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        root_ = fs::temp_directory_path() / ("ismctl-bind-" + std::to_string(::getpid()));
        fs::remove_all(root_);
        dev_ = root_ / "bus/pci/devices/0001:00:00.0";
        fs::create_directories(dev_);
        fs::create_directories(root_ / "bus/pci/drivers/ism");
        fs::create_directories(root_ / "bus/pci/drivers/ism_vfio_pci");
        fs::create_directories(root_ / "kernel/iommu_groups/7");
        put(dev_ / "vendor", "0x1014\n");
        put(dev_ / "device", "0x04ed\n");
        put(dev_ / "driver_override", "");
        put(root_ / "bus/pci/drivers/ism/unbind", "");
        put(root_ / "bus/pci/drivers_probe", "");
        fs::create_directory_symlink(root_ / "bus/pci/drivers/ism", dev_ / "driver");
        fs::create_directory_symlink(root_ / "kernel/iommu_groups/7", dev_ / "iommu_group");
    }
    void TearDown() override { fs::remove_all(root_); }

    static void put(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }
    static std::string get(const fs::path& p)
    {
        std::ifstream in(p);
        return {std::istreambuf_iterator<char>(in), {}};
    }

    fs::path root_;
    fs::path dev_;
};

TEST_F(BindTest, WritesEachStepAndReportsAProbeThatDidNotBind)
{
    // A plain-file sysfs cannot rebind: the steps are written, and the failure is named.
    auto r = bind_function(root_.string(), "0001:00:00.0");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(),
              "0001:00:00.0: the probe did not bind it to ism_vfio_pci (bound to ism); "
              "see the kernel log");
    EXPECT_EQ(get(root_ / "bus/pci/drivers/ism/unbind"), "0001:00:00.0");
    EXPECT_EQ(get(dev_ / "driver_override"), "ism_vfio_pci");
    EXPECT_EQ(get(root_ / "bus/pci/drivers_probe"), "0001:00:00.0");
}

TEST_F(BindTest, AlreadyBoundNamesTheVfioNode)
{
    fs::remove(dev_ / "driver");
    fs::create_directory_symlink(root_ / "bus/pci/drivers/ism_vfio_pci", dev_ / "driver");
    auto r = bind_function(root_.string(), "0001:00:00.0");
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(*r, "0001:00:00.0 is bound to ism_vfio_pci: /dev/vfio/7");
}

TEST_F(BindTest, RefusalsNameWhatIsWrong)
{
    EXPECT_EQ(bind_function(root_.string(), "1:0.0").error(),
              "\"1:0.0\" is not a PCI address (expected the form 0001:00:00.0, lower case)");
    EXPECT_EQ(
        bind_function(root_.string(), "0002:00:00.0").error(),
        "no PCI function 0002:00:00.0 (looked in " + (root_ / "bus/pci/devices").string() + ")");
    put(dev_ / "device", "0x1234\n");
    EXPECT_EQ(bind_function(root_.string(), "0001:00:00.0").error(),
              "0001:00:00.0 is not an ISM function (vendor 0x1014, device 0x1234; ISM is 0x1014, "
              "0x04ed)");
    put(dev_ / "device", "0x04ed\n");
    fs::remove_all(root_ / "bus/pci/drivers/ism_vfio_pci");
    EXPECT_EQ(bind_function(root_.string(), "0001:00:00.0").error(),
              "the ism_vfio_pci module is not loaded (modprobe ism_vfio_pci)");
}

}  // namespace
}  // namespace ismd::tools
