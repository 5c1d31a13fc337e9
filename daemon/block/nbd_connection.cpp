// SPDX-License-Identifier: MIT
#include "block/nbd_connection.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "core/log.hpp"

namespace ismd::block {

namespace asio = boost::asio;
using asio::use_awaitable;
using nbd::Cmd;

namespace {

/// Bytes read from the socket at once; requests and small payloads come out of it.
constexpr std::size_t kReadBuffer = 64 << 10;
/// Replies gathered into one write.
constexpr std::size_t kMaxBatch = 64;
constexpr std::size_t kMaxBatchBytes = 4 << 20;
/// Extents in one block status reply (the protocol allows 2^20; the client asks again).
constexpr std::size_t kMaxExtents = 1 << 16;
constexpr uint16_t kKnownFlags = nbd::kCmdFua | nbd::kCmdNoHole | nbd::kCmdDf | nbd::kCmdReqOne;

const char* command_name(Cmd c)
{
    switch (c) {
        case Cmd::read:
            return "READ";
        case Cmd::write:
            return "WRITE";
        case Cmd::disc:
            return "DISC";
        case Cmd::flush:
            return "FLUSH";
        case Cmd::trim:
            return "TRIM";
        case Cmd::cache:
            return "CACHE";
        case Cmd::write_zeroes:
            return "WRITE_ZEROES";
        case Cmd::block_status:
            return "BLOCK_STATUS";
    }
    return "?";
}

RequestCheck invalid(uint32_t error, std::string message, bool disconnect = false)
{
    return {error, std::move(message), disconnect};
}

}  // namespace

RequestCheck check_request(const nbd::Request& r, const nbd::ExportInfo& info, bool structured,
                           bool base_allocation)
{
    const auto type = static_cast<uint16_t>(r.type);
    if (type > static_cast<uint16_t>(Cmd::block_status))
        return invalid(nbd::kEinval, "unknown command " + std::to_string(type));
    const std::string name = command_name(r.type);
    const bool writes = r.type == Cmd::write || r.type == Cmd::trim || r.type == Cmd::write_zeroes;
    // A write's payload follows the header whatever else is wrong with it: one too long
    // to skip safely ends the connection.
    if (r.type == Cmd::write && r.length > nbd::kMaxPayload)
        return invalid(nbd::kEinval,
                       "WRITE of " + std::to_string(r.length) + " bytes: more than 32 MiB", true);
    if ((r.flags & ~kKnownFlags) != 0)
        return invalid(
            nbd::kEinval, name + ": unknown command flags 0x" + [&] {
                char hex[8];
                std::snprintf(hex, sizeof hex, "%x", r.flags & ~kKnownFlags);
                return std::string(hex);
            }());
    if ((r.flags & nbd::kCmdDf) != 0 && !structured)
        return invalid(nbd::kEinval, name + ": DF without structured replies");
    const uint16_t flags = info.flags;
    switch (r.type) {
        case Cmd::read:
            if (r.length > nbd::kMaxPayload)
                return invalid(nbd::kEinval,
                               "READ of " + std::to_string(r.length) + " bytes: more than 32 MiB");
            break;
        case Cmd::flush:
            if ((flags & nbd::kSendFlush) == 0)
                return invalid(nbd::kEinval, "FLUSH: the export did not offer it");
            return {};
        case Cmd::trim:
            if ((flags & nbd::kSendTrim) == 0 && (flags & nbd::kReadOnly) == 0)
                return invalid(nbd::kEinval, "TRIM: the export did not offer it");
            break;
        case Cmd::write_zeroes:
            if ((flags & nbd::kSendWriteZeroes) == 0 && (flags & nbd::kReadOnly) == 0)
                return invalid(nbd::kEinval, "WRITE_ZEROES: the export did not offer it");
            break;
        case Cmd::cache:
            if ((flags & nbd::kSendCache) == 0)
                return invalid(nbd::kEinval, "CACHE: the export did not offer it");
            break;
        case Cmd::block_status:
            if (!base_allocation)
                return invalid(nbd::kEinval,
                               "BLOCK_STATUS: no meta context (base:allocation) was negotiated");
            if (r.length == 0)
                return invalid(nbd::kEinval, "BLOCK_STATUS of 0 bytes");
            break;
        default:
            break;
    }
    if (writes && (flags & nbd::kReadOnly) != 0)
        return invalid(nbd::kEperm, name + ": the export is read-only");
    if (r.offset > info.size || r.length > info.size - r.offset) {
        // The protocol asks for ENOSPC on a write past the end, EINVAL otherwise.
        const uint32_t error =
            r.type == Cmd::write || r.type == Cmd::write_zeroes ? nbd::kEnospc : nbd::kEinval;
        return invalid(error, name + " at offset " + std::to_string(r.offset) + ", length " +
                                  std::to_string(r.length) + ": past the end of the export (" +
                                  std::to_string(info.size) + " bytes)");
    }
    return {};
}

/// Between submit() and the completion: the request's lease, given back (with an EIO
/// reply) if the export drops the completion without calling it.
struct NbdConnection::Pending {
    std::weak_ptr<NbdConnection> connection;
    std::shared_ptr<EndpointStats> stats;
    nbd::Request request;
    BudgetLease lease;
    bool done = false;

