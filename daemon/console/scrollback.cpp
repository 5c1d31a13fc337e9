// SPDX-License-Identifier: MIT
#include "console/scrollback.hpp"

#include <algorithm>

namespace ismd::console {

Scrollback::Scrollback(std::size_t capacity) : ring_(std::max<std::size_t>(capacity, 1)) {}

void Scrollback::append(std::span<const std::byte> bytes)
{
    end_ += bytes.size();
    if (bytes.size() >= ring_.size())
        bytes = bytes.last(ring_.size());
    while (!bytes.empty()) {
        const std::size_t n = std::min(bytes.size(), ring_.size() - head_);
        std::copy_n(bytes.begin(), n, ring_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = (head_ + n) % ring_.size();
        bytes = bytes.subspan(n);
        size_ = std::min(ring_.size(), size_ + n);
    }
}

std::vector<std::byte> Scrollback::since(uint64_t from) const
{
    const uint64_t first = std::max(from, begin());
    if (first >= end_)
        return {};
    const auto n = static_cast<std::size_t>(end_ - first);
    std::vector<std::byte> out(n);
    const std::size_t start = (head_ + ring_.size() - n) % ring_.size();
    const std::size_t a = std::min(n, ring_.size() - start);
    std::copy_n(ring_.begin() + static_cast<std::ptrdiff_t>(start), a, out.begin());
    std::copy_n(ring_.begin(), n - a, out.begin() + static_cast<std::ptrdiff_t>(a));
    return out;
}

}  // namespace ismd::console
