// SPDX-License-Identifier: MIT
// Scrollback: the last N bytes a console program wrote, addressed by output offset.
//
// Offsets count every byte the session ever produced, so a client that saw output up
// to offset X can ask for what came after, and learns when part of it is gone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace ismd::console {

class Scrollback {
public:
    explicit Scrollback(std::size_t capacity);

    void append(std::span<const std::byte> bytes);
    /// Offset after the last byte written.
    [[nodiscard]] uint64_t end() const noexcept { return end_; }
    /// Offset of the oldest byte still held.
    [[nodiscard]] uint64_t begin() const noexcept { return end_ - size_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return ring_.size(); }
    /// The bytes from max(from, begin()) to end(), oldest first.
    [[nodiscard]] std::vector<std::byte> since(uint64_t from) const;

private:
    std::vector<std::byte> ring_;
    std::size_t head_ = 0;  // where the next byte goes
    std::size_t size_ = 0;
    uint64_t end_ = 0;
};

}  // namespace ismd::console