    Pending(std::weak_ptr<NbdConnection> c, std::shared_ptr<EndpointStats> s, nbd::Request r,
            BudgetLease l)
        : connection(std::move(c)), stats(std::move(s)), request(r), lease(std::move(l))
    {
        ++stats->in_flight;
    }
    Pending(const Pending&) = delete;
    Pending& operator=(const Pending&) = delete;
    ~Pending()  // NOLINT(bugprone-exception-escape): bad_alloc only
    {
        if (done)
            return;
        --stats->in_flight;
        auto self = connection.lock();
        if (!self)
            return;
        asio::post(
            self->socket_.get_executor(), [self, r = request, l = std::move(lease)]() mutable {
                self->completed(r, std::move(l),
                                IoResult{nbd::kEio, "the export dropped the request", {}, {}});
            });
    }
};

NbdConnection::NbdConnection(Socket socket, ExportDirectory& directory, ByteBudget& budget,
                             std::shared_ptr<EndpointStats> stats, std::string name,
                             std::chrono::milliseconds handshake_timeout)
    : socket_(std::move(socket)),
      directory_(directory),
      budget_(budget),
      stats_(std::move(stats)),
      name_(std::move(name)),
      handshake_timeout_(handshake_timeout),
      timer_(socket_.get_executor()),
      in_(kReadBuffer)
{
    ++stats_->connections;
    ++stats_->connections_total;
}

NbdConnection::~NbdConnection()
{
    if (!closed_)
        --stats_->connections;
}

void NbdConnection::start(std::function<void()> on_closed)
{
    on_closed_ = std::move(on_closed);
    // Whenever the coroutine begins, it finds the reference that keeps it alive here.
    starter_ = shared_from_this();
    asio::co_spawn(socket_.get_executor(), run(),
                   asio::bind_cancellation_slot(cancel_.slot(), log_if_threw(name_)));
}

void NbdConnection::close()
{
    if (closed_)
        return;
    closed_ = true;
    --stats_->connections;
    boost::system::error_code ec;
    socket_.shutdown(Socket::shutdown_both, ec);
    socket_.close(ec);
    timer_.cancel();
    if (waiting_for_budget_)
        cancel_.emit(asio::cancellation_type::terminal);
    out_.clear();
    if (auto f = std::move(on_closed_))
        f();
}

asio::awaitable<void> NbdConnection::run()
{
    const auto self = std::move(starter_);
    if (!co_await handshake()) {
        close();
        co_return;
    }
    co_await serve();
    if (closed_)
        co_return;
    // Answer what was asked before the end, then close; until then this frame keeps the
    // connection alive.
    finishing_ = true;
    maybe_finish();
    if (closed_)
        co_return;
    timer_.expires_at(asio::steady_timer::time_point::max());
    co_await timer_.async_wait(asio::as_tuple(use_awaitable));
    close();
}

asio::awaitable<bool> NbdConnection::handshake()
{
    std::weak_ptr<NbdConnection> weak = weak_from_this();
    timer_.expires_after(handshake_timeout_);
    timer_.async_wait([weak](boost::system::error_code ec) {
        auto self = weak.lock();
        if (ec || !self || self->closed_)
            return;
        log(LogLevel::notice, "%s: no export chosen within %lld ms, disconnecting",
            self->name_.c_str(), static_cast<long long>(self->handshake_timeout_.count()));
        ++self->stats_->protocol_errors;
        self->close();
    });

    nbd::Handshake hs(directory_);
    std::vector<std::byte> out = nbd::Handshake::greeting();
    for (;;) {
        if (!out.empty()) {
            auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(out),
                                                      asio::as_tuple(use_awaitable));
            if (ec || closed_)
                co_return false;
            out.clear();
        }
        auto [ec, n] =
            co_await socket_.async_read_some(asio::buffer(in_), asio::as_tuple(use_awaitable));
        if (ec || closed_)
            co_return false;
        const auto state = hs.feed(std::span(in_).first(n), out);
        if (state == nbd::Handshake::State::more)
            continue;
        if (!out.empty()) {
            auto [wec, wn] = co_await asio::async_write(socket_, asio::buffer(out),
                                                        asio::as_tuple(use_awaitable));
            if (wec || closed_)
                co_return false;
        }
        if (state == nbd::Handshake::State::abort)
            co_return false;
        if (state == nbd::Handshake::State::error) {
            log(LogLevel::notice, "%s: handshake: %s, disconnecting", name_.c_str(),
                hs.error().c_str());
            ++stats_->protocol_errors;
            co_return false;
        }
        break;  // transmission
    }
    timer_.cancel();
    export_ = directory_.open(hs.chosen().name);
    if (!export_) {
        log(LogLevel::notice, "%s: export \"%s\" went away during the handshake", name_.c_str(),
            hs.chosen().name.c_str());
        co_return false;
    }
    info_ = hs.chosen();
    structured_ = hs.structured_replies();
    base_allocation_ = hs.base_allocation();
    // The first requests may have come with the last option.
    const auto rest = hs.rest();
    if (rest.size() > in_.size())
        in_.resize(rest.size());
    std::copy(rest.begin(), rest.end(), in_.begin());
    in_begin_ = 0;
    in_end_ = rest.size();
    co_return true;
}

