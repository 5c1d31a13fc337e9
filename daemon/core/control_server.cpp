// SPDX-License-Identifier: MIT
#include "core/control_server.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "core/control_proto.hpp"
#include "core/log.hpp"
#include "core/scope_exit.hpp"

namespace ismd {

namespace asio = boost::asio;
using asio::use_awaitable;

namespace {

Credentials peer_credentials(int fd)
{
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return {0, static_cast<uid_t>(-1), static_cast<gid_t>(-1)};
    return {cred.pid, cred.uid, cred.gid};
}

// The peer's supplementary groups at connect time.
std::vector<gid_t> peer_groups(int fd)
{
    std::vector<gid_t> groups(64);
    for (;;) {
        auto len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
            groups.resize(len / sizeof(gid_t));
            return groups;
        }
        if (errno != ERANGE)
            return {};
        groups.resize(len / sizeof(gid_t) + 1);
    }
}

}  // namespace

asio::awaitable<bool> send_line(ControlSocket& socket, const nlohmann::json& message)
{
    std::string line = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    auto [ec, n] =
        co_await asio::async_write(socket, asio::buffer(line), asio::as_tuple(use_awaitable));
    co_return !ec;
}

ControlServer::ControlServer(const asio::any_io_executor& executor, std::string path,
                             std::string group)
    : path_(std::move(path)), state_(std::make_shared<State>(executor))
{
    state_->group = std::move(group);
}

ControlServer::~ControlServer()
{
    stop();
}

ism::Result<void> ControlServer::listen()
{
    State& st = *state_;
    if (!st.group.empty()) {
        const group* g = ::getgrnam(st.group.c_str());
        if (g == nullptr)
            return ism::fail_errno(ENOENT);
        st.group_gid = g->gr_gid;
    }
    std::error_code fs_ec;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), fs_ec);
    // A socket left by a killed ismd is stale; anything else at the path is not ours.
    struct stat info {};
    if (::lstat(path_.c_str(), &info) == 0) {
        if (!S_ISSOCK(info.st_mode))
            return ism::fail_errno(EEXIST);
        ::unlink(path_.c_str());
    }
    boost::system::error_code ec;
    const asio::local::stream_protocol::endpoint where(path_);
    st.acceptor.open(where.protocol(), ec);
    if (!ec)
        st.acceptor.bind(where, ec);
    if (!ec)
        st.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return ism::fail_errno(ec.value());
    if (::chmod(path_.c_str(), 0660) != 0)
        return ism::fail_errno();
    if (st.group_gid != static_cast<gid_t>(-1) &&
        ::chown(path_.c_str(), static_cast<uid_t>(-1), st.group_gid) != 0)
        return ism::fail_errno();
    asio::co_spawn(st.executor, accept_loop(state_), log_if_threw("control: accept"));
    return {};
}

void ControlServer::on(const std::string& op, OpHandler handler)
{
    state_->ops[op] = std::move(handler);
}

void ControlServer::on_stream(const std::string& op, StreamHandler handler)
{
    state_->streams[op] = std::move(handler);
}

void ControlServer::stop()
{
    State& st = *state_;
    if (st.stopped)
        return;
    st.stopped = true;
    boost::system::error_code ec;
    if (st.acceptor.is_open()) {
        st.acceptor.close(ec);
        ::unlink(path_.c_str());
    }
    for (const auto& s : st.sessions)
        s->close(ec);
    st.sessions.clear();
}

std::string ControlServer::State::refusal(const Credentials& who, int fd) const
{
    if (who.uid == 0 || who.uid == ::geteuid())
        return {};
    if (group_gid != static_cast<gid_t>(-1)) {
        const auto groups = peer_groups(fd);
        if (who.gid == group_gid ||
            std::find(groups.begin(), groups.end(), group_gid) != groups.end())
            return {};
        return "permission denied: uid " + std::to_string(who.uid) +
               " is neither root nor in group " + group;
    }
    return "permission denied: uid " + std::to_string(who.uid) +
           " is not root (no control group is configured)";
}

asio::awaitable<void> ControlServer::accept_loop(std::shared_ptr<State> state)
{
    while (!state->stopped) {
        auto [ec, socket] = co_await state->acceptor.async_accept(asio::as_tuple(use_awaitable));
        if (ec) {
            if (state->stopped || ec == asio::error::operation_aborted)
                co_return;
            continue;
        }
        if (state->stopped)
            co_return;
        auto s = std::make_shared<ControlSocket>(std::move(socket));
        state->sessions.insert(s);
        asio::co_spawn(state->executor, session(state, s), log_if_threw("control: session"));
    }
}

asio::awaitable<void> ControlServer::session(std::shared_ptr<State> state,
                                             std::shared_ptr<ControlSocket> socket)
{
    const ScopeExit forget([state, socket] {
        if (!state->stopped)
            state->sessions.erase(socket);
    });

    const Credentials who = peer_credentials(socket->native_handle());
    if (std::string why = state->refusal(who, socket->native_handle()); !why.empty()) {
        log(LogLevel::notice, "control: refused pid %d: %s", static_cast<int>(who.pid),
            why.c_str());
        nlohmann::json refused;
        refused["v"] = control::kVersion;
        refused["ok"] = false;
        refused["error"] = why;
        co_await send_line(*socket, refused);
        co_return;
    }
    std::string buffer;
    while (!state->stopped) {
        auto [ec, n] = co_await asio::async_read_until(
            *socket, asio::dynamic_buffer(buffer, control::kMaxLine), '\n',
            asio::as_tuple(use_awaitable));
        // A line that arrived as the server stopped is not served: the services the
        // handlers use may be gone.
        if (state->stopped)
            co_return;
        if (ec) {
            if (ec == asio::error::not_found) {
                nlohmann::json too_long;
                too_long["v"] = control::kVersion;
                too_long["ok"] = false;
                too_long["error"] = "request line longer than 1 MiB";
                co_await send_line(*socket, too_long);
            }
            co_return;
        }
        const std::string line = buffer.substr(0, n - 1);
        buffer.erase(0, n);

        nlohmann::json reply = {{"v", control::kVersion}};
        nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
        ControlRequest req;
        req.who = who;
        std::string error;
        if (request.is_discarded() || !request.is_object())
            error = "request is not a JSON object";
        else if (!request.contains("v") || request["v"] != control::kVersion)
            error = "unsupported protocol version: this ismd speaks version 1";
        else if (!request.contains("op") || !request["op"].is_string())
            error = "request has no \"op\"";
        if (request.is_object() && request.contains("id"))
            reply["id"] = request["id"];
        if (error.empty()) {
            req.op = request["op"].get<std::string>();
            req.args = request;
            if (auto it = state->streams.find(req.op); it != state->streams.end()) {
                co_await it->second(socket, std::move(req), std::move(buffer));
                co_return;
            }
            auto it = state->ops.find(req.op);
            if (it == state->ops.end()) {
                error = "unknown operation \"" + req.op + "\"";
            } else {
                try {
                    reply["result"] = co_await it->second(req);
                } catch (const ControlError& e) {
                    error = e.message;
                }
            }
        }
        reply["ok"] = error.empty();
        if (!error.empty())
            reply["error"] = error;
        if (!co_await send_line(*socket, reply))
            co_return;
    }
}

}  // namespace ismd
