// SPDX-License-Identifier: MIT
// ConsoleService: the remote console (man ism-console(1), docs/protocol.md "Console").
//
// Per peer, on one message-mode channel of its link:
//  - serving: when the peer's file says "serve", a PtySession runs the configured
//    program (a login prompt by default) and the peer may attach to it;
//  - attaching: local clients (ism-console, over the control socket) attach to the
//    peer's console: any number of read-only watchers and one writer; --force takes the
//    writer's seat and the others are told who took it. The clients stay attached across
//    a link outage and get what they missed when it comes back.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "console/pty_session.hpp"
#include "core/service.hpp"

namespace ismd::console {

/// A peer file's "console" section.
struct ConsoleConfig {
    std::optional<ServeConfig> serve;  // serve a console to this peer
    bool attach = true;                // may this host attach to the peer's console
};

class PeerConsole;

class ConsoleService final : public Service {
public:
    ConsoleService() = default;

    [[nodiscard]] std::string name() const override { return "console"; }
    [[nodiscard]] uint32_t channel_count() const override { return 1; }
    [[nodiscard]] ServiceConfigParser config_parser() const override;
    void register_ops(ControlServer& control) override;
    std::unique_ptr<PeerService> add_peer(const PeerHandle& peer) override;
    [[nodiscard]] std::string summary() const override;
    void stop() override;

    // For PeerConsole.
    void forget(const std::string& peer);
    void changed();

private:
    std::map<std::string, PeerConsole*> peers_;
    std::function<void()> status_changed_;
    bool stopping_ = false;
};

}  // namespace ismd::console