asio::awaitable<void> NbdConnection::serve()
{
    for (;;) {
        if (closed_ || !co_await fill(nbd::kRequestSize))
            co_return;
        const auto header = std::span<const std::byte, nbd::kRequestSize>(in_.data() + in_begin_,
                                                                          nbd::kRequestSize);
        const auto request = nbd::decode_request(header);
        if (!request) {
            protocol_error("bad request magic 0x" + [&] {
                char hex[12];
                std::snprintf(hex, sizeof hex, "%08x", nbd::get_u32(header));
                return std::string(hex);
            }());
            close();
            co_return;
        }
        in_begin_ += nbd::kRequestSize;
        if (request->type == Cmd::disc)
            co_return;
        ++stats_->requests;
        const RequestCheck check = check_request(*request, info_, structured_, base_allocation_);
        const bool data = request->type == Cmd::read || request->type == Cmd::write;
        const std::size_t cost = kRequestCost + (check.error == 0 && data ? request->length : 0);
        auto lease = co_await acquire(cost);
        if (!lease)
            co_return;
        if (check.error != 0) {
            if (check.disconnect) {
                protocol_error(check.message);
                reply_error(*request, check.error, check.message, std::move(*lease));
                co_return;
            }
            if (request->type == Cmd::write && !co_await skip(request->length))
                co_return;
            reply_error(*request, check.error, check.message, std::move(*lease));
            continue;
        }
        IoRequest io{request->type, request->flags, request->offset, request->length, {}};
        if (data)
            io.data.resize(request->length);
        if (request->type == Cmd::write) {
            if (!co_await read_into(io.data))
                co_return;  // the client left in the middle of the payload: nothing to do
            stats_->bytes_written += request->length;
        }
        if (request->length == 0 && request->type != Cmd::flush) {
            reply_ok(*request, std::move(*lease));  // nothing to do, nothing to ask the export
            continue;
        }
        submit(*request, std::move(io), std::move(*lease));
    }
}

