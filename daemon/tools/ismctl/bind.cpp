// SPDX-License-Identifier: MIT
#include "tools/ismctl/bind.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

namespace ismd::tools {

namespace fs = std::filesystem;

namespace {

const std::regex kPciAddress("[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]");

constexpr const char* kDriver = "ism_vfio_pci";

std::string read_line(const fs::path& p)
{
    std::ifstream in(p);
    std::string s;
    std::getline(in, s);
    return s;
}

// sysfs attributes take one write(2); a refused write reports its errno.
tl::expected<void, std::string> write_attr(const fs::path& p, const std::string& value)
{
    std::ofstream out(p);
    if (!out)
        return tl::unexpected("cannot open " + p.string() + ": " + std::strerror(errno));
    out << value << std::flush;
    if (!out)
        return tl::unexpected("writing \"" + value + "\" to " + p.string() +
                              " failed: " + std::strerror(errno));
    return {};
}

std::string bound_driver(const fs::path& dev)
{
    std::error_code ec;
    const fs::path target = fs::read_symlink(dev / "driver", ec);
    return ec ? std::string() : target.filename().string();
}

}  // namespace

tl::expected<std::string, std::string> bind_function(const std::string& sysfs,
                                                     const std::string& address)
{
    if (!std::regex_match(address, kPciAddress))
        return tl::unexpected(
            "\"" + address +
            "\" is not a PCI address (expected the form 0001:00:00.0, lower case)");
    const fs::path root(sysfs);
    const fs::path dev = root / "bus/pci/devices" / address;
    if (!fs::exists(dev))
        return tl::unexpected("no PCI function " + address + " (looked in " +
                              (root / "bus/pci/devices").string() + ")");
    const std::string vendor = read_line(dev / "vendor");
    const std::string device = read_line(dev / "device");
    if (vendor != "0x1014" || device != "0x04ed")
        return tl::unexpected(address + " is not an ISM function (vendor " + vendor + ", device " +
                              device + "; ISM is 0x1014, 0x04ed)");
    if (!fs::exists(root / "bus/pci/drivers" / kDriver))
        return tl::unexpected(std::string("the ") + kDriver + " module is not loaded (modprobe " +
                              kDriver + ")");

    std::string driver = bound_driver(dev);
    if (driver != kDriver) {
        if (!driver.empty()) {
            if (auto r = write_attr(dev / "driver/unbind", address); !r)
                return tl::unexpected(r.error());
        }
        if (auto r = write_attr(dev / "driver_override", kDriver); !r)
            return tl::unexpected(r.error());
        if (auto r = write_attr(root / "bus/pci/drivers_probe", address); !r)
            return tl::unexpected(r.error());
        driver = bound_driver(dev);
        if (driver != kDriver)
            return tl::unexpected(
                address + ": the probe did not bind it to " + kDriver +
                (driver.empty() ? std::string(" (no driver now)") : " (bound to " + driver + ")") +
                "; see the kernel log");
    }
    std::error_code ec;
    const fs::path group = fs::read_symlink(dev / "iommu_group", ec);
    const std::string node =
        ec ? std::string("no IOMMU group") : "/dev/vfio/" + group.filename().string();
    return address + " is bound to " + kDriver + ": " + node;
}

}  // namespace ismd::tools
