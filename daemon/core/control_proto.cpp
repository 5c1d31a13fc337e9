// SPDX-License-Identifier: MIT
#include "core/control_proto.hpp"

#include "ism/byte_order.hpp"

namespace ismd::control {

void append_frame(std::vector<std::byte>& out, FrameType type, std::span<const std::byte> payload)
{
    const std::size_t at = out.size();
    out.resize(at + kFrameHeader);
    out[at] = static_cast<std::byte>(type);
    ism::store_be32(out, at + 1, static_cast<uint32_t>(payload.size()));
    out.insert(out.end(), payload.begin(), payload.end());
}

bool FrameReader::feed(std::span<const std::byte> bytes)
{
    if (start_ > 0 && start_ == buffer_.size()) {
        buffer_.clear();
        start_ = 0;
    }
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    // Check every complete header now, so a bad stream fails at once.
    std::size_t at = start_;
    while (at + kFrameHeader <= buffer_.size()) {
        const auto type = static_cast<uint8_t>(buffer_[at]);
        const uint32_t n = ism::load_be32(buffer_, at + 1);
        if (type < static_cast<uint8_t>(FrameType::data) ||
            type > static_cast<uint8_t>(FrameType::hangup) || n > kMaxFrame)
            return false;
        at += kFrameHeader + n;
    }
    return true;
}

std::optional<Frame> FrameReader::next()
{
    if (buffer_.size() - start_ < kFrameHeader)
        return std::nullopt;
    const uint32_t n = ism::load_be32(buffer_, start_ + 1);
    if (buffer_.size() - start_ < kFrameHeader + n)
        return std::nullopt;
    Frame f{static_cast<FrameType>(buffer_[start_]), {}};
    const auto first = buffer_.begin() + static_cast<std::ptrdiff_t>(start_ + kFrameHeader);
    f.payload.assign(first, first + n);
    start_ += kFrameHeader + n;
    if (start_ > (std::size_t{1} << 16)) {
        buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start_));
        start_ = 0;
    }
    return f;
}

}  // namespace ismd::control
