// SPDX-License-Identifier: MIT
// Endpoint: links to one or more peers over one ISM function, on a Boost.Asio loop.
//
// The Endpoint waits on the device's interrupt fd (no thread of its own, none per
// channel), hands each signalled DMB to its link and each event to the link of the GID
// that sent it, and runs the links' timers. In polling mode it spins on the links' DMBs
// between other handlers instead of waiting for interrupts, and collects events once a
// millisecond: the lowest latency, one core busy.
//
// Threading: the Endpoint, its device and its links belong to the io_context's one
// thread. Ownership: the Endpoint borrows the device, which must outlive it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include "ism/device/ism_device.hpp"
#include "ism/link/link.hpp"

namespace ism::link {

struct EndpointOptions {
    bool polling = false;
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
    /// stops waiting for interrupts and timers. The links stay, closed.
    void stop();

    [[nodiscard]] device::IsmDevice& device() noexcept { return device_; }
    [[nodiscard]] boost::asio::any_io_executor executor() noexcept { return io_.get_executor(); }
    [[nodiscard]] bool polling() const noexcept { return options_.polling; }

private:
    class DevicePort;
    struct Entry {
        std::unique_ptr<DevicePort> port;
        std::unique_ptr<Link> link;
    };

    void wait_irq();
    void on_irq();
    void dispatch(const device::InterruptReport& report);
    void arm_timer();
    void spin();
    Link* link_for_gid(uint64_t gid);

    boost::asio::io_context& io_;
    device::IsmDevice& device_;
    EndpointOptions options_;
    boost::asio::posix::stream_descriptor irq_;
    boost::asio::steady_timer timer_;
    std::vector<Entry> entries_;
    std::map<uint32_t, Link*> by_sba_;  // our DMBs, by SBA index
    bool stopped_ = false;
    Clock::time_point next_events_{};
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ism::link
