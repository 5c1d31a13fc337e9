// SPDX-License-Identifier: MIT
// Walking a VFIO capability chain safely.
//
// VFIO info ioctls (DEVICE_GET_INFO, IOMMU_GET_INFO, ...) append capabilities to their
// reply: each starts with {u16 id, u16 version, u32 next}, where next is the offset of the
// following one from the start of the reply buffer and 0 ends the chain. The bytes are
// kernel structs in host byte order; they are read here with memcpy at documented offsets,
// never by casting the buffer (alignment and aliasing), and never outside the buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "ism/result.hpp"

namespace ism::vfio {

/// One capability: its header fields and its bytes, from its header up to the next
/// capability (or the end of the buffer for the last one).
struct CapView {
    uint16_t id = 0;
    uint16_t version = 0;
    std::size_t offset = 0;  // from the start of the reply buffer
    std::span<const std::byte> bytes;
};

/// A host-order integer at `offset` in `bytes`; 0 if it does not fit (callers check the
/// size first, this only guarantees that nothing outside `bytes` is ever read).
template <class T>
T load_native(std::span<const std::byte> bytes, std::size_t offset) noexcept
{
    T value{};
    if (offset <= bytes.size() && bytes.size() - offset >= sizeof(T))
        std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
}

/// Walks the chain that starts at `first` (0: no capabilities). `fixed_size` is the size
/// of the reply's fixed part, which no capability may overlap. Fails with
/// errc::bad_capability on an offset outside the buffer, a header that does not fit, or a
/// next offset that does not move forward (the kernel appends capabilities in order, so a
/// backward or self reference can only be a loop or corruption).
Result<std::vector<CapView>> walk_caps(std::span<const std::byte> buffer, uint32_t first,
                                       std::size_t fixed_size);

}  // namespace ism::vfio
