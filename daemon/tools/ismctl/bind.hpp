// SPDX-License-Identifier: MIT
// bind: hands an ISM PCI function to ism_vfio_pci through driver_override, the way the
// README's manual steps do, checking each step (see also configs/90-ism-vfio.rules).
#pragma once

#include <string>

#include <tl/expected.hpp>

namespace ismd::tools {

/// Binds `address` under sysfs mounted at `sysfs`. Returns a line saying what was done
/// (with the /dev/vfio node), or what is wrong.
tl::expected<std::string, std::string> bind_function(const std::string& sysfs,
                                                     const std::string& address);

}  // namespace ismd::tools
