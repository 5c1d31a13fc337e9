// SPDX-License-Identifier: MIT
// PeerConsole: the console service's state for one peer: the session we serve to it
// (if any) and the local clients attached to its console.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "console/console_proto.hpp"
#include "console/console_service.hpp"
#include "console/pty_session.hpp"
#include "core/control_proto.hpp"
#include "core/control_server.hpp"
#include "core/service.hpp"

namespace ismd::console {

/// One ism-console connected through the control socket.
struct LocalClient {
    std::shared_ptr<ControlSocket> socket;
    Credentials who;
    uint32_t attach = 0;
    bool writer = false;
    uint16_t cols = 0;  // its window, sent with OPEN when it is the writer (0: unknown)
    uint16_t rows = 0;
    bool live = false;     // its replay arrived: it gets output from now on
    uint64_t session = 0;  // the server's session it has seen
    uint64_t offset = 0;   // output it has up to
    std::deque<std::vector<std::byte>> out;
    std::size_t out_bytes = 0;
    bool writing = false;
    bool closed = false;
};

class PeerConsole final : public PeerService {
public:
    PeerConsole(ConsoleService& service, const PeerHandle& peer, const ConsoleConfig& config);
    // Its goodbye notices and the status update allocate through Asio, which reports
    // running out of memory as boost::wrapexcept<std::bad_alloc>: clang-tidy ignores
    // std::bad_alloc but does not see it through Boost's wrapper.
    ~PeerConsole() override;  // NOLINT(bugprone-exception-escape): only out of memory, above
    PeerConsole(const PeerConsole&) = delete;
    PeerConsole& operator=(const PeerConsole&) = delete;

    void link_up() override;
    void link_down(std::error_code why) override;
    [[nodiscard]] nlohmann::json status() const override;

    /// Serves one ism-console on `socket` until it detaches or goes.
    boost::asio::awaitable<void> attach(std::shared_ptr<ControlSocket> socket,
                                        ControlRequest request, std::string leftover);
    /// Sends a break (or a hang-up) to the peer's console; the error, or empty.
    std::string signal_remote(bool is_break);
    /// Local clients attached.
    [[nodiscard]] std::size_t attached() const noexcept { return clients_.size(); }
    /// The peer's clients attached to the console we serve.
    [[nodiscard]] std::size_t served() const noexcept { return remote_opens_.size(); }

private:
    void arm_receive();
    void on_message(std::vector<std::byte> bytes);
    void send(const Message& message);
    bool link_up_now() const;

    // Serving.
    void serve_open(const Open& open);
    void serve_output(uint64_t offset, std::span<const std::byte> bytes);

    // Attaching.
    void open_remote(LocalClient& client);
    void to_client(LocalClient& client, control::FrameType type,
                   std::span<const std::byte> payload);
    void notice(LocalClient& client, const std::string& text);
    void notice_all(const std::string& text);
    void flush(const std::shared_ptr<LocalClient>& client);
    void drop(const std::shared_ptr<LocalClient>& client);
    LocalClient* by_attach(uint32_t attach);
    void handle_frame(const std::shared_ptr<LocalClient>& client, const control::Frame& frame);

    ConsoleService& service_;
    PeerHandle peer_;
    ConsoleConfig config_;
    ism::link::Channel& channel_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

    std::unique_ptr<PtySession> pty_;
    std::set<uint32_t> remote_opens_;
    std::size_t in_flight_ = 0;  // bytes sent on the link and not yet taken by the peer
    uint64_t malformed_ = 0;

    std::vector<std::shared_ptr<LocalClient>> clients_;
    uint32_t next_attach_ = 1;
    bool link_was_up_ = false;
};

}  // namespace ismd::console
