// SPDX-License-Identifier: MIT
#include "vfio/cap_chain.hpp"

#include <algorithm>

#include "vfio/uapi.hpp"

namespace ism::vfio {

Result<std::vector<CapView>> walk_caps(std::span<const std::byte> buffer, uint32_t first,
                                       std::size_t fixed_size)
{
    std::vector<CapView> caps;
    std::size_t offset = first;
    // Each step moves forward by at least one header, so this ends within size/8 steps.
    while (offset != 0) {
        if (offset < fixed_size || offset > buffer.size() ||
            buffer.size() - offset < uapi::kCapHeaderSize)
            return fail(errc::bad_capability);
        auto id = load_native<uint16_t>(buffer, offset);
        auto version = load_native<uint16_t>(buffer, offset + 2);
        std::size_t next = load_native<uint32_t>(buffer, offset + 4);
        if (next != 0 && next < offset + uapi::kCapHeaderSize)
            return fail(errc::bad_capability);
        std::size_t end = next == 0 ? buffer.size() : std::min(next, buffer.size());
        caps.push_back({id, version, offset, buffer.subspan(offset, end - offset)});
        offset = next;
    }
    return caps;
}

}  // namespace ism::vfio
