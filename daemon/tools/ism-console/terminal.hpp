// SPDX-License-Identifier: MIT
// RawTerminal: puts a terminal in raw mode and puts it back, on every way out.
//
// The settings are restored by the destructor, and by restore() which the client calls
// before printing its last line; restore() is idempotent. When stdin is not a terminal
// (a script pipes keys in) nothing is changed.
#pragma once

#include <termios.h>

#include <optional>
#include <utility>

namespace ismd::tools {

class RawTerminal {
public:
    explicit RawTerminal(int fd);
    ~RawTerminal() { restore(); }
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;

    /// Restores the settings found at construction.
    void restore() noexcept;
    [[nodiscard]] bool is_tty() const noexcept { return saved_.has_value(); }
    /// The window size (cols, rows), or nothing.
    [[nodiscard]] std::optional<std::pair<unsigned, unsigned>> size() const;

private:
    int fd_;
    std::optional<termios> saved_;
};

}  // namespace ismd::tools
