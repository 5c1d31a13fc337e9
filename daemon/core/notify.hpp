// SPDX-License-Identifier: MIT
// Notifier: ismd's side of the systemd service protocol (sd_notify), for Type=notify.
//
// READY=1 once the device is open, the links are started and the control socket
// listens; STATUS= whenever the one-line summary changes; RELOADING=1 and READY=1
// around a reload; STOPPING=1 on the way out; WATCHDOG=1 at half the interval systemd
// asks for (WatchdogSec=), from the event loop, so a stuck loop is noticed. Without
// NOTIFY_SOCKET (ismd started by hand) every call does nothing.
#pragma once

#include <chrono>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace ismd {

class Notifier {
public:
    explicit Notifier(const boost::asio::any_io_executor& executor);

    void ready();
    void reloading();
    void stopping();
    /// Sends STATUS=text when it differs from the last one sent.
    void status(const std::string& text);
    /// Starts the watchdog pings if systemd asked for them; returns the interval (0: none).
    std::chrono::microseconds start_watchdog();
    void stop_watchdog();

private:
    void send(const std::string& state);
    void ping();

    boost::asio::steady_timer timer_;
    std::chrono::microseconds interval_{0};
    std::string last_status_;
};

}  // namespace ismd
