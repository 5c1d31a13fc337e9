// SPDX-License-Identifier: MIT
#include "tools/common/control_client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/control_proto.hpp"

namespace ismd::tools {

std::string default_control_socket()
{
    const char* env = std::getenv("ISMD_CONTROL_SOCKET");
    return env != nullptr && *env != '\0' ? env : "/run/ismd/control.sock";
}

tl::expected<ControlClient, std::string> ControlClient::connect(const std::string& path)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return tl::unexpected("control socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ism::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return tl::unexpected(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        std::string hint;
        if (err == ENOENT || err == ECONNREFUSED)
            hint = " (is ismd running? systemctl status ismd)";
        else if (err == EACCES)
            hint = " (root or the group of the control socket may use it)";
        return tl::unexpected("cannot reach ismd at " + path + ": " + std::strerror(err) + hint);
    }
    return ControlClient(std::move(fd), path);
}

bool ControlClient::send(const nlohmann::json& request)
{
    std::string line = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    std::size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::send(fd_.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

tl::expected<nlohmann::json, std::string> ControlClient::read_reply()
{
    for (;;) {
        if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
            const std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            auto reply = nlohmann::json::parse(line, nullptr, false);
            if (reply.is_discarded() || !reply.is_object())
                return tl::unexpected(std::string("ismd sent a reply that is not JSON"));
            return reply;
        }
        if (buffer_.size() > control::kMaxLine)
            return tl::unexpected(std::string("ismd sent a reply longer than 1 MiB"));
        char chunk[65536];
        const ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return tl::unexpected("reading from ismd: " + std::string(std::strerror(errno)));
        if (n == 0)
            return tl::unexpected(std::string("ismd closed the connection"));
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
}

tl::expected<nlohmann::json, std::string> ControlClient::call(const std::string& op,
                                                              nlohmann::json args)
{
    args["v"] = control::kVersion;
    args["op"] = op;
    const bool sent = send(args);
    const int send_errno = errno;
    // A refusal (our credentials) may arrive before, or instead of, reading our request.
    auto reply = read_reply();
    if (!sent && !reply)
        return tl::unexpected("writing to ismd: " + std::string(std::strerror(send_errno)));
    if (!reply)
        return reply;
    if (!reply->value("ok", false))
        return tl::unexpected(reply->value("error", std::string("ismd refused the request")));
    return reply->contains("result") ? (*reply)["result"] : nlohmann::json();
}

}  // namespace ismd::tools
