// SPDX-License-Identifier: MIT
// Logging: one line per event a person needs, on stderr, with the sd-daemon priority
// prefix ("<3>" ... "<7>") that journald turns into the line's priority. Nothing is
// logged per message or per request.
#pragma once

#include <exception>
#include <functional>
#include <string>

#include "core/config.hpp"

namespace ismd {

void set_log_level(LogLevel level) noexcept;
[[nodiscard]] bool log_enabled(LogLevel level) noexcept;

/// Writes "<N>" + the formatted text + "\n" with one write(2), so lines never interleave.
__attribute__((format(printf, 2, 3))) void log(LogLevel level, const char* fmt, ...);

/// A co_spawn completion handler that logs an exception escaping the task `what`.
std::function<void(std::exception_ptr)> log_if_threw(std::string what);

}  // namespace ismd
