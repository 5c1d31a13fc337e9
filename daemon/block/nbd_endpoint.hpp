// SPDX-License-Identifier: MIT
// NbdEndpoint: the local NBD server for one peer's exports: a UNIX socket (and, if
// configured, a TCP port, loopback unless told otherwise) where real NBD clients attach.
//
// Each accepted client becomes an NbdConnection (nbd_connection.hpp): the handshake offers
// the ExportDirectory's exports, transmission submits requests to the chosen Export. All
// connections share one ByteBudget, which bounds the memory their requests hold.
//
// The UNIX socket's parent directories are created; the socket is made 0660 with the
// configured group; a stale socket left by a killed ismd is replaced (anything else at the
// path is not ours, and start() fails); stop() removes it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "block/byte_budget.hpp"
#include "block/export.hpp"
#include "block/nbd_connection.hpp"

namespace ismd::block {

struct NbdEndpointOptions {
    /// The UNIX socket, e.g. /run/ismd/nbd/lpar2/data.sock.
    std::string socket_path;
    /// Group of the socket file ("": the daemon's own).
    std::string group;
    /// "address:port", ":port" or "port" (loopback), "[::1]:port"; "": no TCP listener.
    std::string tcp;
    /// Names the endpoint in log lines ("nbd lpar2").
    std::string name = "nbd";
    /// A client that has not chosen an export by then is cut off.
    std::chrono::milliseconds handshake_timeout{30'000};
};

class NbdEndpoint {
public:
    /// `directory` and `budget` must outlive the endpoint; `budget` also outlives every
    /// request still held by an Export after stop().
    NbdEndpoint(boost::asio::any_io_executor executor, ExportDirectory& directory,
                ByteBudget& budget, NbdEndpointOptions options);
    ~NbdEndpoint();
    NbdEndpoint(const NbdEndpoint&) = delete;
    NbdEndpoint& operator=(const NbdEndpoint&) = delete;

    /// Creates the sockets and starts accepting. The error is a line for the log, naming
    /// the path or address and what failed.
    tl::expected<void, std::string> start();
    /// Closes the listeners and every connection, and removes the socket file. Requests
    /// still at an Export complete into nothing. Idempotent.
    void stop();

    /// {"socket", "tcp", "connections", "connections_total", "requests", "in_flight",
    ///  "bytes_read", "bytes_written", "errors", "protocol_errors"}
    [[nodiscard]] nlohmann::json status() const;
    [[nodiscard]] const EndpointStats& stats() const noexcept { return *stats_; }
    /// The TCP port actually bound (useful with port 0); 0 without TCP.
    [[nodiscard]] uint16_t tcp_port() const noexcept { return tcp_port_; }

private:
    using Acceptor = boost::asio::basic_socket_acceptor<boost::asio::generic::stream_protocol>;

    tl::expected<void, std::string> listen_unix();
    tl::expected<void, std::string> listen_tcp();
    boost::asio::awaitable<void> accept_loop(Acceptor& acceptor, bool tcp);

    boost::asio::any_io_executor executor_;
    ExportDirectory& directory_;
    ByteBudget& budget_;
    NbdEndpointOptions options_;
    Acceptor unix_;
    Acceptor tcp_;
    uint16_t tcp_port_ = 0;
    std::shared_ptr<EndpointStats> stats_;
    /// Live connections by number; shared with their close callbacks.
    std::shared_ptr<std::map<uint64_t, std::weak_ptr<NbdConnection>>> connections_;
    uint64_t next_id_ = 0;
    bool started_ = false;
    bool stopped_ = false;
};

/// Parses "address:port", ":port", "port" or "[v6]:port"; the address defaults to
/// 127.0.0.1. The error names what was wrong.
tl::expected<std::pair<std::string, uint16_t>, std::string> parse_tcp_address(
    const std::string& text);

}  // namespace ismd::block