asio::awaitable<bool> NbdConnection::fill(std::size_t n)
{
    if (in_end_ - in_begin_ >= n)
        co_return true;
    if (in_begin_ > 0) {
        std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
        in_end_ -= in_begin_;
        in_begin_ = 0;
    }
    while (in_end_ < n) {
        auto [ec, got] = co_await socket_.async_read_some(
            asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
            asio::as_tuple(use_awaitable));
        if (ec || closed_)
            co_return false;
        in_end_ += got;
    }
    co_return true;
}

asio::awaitable<bool> NbdConnection::read_into(std::span<std::byte> out)
{
    const std::size_t have = std::min(out.size(), in_end_ - in_begin_);
    std::memcpy(out.data(), in_.data() + in_begin_, have);
    in_begin_ += have;
    if (have == out.size())
        co_return true;
    auto [ec, n] = co_await asio::async_read(
        socket_, asio::buffer(out.data() + have, out.size() - have), asio::as_tuple(use_awaitable));
    co_return !ec && !closed_;
}

asio::awaitable<bool> NbdConnection::skip(uint64_t n)
{
    for (;;) {
        const auto have = static_cast<std::size_t>(std::min<uint64_t>(n, in_end_ - in_begin_));
        in_begin_ += have;
        n -= have;
        if (n == 0)
            co_return true;
        in_begin_ = in_end_ = 0;
        if (!co_await fill(1))
            co_return false;
    }
}

asio::awaitable<std::optional<BudgetLease>> NbdConnection::acquire(std::size_t bytes)
{
    if (budget_.try_acquire(bytes))
        co_return BudgetLease(budget_, bytes);
    waiting_for_budget_ = true;
    auto [ec] = co_await budget_.async_acquire(bytes, asio::as_tuple(use_awaitable));
    waiting_for_budget_ = false;
    if (ec)
        co_return std::nullopt;
    BudgetLease lease(budget_, bytes);
    if (closed_)
        co_return std::nullopt;  // the lease gives the bytes back
    co_return lease;
}

void NbdConnection::submit(const nbd::Request& request, IoRequest io, BudgetLease lease)
{
    ++in_flight_;
    auto pending = std::make_shared<Pending>(weak_from_this(), stats_, request, std::move(lease));
    export_->submit(std::move(io), [pending](IoResult result) {
        pending->done = true;
        --pending->stats->in_flight;
        if (auto self = pending->connection.lock())
            self->completed(pending->request, std::move(pending->lease), std::move(result));
    });
}

void NbdConnection::completed(const nbd::Request& request, BudgetLease lease, IoResult result)
{
    --in_flight_;
    if (closed_)
        return;
    if (result.error != 0)
        reply_error(request, result.error, result.message, std::move(lease));
    else if (request.type == Cmd::read)
        reply_read(request, std::move(result.data), std::move(lease));
    else if (request.type == Cmd::block_status)
        reply_block_status(request, result.extents, std::move(lease));
    else
        reply_ok(request, std::move(lease));
    maybe_finish();
}

void NbdConnection::reply_ok(const nbd::Request& request, BudgetLease lease)
{
    Reply reply{{}, {}, std::move(lease)};
    if (structured_ && request.type == Cmd::read)  // a READ never gets a simple reply
        nbd::append_chunk_header(reply.head, nbd::kReplyFlagDone, nbd::Chunk::none, request.cookie,
                                 0);
    else
        nbd::append_simple_reply(reply.head, 0, request.cookie);
    enqueue(std::move(reply));
}

void NbdConnection::reply_error(const nbd::Request& request, uint32_t error,
                                const std::string& message, BudgetLease lease)
{
    ++stats_->errors;
    Reply reply{{}, {}, std::move(lease)};
    if (structured_)
        nbd::append_error_chunk(reply.head, request.cookie, error, message);
    else
        nbd::append_simple_reply(reply.head, error, request.cookie);
    enqueue(std::move(reply));
}

