// SPDX-License-Identifier: MIT
#include "block/nbd_endpoint.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/log.hpp"

namespace ismd::block {

namespace asio = boost::asio;
using asio::use_awaitable;

namespace {

std::string errno_text(int e)
{
    return std::error_code(e, std::system_category()).message();
}

}  // namespace

tl::expected<std::pair<std::string, uint16_t>, std::string> parse_tcp_address(
    const std::string& text)
{
    std::string address = "127.0.0.1";
    std::string port = text;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find("]:");
        if (close == std::string::npos)
            return tl::unexpected("\"" + text + "\": expected [address]:port");
        address = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else if (const auto colon = text.rfind(':'); colon != std::string::npos) {
        if (text.find(':') != colon)
            return tl::unexpected("\"" + text + "\": an IPv6 address goes in brackets");
        if (colon > 0)
            address = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    unsigned value = 0;
    const auto* end = port.data() + port.size();
    const auto [ptr, ec] = std::from_chars(port.data(), end, value);
    if (port.empty() || ec != std::errc() || ptr != end || value > 65535)
        return tl::unexpected("\"" + text + "\": expected a port between 0 and 65535");
    boost::system::error_code aec;
    asio::ip::make_address(address, aec);
    if (aec)
        return tl::unexpected("\"" + text + "\": \"" + address + "\" is not an IP address");
    return std::pair{address, static_cast<uint16_t>(value)};
}

NbdEndpoint::NbdEndpoint(asio::any_io_executor executor, ExportDirectory& directory,
                         ByteBudget& budget, NbdEndpointOptions options)
    : executor_(std::move(executor)),
      directory_(directory),
      budget_(budget),
      options_(std::move(options)),
      unix_(executor_),
      tcp_(executor_),
      stats_(std::make_shared<EndpointStats>()),
      connections_(std::make_shared<std::map<uint64_t, std::weak_ptr<NbdConnection>>>())
{
}

NbdEndpoint::~NbdEndpoint()
{
    stop();
}

tl::expected<void, std::string> NbdEndpoint::start()
{
    if (started_)
        return {};
    if (auto r = listen_unix(); !r)
        return r;
    if (!options_.tcp.empty()) {
        if (auto r = listen_tcp(); !r) {
            boost::system::error_code ec;
            unix_.close(ec);
            ::unlink(options_.socket_path.c_str());
            return r;
        }
    }
    started_ = true;
    asio::co_spawn(executor_, accept_loop(unix_, false), log_if_threw(options_.name + " accept"));
    if (tcp_.is_open())
        asio::co_spawn(executor_, accept_loop(tcp_, true),
                       log_if_threw(options_.name + " accept tcp"));
    return {};
}

tl::expected<void, std::string> NbdEndpoint::listen_unix()
{
    const std::string& path = options_.socket_path;
    auto failed = [&](const std::string& what, int e) {
        return tl::unexpected(path + ": " + what + ": " + errno_text(e));
    };
    gid_t gid = static_cast<gid_t>(-1);
    if (!options_.group.empty()) {
        const group* g = ::getgrnam(options_.group.c_str());
        if (g == nullptr)
            return tl::unexpected(path + ": group \"" + options_.group + "\" does not exist");
        gid = g->gr_gid;
    }
    std::error_code fs_ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), fs_ec);
    if (fs_ec)
        return failed("creating its directory", fs_ec.value());
    // A socket left by a killed ismd is stale; anything else at the path is not ours.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return tl::unexpected(path + ": exists and is not a socket");
        ::unlink(path.c_str());
    }
    boost::system::error_code ec;
    const asio::generic::stream_protocol::endpoint where{
        asio::local::stream_protocol::endpoint(path)};
    unix_.open(where.protocol(), ec);
    if (!ec)
        unix_.bind(where, ec);
    if (!ec)
        unix_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        unix_.close();
        return failed("listen", ec.value());
    }
    int e = ::chmod(path.c_str(), 0660) != 0 ? errno : 0;
    if (e == 0 && gid != static_cast<gid_t>(-1) &&
        ::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0)
        e = errno;
    if (e != 0) {
        unix_.close(ec);
        ::unlink(path.c_str());
        return failed("setting its mode and group", e);
    }
    return {};
}

tl::expected<void, std::string> NbdEndpoint::listen_tcp()
{
    auto parsed = parse_tcp_address(options_.tcp);
    if (!parsed)
        return tl::unexpected("tcp " + parsed.error());
    const asio::ip::tcp::endpoint tcp_where(asio::ip::make_address(parsed->first), parsed->second);
    const asio::generic::stream_protocol::endpoint where{tcp_where};
    boost::system::error_code ec;
    tcp_.open(where.protocol(), ec);
    if (!ec)
        tcp_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec)
        tcp_.bind(where, ec);
    if (!ec)
        tcp_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        boost::system::error_code ignored;
        tcp_.close(ignored);
        return tl::unexpected("tcp " + options_.tcp + ": listen: " + ec.message());
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    if (::getsockname(tcp_.native_handle(), reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
        if (bound.ss_family == AF_INET)
            tcp_port_ = ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
        else if (bound.ss_family == AF_INET6)
            tcp_port_ = ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port);
    }
    return {};
}

void NbdEndpoint::stop()
{
    if (stopped_)
        return;
    stopped_ = true;
    boost::system::error_code ec;
    if (unix_.is_open()) {
        unix_.close(ec);
        ::unlink(options_.socket_path.c_str());
    }
    tcp_.close(ec);
    // close() runs each connection's callback, which erases it from the map: copy first.
    const auto live = *connections_;
    for (const auto& [id, weak] : live)
        if (auto c = weak.lock())
            c->close();
    connections_->clear();
}

asio::awaitable<void> NbdEndpoint::accept_loop(Acceptor& acceptor, bool tcp)
{
    // The endpoint may be gone when an accept completes after stop(): look at nothing of
    // it before checking that the connection map is still its.
    const std::weak_ptr<std::map<uint64_t, std::weak_ptr<NbdConnection>>> alive = connections_;
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(use_awaitable));
        if (alive.expired() || stopped_)
            co_return;
        if (ec) {
            if (ec == asio::error::operation_aborted)
                co_return;
            log(LogLevel::warning, "%s: accept: %s, ignoring", options_.name.c_str(),
                ec.message().c_str());
            continue;
        }
        if (tcp) {
            boost::system::error_code ignored;
            socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        }
        const uint64_t id = ++next_id_;
        auto connection = std::make_shared<NbdConnection>(
            std::move(socket), directory_, budget_, stats_,
            options_.name + ": client " + std::to_string(id), options_.handshake_timeout);
        connections_->emplace(id, connection);
        connection->start([map = std::weak_ptr(connections_), id] {
            if (auto m = map.lock())
                m->erase(id);
        });
    }
}

nlohmann::json NbdEndpoint::status() const
{
    nlohmann::json j;
    j["socket"] = options_.socket_path;
    if (!options_.tcp.empty())
        j["tcp"] = options_.tcp;
    j["connections"] = stats_->connections;
    j["connections_total"] = stats_->connections_total;
    j["requests"] = stats_->requests;
    j["in_flight"] = stats_->in_flight;
    j["bytes_read"] = stats_->bytes_read;
    j["bytes_written"] = stats_->bytes_written;
    j["errors"] = stats_->errors;
    j["protocol_errors"] = stats_->protocol_errors;
    return j;
}

}  // namespace ismd::block
