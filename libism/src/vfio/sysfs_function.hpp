// SPDX-License-Identifier: MIT
// Finding a PCI function in sysfs: by address or by zPCI function id, and the facts the
// VFIO flows need about it (driver, IOMMU group, vfio cdev name).
#pragma once

#include <string>
#include <string_view>

#include "ism/result.hpp"
#include "ism/vfio/sys.hpp"

namespace ism::vfio {

struct PciFunction {
    std::string bdf;        // "0001:00:00.0", lower case
    std::string sysfs_dir;  // <sysfs_root>/bus/pci/devices/<bdf>
};

/// Resolves "0001:00:00.0" or "fid:0x11"/"fid:17"; errc::no_such_device if there is no
/// such function, errc::bad_argument if the selector is neither form.
Result<PciFunction> find_function(Sys& sys, std::string_view selector,
                                  const std::string& sysfs_root);

/// errc::not_bound_to_driver unless the function's `driver` link names `driver`.
Result<void> check_driver(Sys& sys, const PciFunction& fn, const std::string& driver);

/// The IOMMU group number: the basename of the `iommu_group` link.
Result<std::string> iommu_group_of(Sys& sys, const PciFunction& fn);

/// The vfio cdev name "vfioN" from `vfio-dev/`; errc::no_iommu_backend if there is none.
Result<std::string> vfio_cdev_of(Sys& sys, const PciFunction& fn);

std::string_view path_basename(std::string_view path);

}  // namespace ism::vfio
