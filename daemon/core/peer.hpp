// SPDX-License-Identifier: MIT
// Peer: one configured peer of ismd: its link over the Endpoint, the link's history for
// `ismctl status`, and the services' state for it.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/service.hpp"
#include "ism/link/endpoint.hpp"

namespace ismd {

class EchoResponder;

class Peer {
public:
    /// Creates the link and the services' state. `on_change` runs when the summary may
    /// have changed (link up/down, a service's status).
    Peer(PeerConfig config, ism::link::Endpoint& endpoint, ism::link::Link& link,
         const std::vector<Service*>& services, const std::vector<uint32_t>& first_channels,
         std::function<void()> on_change);
    ~Peer();
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;

    [[nodiscard]] const PeerConfig& config() const noexcept { return config_; }
    [[nodiscard]] const std::string& name() const noexcept { return config_.name; }
    [[nodiscard]] ism::link::Link& link() noexcept { return link_; }
    [[nodiscard]] bool up() const noexcept { return link_.up(); }
    [[nodiscard]] nlohmann::json status() const;
    [[nodiscard]] std::shared_ptr<EchoResponder> echo() const noexcept { return echo_; }

private:
    void on_link_event(const ism::link::LinkEvent& event);

    PeerConfig config_;
    ism::link::Endpoint& endpoint_;
    ism::link::Link& link_;
    std::function<void()> on_change_;
    std::map<std::string, std::unique_ptr<PeerService>> services_;
    std::shared_ptr<EchoResponder> echo_;
    std::chrono::system_clock::time_point last_up_{};
    std::chrono::system_clock::time_point last_down_{};
    std::string last_error_;
    uint64_t resets_ = 0;
};

}  // namespace ismd
