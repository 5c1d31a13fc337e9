// SPDX-License-Identifier: MIT
// Service: what a service of ismd (console, block) sees of the core, and what the core
// asks of it. A service never sees another service.
//
// The core owns the peers (one link each) and gives every service a block of channels
// on every peer's link, the service's section of the peer's file, the control socket to
// register its operations on, and a way to say that its status changed. Adding a service
// means one line in ismd's main (the list of services), nothing else in core/.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include <boost/asio/any_io_executor.hpp>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/control_server.hpp"
#include "ism/link/link.hpp"

namespace ismd {

/// One peer, as a service sees it.
struct PeerHandle {
    std::string name;
    uint64_t gid = 0;
    const ServiceSection* section = nullptr;  // the service's section of the peer file, or null
    ism::link::Link* link = nullptr;
    uint32_t first_channel = 0;  // the service's channels: first_channel .. + channel_count()
    boost::asio::any_io_executor executor;
    std::function<void()> status_changed;  // call when summary() or status() would change
};

/// A service's state for one peer.
class PeerService {
public:
    virtual ~PeerService() = default;
    /// The link came up (again) or went down. Channels' own handlers see it too.
    virtual void link_up() {}
    virtual void link_down(std::error_code /*why*/) {}
    /// This peer's part of `ismctl status --json`.
    [[nodiscard]] virtual nlohmann::json status() const = 0;
};

class Service {
public:
    virtual ~Service() = default;
    /// Its key in peer files, in status output and the prefix of its control operations.
    [[nodiscard]] virtual std::string name() const = 0;
    /// Channels it uses on every link, in message or stream mode as it opens them.
    [[nodiscard]] virtual uint32_t channel_count() const = 0;
    /// Reads and checks its section of a peer file.
    [[nodiscard]] virtual ServiceConfigParser config_parser() const = 0;
    /// ismd starts with this global configuration, before the first add_peer(). What a
    /// service takes from it (the control socket's directory, ...) changes only at a restart.
    virtual void configure(const GlobalConfig& /*global*/) {}
    /// Registers its operations ("<name>.xyz") on the control socket. A service that has
    /// none (its state is all in `status`) keeps this one.
    virtual void register_ops(ControlServer& /*control*/) {}
    /// A peer arrived (start, or reload). May return null: nothing to do for this peer.
    virtual std::unique_ptr<PeerService> add_peer(const PeerHandle& peer) = 0;
    /// Its part of the STATUS= line, e.g. "console: 1 attached"; empty to say nothing.
    [[nodiscard]] virtual std::string summary() const = 0;
    /// ismd is stopping: let go of clients and children.
    virtual void stop() = 0;
};

}  // namespace ismd
