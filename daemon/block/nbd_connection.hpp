// SPDX-License-Identifier: MIT
// NbdConnection: one NBD client of the local endpoint, from the greeting to the close.
//
// After the handshake (nbd_handshake.hpp) it reads 28-byte requests, checks each against
// what the client was told (size, flags, negotiated replies), takes the request's bytes
// from the endpoint's ByteBudget, reads a write's payload, and submits the request to the
// Export. Many requests are in flight at once; replies go out in completion order through
// one writer, several per write(2) when they queue up. While the budget is spent the
// connection stops reading: the client is slowed, never buffered without limit.
//
// A request it can answer with an error gets one (and a write's payload is skipped); a
// request it cannot safely skip (bad magic, a write longer than 32 MiB) ends the
// connection, after the replies already owed are written. DISC and end of file finish the
// same way. Completions from the Export hold only weak references: after close() they
// find the connection gone or closed and do nothing but give their bytes back.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "block/byte_budget.hpp"
#include "block/export.hpp"
#include "block/nbd_handshake.hpp"
#include "block/nbd_proto.hpp"

namespace ismd::block {

/// Counters of one endpoint, shared by its connections (they may outlive the endpoint).
struct EndpointStats {
    uint64_t connections = 0;        // open now
    uint64_t connections_total = 0;  // accepted since start
    uint64_t requests = 0;           // requests received, DISC not counted
    uint64_t in_flight = 0;          // submitted to an export, not answered yet
    uint64_t bytes_read = 0;         // READ data sent to clients
    uint64_t bytes_written = 0;      // WRITE data received from clients
    uint64_t errors = 0;             // requests answered with an error
    uint64_t protocol_errors = 0;    // connections cut for a malformed handshake or request
};

/// What checking a request against the export found.
struct RequestCheck {
    uint32_t error = 0;  // an NBD error; 0: the request is valid
    std::string message;
    bool disconnect = false;  // the request's payload cannot be skipped safely
};

/// Checks a request header against what the handshake told the client. Pure.
RequestCheck check_request(const nbd::Request& request, const nbd::ExportInfo& info,
                           bool structured, bool base_allocation);

/// Bytes every request holds of the budget on top of its payload (the request, its reply
/// header, a block status reply), so that requests without payload are bounded too.
inline constexpr std::size_t kRequestCost = 512;

class NbdConnection : public std::enable_shared_from_this<NbdConnection> {
public:
    using Socket = boost::asio::generic::stream_protocol::socket;

    /// `name` prefixes the connection's log lines ("nbd lpar2: client 3"). A client that
    /// has not chosen an export within `handshake_timeout` is cut off.
    NbdConnection(Socket socket, ExportDirectory& directory, ByteBudget& budget,
                  std::shared_ptr<EndpointStats> stats, std::string name,
                  std::chrono::milliseconds handshake_timeout);
    ~NbdConnection();
    NbdConnection(const NbdConnection&) = delete;
    NbdConnection& operator=(const NbdConnection&) = delete;

    /// Runs the handshake, then serves requests. `on_closed` runs once, from close().
    void start(std::function<void()> on_closed);
    /// Closes the socket now; replies not written yet are dropped. Idempotent.
    void close();

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] bool closed() const noexcept { return closed_; }

private:
    struct Reply {
        std::vector<std::byte> head;
        std::vector<std::byte> data;
        BudgetLease lease;
    };
    /// A request between submit() and its completion.
    struct Pending;

    boost::asio::awaitable<void> run();
    boost::asio::awaitable<bool> handshake();
    boost::asio::awaitable<void> serve();
    boost::asio::awaitable<bool> fill(std::size_t n);
    boost::asio::awaitable<bool> read_into(std::span<std::byte> out);
    boost::asio::awaitable<bool> skip(uint64_t n);
    boost::asio::awaitable<std::optional<BudgetLease>> acquire(std::size_t bytes);

    void submit(const nbd::Request& request, IoRequest io, BudgetLease lease);
    void completed(const nbd::Request& request, BudgetLease lease, IoResult result);
    void reply_ok(const nbd::Request& request, BudgetLease lease);
    void reply_error(const nbd::Request& request, uint32_t error, const std::string& message,
                     BudgetLease lease);
    void reply_read(const nbd::Request& request, std::vector<std::byte> data, BudgetLease lease);
    void reply_block_status(const nbd::Request& request, const std::vector<StatusExtent>& extents,
                            BudgetLease lease);
    void enqueue(Reply reply);
    void write_next();
    void written(boost::system::error_code ec);
    void maybe_finish();
    void protocol_error(const std::string& why);

    Socket socket_;
    ExportDirectory& directory_;
    ByteBudget& budget_;
    std::shared_ptr<EndpointStats> stats_;
    std::string name_;
    std::chrono::milliseconds handshake_timeout_;
    std::function<void()> on_closed_;
    std::shared_ptr<NbdConnection> starter_;  // from start() until run() begins
    boost::asio::steady_timer timer_;         // the handshake's deadline; then the wait to finish
    boost::asio::cancellation_signal cancel_;

    // Bytes read from the socket and not consumed yet: [in_begin_, in_end_).
    std::vector<std::byte> in_;
    std::size_t in_begin_ = 0;
    std::size_t in_end_ = 0;

    std::shared_ptr<Export> export_;
    nbd::ExportInfo info_;
    bool structured_ = false;
    bool base_allocation_ = false;

    std::deque<Reply> out_;
    std::vector<Reply> batch_;  // being written
    std::vector<boost::asio::const_buffer> buffers_;
    bool writing_ = false;
    bool waiting_for_budget_ = false;
    bool finishing_ = false;  // no more requests are read; close once all are answered
    bool closed_ = false;
    uint64_t in_flight_ = 0;
};

}  // namespace ismd::block