void NbdConnection::reply_read(const nbd::Request& request, std::vector<std::byte> data,
                               BudgetLease lease)
{
    if (data.size() != request.length) {
        reply_error(request, nbd::kEio,
                    "the export returned " + std::to_string(data.size()) + " bytes for a READ of " +
                        std::to_string(request.length),
                    std::move(lease));
        return;
    }
    stats_->bytes_read += data.size();
    Reply reply{{}, std::move(data), std::move(lease)};
    if (structured_) {
        nbd::append_chunk_header(reply.head, nbd::kReplyFlagDone, nbd::Chunk::offset_data,
                                 request.cookie, static_cast<uint32_t>(8 + request.length));
        nbd::put_u64(reply.head, request.offset);
    } else {
        nbd::append_simple_reply(reply.head, 0, request.cookie);
    }
    enqueue(std::move(reply));
}

void NbdConnection::reply_block_status(const nbd::Request& request,
                                       const std::vector<StatusExtent>& extents, BudgetLease lease)
{
    // Extents cover the request from its offset on: never past it (so never past the end
    // of the export), none empty, only the first with REQ_ONE.
    std::vector<std::byte> body;
    nbd::put_u32(body, nbd::kBaseAllocationId);
    uint64_t left = request.length;
    std::size_t count = 0;
    const std::size_t most = (request.flags & nbd::kCmdReqOne) != 0 ? 1 : kMaxExtents;
    for (const auto& e : extents) {
        if (left == 0 || count == most)
            break;
        if (e.length == 0)
            continue;
        const auto length = static_cast<uint32_t>(std::min<uint64_t>(e.length, left));
        nbd::put_u32(body, length);
        nbd::put_u32(body, e.flags & (nbd::kStateHole | nbd::kStateZero));
        left -= length;
        ++count;
    }
    if (count == 0) {
        reply_error(request, nbd::kEio, "the export returned no extents", std::move(lease));
        return;
    }
    Reply reply{{}, std::move(body), std::move(lease)};
    nbd::append_chunk_header(reply.head, nbd::kReplyFlagDone, nbd::Chunk::block_status,
                             request.cookie, static_cast<uint32_t>(reply.data.size()));
    enqueue(std::move(reply));
}

void NbdConnection::enqueue(Reply reply)
{
    if (closed_)
        return;
    out_.push_back(std::move(reply));
    if (!writing_)
        write_next();
}

void NbdConnection::write_next()
{
    writing_ = true;
    batch_.clear();
    buffers_.clear();
    std::size_t bytes = 0;
    while (!out_.empty() && batch_.size() < kMaxBatch && bytes < kMaxBatchBytes) {
        Reply& r = batch_.emplace_back(std::move(out_.front()));
        out_.pop_front();
        buffers_.emplace_back(asio::buffer(r.head));
        if (!r.data.empty())
            buffers_.emplace_back(asio::buffer(r.data));
        bytes += r.head.size() + r.data.size();
    }
    asio::async_write(socket_, buffers_,
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                          self->written(ec);
                      });
}

void NbdConnection::written(boost::system::error_code ec)
{
    writing_ = false;
    batch_.clear();  // gives the replies' bytes back
    if (closed_)
        return;
    if (ec) {
        close();  // the client is gone; nothing to tell it
        return;
    }
    if (!out_.empty())
        write_next();
    else
        maybe_finish();
}

void NbdConnection::maybe_finish()
{
    if (!finishing_ || closed_ || in_flight_ > 0 || writing_ || !out_.empty())
        return;
    boost::system::error_code ec;
    socket_.shutdown(Socket::shutdown_send, ec);
    close();
}

void NbdConnection::protocol_error(const std::string& why)
{
    log(LogLevel::notice, "%s: %s, disconnecting", name_.c_str(), why.c_str());
    ++stats_->protocol_errors;
}

}  // namespace ismd::block
