// SPDX-License-Identifier: MIT
#include "core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <exception>

namespace ismd {

namespace {
std::atomic<LogLevel> g_level{LogLevel::info};
}

void set_log_level(LogLevel level) noexcept
{
    g_level.store(level, std::memory_order_relaxed);
}

bool log_enabled(LogLevel level) noexcept
{
    return static_cast<int>(level) <= static_cast<int>(g_level.load(std::memory_order_relaxed));
}

void log(LogLevel level, const char* fmt, ...)
{
    if (!log_enabled(level))
        return;
    char line[1024];
    int n = std::snprintf(line, sizeof line, "<%d>", static_cast<int>(level));
    va_list ap;
    va_start(ap, fmt);
    const int m = std::vsnprintf(line + n, sizeof line - static_cast<std::size_t>(n) - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : std::min<int>(n + m, static_cast<int>(sizeof line) - 2);
    line[n++] = '\n';
    // A failed log write has nowhere to be reported.
    [[maybe_unused]] const ssize_t w = ::write(STDERR_FILENO, line, static_cast<std::size_t>(n));
}

std::function<void(std::exception_ptr)> log_if_threw(std::string what)
{
    return [what = std::move(what)](const std::exception_ptr& e) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            log(LogLevel::err, "%s: %s", what.c_str(), x.what());
        } catch (...) {
            log(LogLevel::err, "%s: unknown exception", what.c_str());
        }
    };
}

}  // namespace ismd
