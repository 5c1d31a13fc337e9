// SPDX-License-Identifier: MIT
// Daemon: ismd itself, on one Boost.Asio event loop: the device, the Endpoint with one
// link per peer, the services, the control socket, systemd notification and signals.
//
// start() opens everything and only then says READY=1; SIGHUP (or `ismctl reload`)
// reloads: a peer whose file did not change keeps its link and its sessions, a bad new
// configuration is reported and the running one kept; SIGTERM stops cleanly (links
// reset, DMBs unregistered) and io_context::run() returns.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "core/config.hpp"
#include "core/control_server.hpp"
#include "core/notify.hpp"
#include "core/peer.hpp"
#include "core/service.hpp"
#include "ism/device/ism_device.hpp"
#include "ism/link/endpoint.hpp"

namespace ismd {

/// The schema of ismd's files with these services' sections.
ConfigSchema make_schema(const std::vector<std::unique_ptr<Service>>& services);

class Daemon {
public:
    Daemon(boost::asio::io_context& io, std::filesystem::path config_file, Config config,
           std::vector<std::unique_ptr<Service>> services);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    /// Opens the device, starts the links and the control socket, then READY=1.
    /// On failure the error is a line for the log.
    tl::expected<void, std::string> start();
    /// Reloads the configuration; returns the error that kept the running one.
    tl::expected<void, std::string> reload();
    void stop();

private:
    tl::expected<void, std::string> open_device();
    tl::expected<void, std::string> add_peer(const PeerConfig& peer);
    /// reload() without the notifications around it: reads the configuration and
    /// applies what may change while running.
    tl::expected<void, std::string> apply_new_config();
    void register_ops();
    void wait_signal();
    void update_status();
    Peer* find_peer(const std::string& name);
    [[nodiscard]] std::string summary() const;
    [[nodiscard]] ism::link::LinkOptions link_options(uint64_t peer_gid) const;

    boost::asio::io_context& io_;
    std::filesystem::path config_file_;
    Config config_;
    std::vector<std::unique_ptr<Service>> services_;
    std::vector<Service*> service_list_;
    std::vector<uint32_t> first_channels_;
    ConfigSchema schema_;

    std::unique_ptr<ism::device::IsmDevice> device_;
    std::unique_ptr<ism::link::Endpoint> endpoint_;
    std::map<std::string, std::unique_ptr<Peer>> peers_;
    std::unique_ptr<ControlServer> control_;
    Notifier notifier_;
    boost::asio::signal_set signals_;
    bool stopping_ = false;
    bool status_posted_ = false;
};

}  // namespace ismd
