// SPDX-License-Identifier: MIT
#include "core/notify.hpp"

#include <time.h>

#include <systemd/sd-daemon.h>

#include "core/log.hpp"

namespace ismd {

Notifier::Notifier(const boost::asio::any_io_executor& executor) : timer_(executor) {}

void Notifier::send(const std::string& state)
{
    const int r = sd_notify(0, state.c_str());
    if (r < 0)
        log(LogLevel::warning, "sd_notify(%s): %s", state.c_str(), std::strerror(-r));
}

void Notifier::ready()
{
    send("READY=1");
}

void Notifier::reloading()
{
    // MONOTONIC_USEC lets systemd match the READY=1 that ends the reload to this one.
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                      static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void Notifier::stopping()
{
    send("STOPPING=1");
}

void Notifier::status(const std::string& text)
{
    if (text == last_status_)
        return;
    last_status_ = text;
    send("STATUS=" + text);
}

std::chrono::microseconds Notifier::start_watchdog()
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return std::chrono::microseconds(0);
    interval_ = std::chrono::microseconds(usec / 2);
    ping();
    return std::chrono::microseconds(usec);
}

void Notifier::stop_watchdog()
{
    interval_ = std::chrono::microseconds(0);
    timer_.cancel();
}

void Notifier::ping()
{
    if (interval_.count() == 0)
        return;
    send("WATCHDOG=1");
    timer_.expires_after(interval_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec)
            ping();
    });
}

}  // namespace ismd
