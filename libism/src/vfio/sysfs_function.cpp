// SPDX-License-Identifier: MIT
#include "vfio/sysfs_function.hpp"

#include <cctype>
#include <charconv>

namespace ism::vfio {
namespace {

constexpr std::string_view kFidPrefix = "fid:";

std::string_view trim(std::string_view s)
{
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

/// "0x11", "0X11" or "17", all of it, fitting in 32 bits.
bool parse_u32(std::string_view text, uint32_t& value)
{
    int base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        text.remove_prefix(2);
        base = 16;
    }
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

bool hex_run(std::string_view s, std::size_t min, std::size_t max)
{
    if (s.size() < min || s.size() > max)
        return false;
    for (char c : s)
        if (!std::isxdigit(static_cast<unsigned char>(c)))
            return false;
    return true;
}

/// domain:bus:dev.fn, the domain 4 to 8 hex digits (on s390 it is the UID or FID). The
/// check also keeps the selector from walking out of sysfs ("../").
bool is_pci_address(std::string_view s)
{
    auto c1 = s.find(':');
    auto c2 = s.find(':', c1 == std::string_view::npos ? 0 : c1 + 1);
    auto dot = s.find('.');
    if (c1 == std::string_view::npos || c2 == std::string_view::npos ||
        dot == std::string_view::npos || !(c1 < c2 && c2 < dot))
        return false;
    return hex_run(s.substr(0, c1), 4, 8) && hex_run(s.substr(c1 + 1, c2 - c1 - 1), 2, 2) &&
           hex_run(s.substr(c2 + 1, dot - c2 - 1), 2, 2) && hex_run(s.substr(dot + 1), 1, 1);
}

std::string devices_dir(const std::string& sysfs_root)
{
    return sysfs_root + "/bus/pci/devices";
}

Result<PciFunction> find_by_fid(Sys& sys, uint32_t fid, const std::string& sysfs_root)
{
    auto names = sys.list_dir(devices_dir(sysfs_root));
    if (!names)
        return fail(errc::no_such_device);
    for (const std::string& name : *names) {
        // Functions without a function_id (not zPCI) or unreadable ones cannot match.
        auto text = sys.read_file(devices_dir(sysfs_root) + "/" + name + "/function_id");
        uint32_t value = 0;
        if (text && parse_u32(trim(*text), value) && value == fid)
            return PciFunction{name, devices_dir(sysfs_root) + "/" + name};
    }
    return fail(errc::no_such_device);
}

}  // namespace

std::string_view path_basename(std::string_view path)
{
    while (path.size() > 1 && path.back() == '/')
        path.remove_suffix(1);
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

Result<PciFunction> find_function(Sys& sys, std::string_view selector,
                                  const std::string& sysfs_root)
{
    if (selector.substr(0, kFidPrefix.size()) == kFidPrefix) {
        uint32_t fid = 0;
        if (!parse_u32(selector.substr(kFidPrefix.size()), fid))
            return fail(errc::bad_argument);
        return find_by_fid(sys, fid, sysfs_root);
    }
    if (!is_pci_address(selector))
        return fail(errc::bad_argument);
    std::string bdf(selector);
    for (char& c : bdf)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string dir = devices_dir(sysfs_root) + "/" + bdf;
    if (!sys.exists(dir))
        return fail(errc::no_such_device);
    return PciFunction{bdf, dir};
}

Result<void> check_driver(Sys& sys, const PciFunction& fn, const std::string& driver)
{
    auto link = sys.readlink(fn.sysfs_dir + "/driver");
    // No link at all means no driver is bound, which is the same mistake.
    if (!link || path_basename(*link) != driver)
        return fail(errc::not_bound_to_driver);
    return {};
}

Result<std::string> iommu_group_of(Sys& sys, const PciFunction& fn)
{
    auto link = sys.readlink(fn.sysfs_dir + "/iommu_group");
    if (!link)
        return fail(errc::no_iommu_backend);
    std::string group(path_basename(*link));
    uint32_t number = 0;
    if (!parse_u32(group, number))
        return fail(errc::no_iommu_backend);
    return group;
}

Result<std::string> vfio_cdev_of(Sys& sys, const PciFunction& fn)
{
    auto names = sys.list_dir(fn.sysfs_dir + "/vfio-dev");
    if (!names)
        return fail(errc::no_iommu_backend);
    for (const std::string& name : *names) {
        uint32_t n = 0;
        if (name.size() > 4 && name.compare(0, 4, "vfio") == 0 &&
            parse_u32(std::string_view(name).substr(4), n))
            return name;
    }
    return fail(errc::no_iommu_backend);
}

}  // namespace ism::vfio
