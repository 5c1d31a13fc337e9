// SPDX-License-Identifier: MIT
// Endpoint: links to one or more peers over one ISM function, on a Boost.Asio loop.
//
// The Endpoint hands each signalled DMB to its link and each event to the link of the GID
// that sent it, and runs the links' timers, with no thread of its own and none per
// channel. How it notices that a DMB changed is its mode (EndpointOptions::mode):
//  - interrupt: it waits on the device's interrupt fd. An idle Endpoint uses no CPU; each
//    wake-up costs a scheduler wake-up (tens of µs on a VM), paid twice per ring cycle in
//    bulk transfer and on each side of a request/reply.
//  - adaptive (the default): it waits on the interrupt, and after activity (a cursor the
//    peer moved in one of our DMBs, or a signalled store of ours) it polls its DMBs for
//    `poll_window` before it arms the interrupt again: busy links never wait for a
//    wake-up, idle ones use no CPU (NAPI busy polling, DPDK's interrupt mode).
//  - polling: it polls all the time: the lowest latency, one core busy.
// While polling, the Endpoint does not wait on the interrupt and leaves the summary bit
// of the SBA set, so the peer's signals raise no interrupt at all (docs/sim.md); events
// are collected once a millisecond; a loop that finds nothing for a few µs yields the
// CPU once, for a peer that shares its core. Polling runs from a handler that re-posts
// itself every slice (50 µs) and after each pass that found work, so other handlers on
// the io_context (timers, sockets, completions, the links' own) still run.
//
// Threading: the Endpoint, its device and its links belong to the io_context's one
// thread. Ownership: the Endpoint borrows the device, which must outlive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "ism/device/ism_device.hpp"
#include "ism/link/link.hpp"

namespace ism::link {

enum class PollMode : uint8_t { interrupt, adaptive, polling };

/// The adaptive mode's default poll window, chosen from ism-bench-link's window sweep
/// (docs/benchmarks.md).
inline constexpr std::chrono::microseconds kDefaultPollWindow{50};

struct EndpointOptions {
    PollMode mode = PollMode::adaptive;
    /// Adaptive mode: how long the Endpoint keeps polling after the last activity before
    /// it arms the interrupt and sleeps. 0 behaves as the interrupt mode.
    std::chrono::microseconds poll_window = kDefaultPollWindow;
};

/// What the Endpoint did, counted since it was made.
struct EndpointStats {
    uint64_t interrupts = 0;    // interrupt wake-ups handled
    uint64_t poll_windows = 0;  // adaptive: times polling began (on activity while asleep)
    uint64_t sleeps = 0;        // adaptive: times a window passed and the interrupt was armed
    uint64_t poll_passes = 0;   // passes of the polling loop over the links' DMBs
    uint64_t busy_passes = 0;   // passes (and interrupts) that found a moved cursor
    uint64_t timer_runs = 0;    // the links' timers ran (which also catch a lost interrupt)
};

class Endpoint {
public:
    Endpoint(boost::asio::io_context& io, device::IsmDevice& device,
             const EndpointOptions& options = {});
    ~Endpoint();
    Endpoint(const Endpoint&) = delete;
    Endpoint& operator=(const Endpoint&) = delete;

    /// Creates the link to `options.peer_gid` and starts its handshake. The link lives as
    /// long as the Endpoint.
    Result<Link*> add_link(const LinkOptions& options);
    /// Drops the link: it shuts down (the peer is told by RESET) and is destroyed.
    void remove_link(Link* link);
    /// Shuts every link down (Link::shutdown: pending operations complete with
    /// operation_canceled, the peer is told by RESET, the DMBs are unregistered) and
    /// stops waiting for interrupts and timers and polling. The links stay, closed.
    void stop();

    [[nodiscard]] device::IsmDevice& device() noexcept { return device_; }
    [[nodiscard]] boost::asio::any_io_executor executor() noexcept { return io_.get_executor(); }
    [[nodiscard]] const EndpointOptions& options() const noexcept { return options_; }
    [[nodiscard]] bool polling() const noexcept { return options_.mode == PollMode::polling; }
    /// True while the Endpoint waits on the interrupt with no polling loop running (always
    /// in interrupt mode, never in polling mode, after a quiet window in adaptive mode).
    [[nodiscard]] bool sleeping() const noexcept { return !spinning_; }
    [[nodiscard]] const EndpointStats& stats() const noexcept { return stats_; }

private:
    class DevicePort;
    struct Entry {
        std::unique_ptr<DevicePort> port;
        std::unique_ptr<Link> link;
    };

    void wait_irq();
    void on_irq();
    bool dispatch(const device::InterruptReport& report, Clock::time_point now);
    void arm_timer();
    void note_store();
    void start_polling();
    void spin();
    bool poll_all(Clock::time_point now);
    void arm_interrupt();
    Link* link_for_gid(uint64_t gid);

    boost::asio::io_context& io_;
    device::IsmDevice& device_;
    EndpointOptions options_;
    boost::asio::posix::stream_descriptor irq_;
    boost::asio::steady_timer timer_;
    std::vector<Entry> entries_;
    std::map<uint32_t, DevicePort*> by_sba_;  // our DMBs, by SBA index
    bool stopped_ = false;
    bool spinning_ = false;     // a polling loop is posted or running
    bool waiting_irq_ = false;  // an async_wait on the interrupt fd is pending
    bool stored_ = false;       // we made a signalled store since the loop last looked
    bool handed_ = false;       // poll_all's last pass ran a link's handlers
    Clock::duration yield_after_ = std::chrono::microseconds(5);  // idle time before a yield
    Clock::time_point last_activity_{};
    Clock::time_point next_events_{};
    EndpointStats stats_;
    std::vector<uint8_t> moved_;  // poll_all's scratch: which ports' cursors moved
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ism::link
