// SPDX-License-Identifier: MIT
// ControlServer: the local UNIX socket that ismctl and ism-console talk to
// (control_proto.hpp, docs/control.md).
//
// Every connection's peer credentials (SO_PEERCRED, SO_PEERGROUPS) are checked before
// anything is read: root, ismd's own user, or a member of the configured group; anyone
// else gets one line saying so and the connection is closed. The socket file is created
// 0660 with the configured group. Requests are served on the event loop as coroutines;
// the core and each service register the operations they answer.
//
// The accept loop and the sessions may outlive the ControlServer object (an accept or a
// read still pending when it is destroyed completes later, with operation_aborted): they
// hold the server's State, never the object itself.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <nlohmann/json.hpp>

#include "ism/result.hpp"

namespace ismd {

struct Credentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};

struct ControlRequest {
    std::string op;
    nlohmann::json args;  // the request object as sent
    Credentials who;
};

/// Thrown by an operation handler: the client gets {"ok": false, "error": message}.
struct ControlError {
    std::string message;
};

using ControlSocket = boost::asio::local::stream_protocol::socket;
using OpHandler = std::function<boost::asio::awaitable<nlohmann::json>(const ControlRequest&)>;
/// Takes the connection over: it answers the request itself (control::send_line) and
/// then owns the socket. `leftover` holds bytes the client sent after the request line.
using StreamHandler = std::function<boost::asio::awaitable<void>(
    std::shared_ptr<ControlSocket>, ControlRequest, std::string leftover)>;

class ControlServer {
public:
    ControlServer(const boost::asio::any_io_executor& executor, std::string path,
                  std::string group);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    /// Creates the socket (replacing a stale one) and starts accepting.
    ism::Result<void> listen();
    void on(const std::string& op, OpHandler handler);
    void on_stream(const std::string& op, StreamHandler handler);
    /// Closes the socket and every connection.
    void stop();

    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    /// Everything the accept loop and the sessions use: shared with them.
    struct State {
        explicit State(const boost::asio::any_io_executor& ex) : executor(ex), acceptor(ex) {}

        [[nodiscard]] std::string refusal(const Credentials& who, int fd) const;

        boost::asio::any_io_executor executor;
        std::string group;
        gid_t group_gid = static_cast<gid_t>(-1);
        boost::asio::local::stream_protocol::acceptor acceptor;
        std::map<std::string, OpHandler> ops;
        std::map<std::string, StreamHandler> streams;
        std::set<std::shared_ptr<ControlSocket>> sessions;
        bool stopped = false;
    };

    static boost::asio::awaitable<void> accept_loop(std::shared_ptr<State> state);
    static boost::asio::awaitable<void> session(std::shared_ptr<State> state,
                                                std::shared_ptr<ControlSocket> socket);

    std::string path_;
    std::shared_ptr<State> state_;
};

/// Writes one JSON line.
boost::asio::awaitable<bool> send_line(ControlSocket& socket, const nlohmann::json& message);

}  // namespace ismd
