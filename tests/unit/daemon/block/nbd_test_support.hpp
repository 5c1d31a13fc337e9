// SPDX-License-Identifier: MIT
// For the NBD endpoint's tests: an in-memory Export (which can hold its completions, like
// a peer that does not answer), a directory of them, the endpoint's event loop on its own
// thread, and a raw blocking NBD client that sends exactly the bytes a test asks for.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "block/export.hpp"
#include "block/nbd_proto.hpp"

namespace ismd::block::test {

/// An export in memory. submit() runs on the event loop; completions are posted, or held
/// until release_held() when `hold` is set.
class FakeExport : public Export {
public:
    FakeExport(boost::asio::any_io_executor ex, uint64_t size, uint16_t flags)
        : ex_(std::move(ex)), disk_(size)
    {
        info_.size = size;
        info_.flags = flags;
    }

    [[nodiscard]] nbd::ExportInfo info() const override { return info_; }

    void submit(IoRequest r, Done done) override
    {
        seen.push_back({r.cmd, r.flags, r.offset, r.length, {}});
        if (drop)
            return;  // breaks the contract: `done` is destroyed without being called
        if (hold) {
            held.emplace_back(std::move(r), std::move(done));
            return;
        }
        boost::asio::post(ex_, [this, r = std::move(r), done = std::move(done)]() mutable {
            done(run(std::move(r)));
        });
    }

    /// Completes held requests, last first when `reverse`.
    void release_held(bool reverse = false)
    {
        auto h = std::move(held);
        held.clear();
        if (reverse)
            std::reverse(h.begin(), h.end());
        for (auto& [r, done] : h)
            done(run(std::move(r)));
    }

    IoResult run(IoRequest r)
    {
        IoResult res;
        if (fail_with != 0) {
            res.error = fail_with;
            res.message = "injected failure";
            return res;
        }
        switch (r.cmd) {
            case nbd::Cmd::read:
                std::memcpy(r.data.data(), disk_.data() + r.offset, r.length);
                res.data = std::move(r.data);
                break;
            case nbd::Cmd::write:
                std::memcpy(disk_.data() + r.offset, r.data.data(), r.length);
                break;
            case nbd::Cmd::trim:
            case nbd::Cmd::write_zeroes:
                std::memset(disk_.data() + r.offset, 0, r.length);
                break;
            case nbd::Cmd::block_status:
                res.extents = extents;
                break;
            default:
                break;
        }
        return res;
    }

    nbd::ExportInfo info_;
    bool hold = false;
    bool drop = false;
    uint32_t fail_with = 0;
    std::vector<StatusExtent> extents{{4096, 0}, {1 << 20, nbd::kStateHole | nbd::kStateZero}};
    std::vector<IoRequest> seen;
    std::vector<std::pair<IoRequest, Done>> held;
    std::vector<std::byte>& disk() { return disk_; }

private:
    boost::asio::any_io_executor ex_;
    std::vector<std::byte> disk_;
};

class FakeDirectory : public ExportDirectory {
public:
    void add(const std::string& name, std::shared_ptr<FakeExport> e)
    {
        e->info_.name = name;
        e->info_.description = "test export " + name;
        exports_[name] = std::move(e);
    }
    [[nodiscard]] std::vector<nbd::ExportInfo> list() const override
    {
        std::vector<nbd::ExportInfo> v;
        for (const auto& [name, e] : exports_)
            v.push_back(e->info());
        return v;
    }
    [[nodiscard]] std::optional<nbd::ExportInfo> find(const std::string& name) const override
    {
        auto it = exports_.find(name.empty() ? "data" : name);
        if (it == exports_.end())
            return std::nullopt;
        return it->second->info();
    }
    std::shared_ptr<Export> open(const std::string& name) override
    {
        auto it = exports_.find(name.empty() ? "data" : name);
        return it == exports_.end() ? nullptr : it->second;
    }

private:
    std::map<std::string, std::shared_ptr<FakeExport>> exports_;
};

/// The event loop on a thread of its own; on() runs a function on it and waits.
class LoopThread {
public:
    LoopThread() : guard_(io.get_executor()) {}
    ~LoopThread() { join(); }
    LoopThread(const LoopThread&) = delete;
    LoopThread& operator=(const LoopThread&) = delete;
    void start()
    {
        thread_ = std::thread([this] { io.run(); });
    }
    void join()
    {
        guard_.reset();
        if (thread_.joinable())
            thread_.join();
    }
    template <class F>
    auto on(F f) -> decltype(f())
    {
        std::packaged_task<decltype(f())()> task(std::move(f));
        auto result = task.get_future();
        boost::asio::post(io, [&task] { task(); });
        return result.get();
    }

    boost::asio::io_context io;

private:
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
    std::thread thread_;
};

inline std::vector<std::byte> bytes_of(const std::string& s)
{
    std::vector<std::byte> v(s.size());
    std::memcpy(v.data(), s.data(), s.size());
    return v;
}

struct ClientReply {
    bool structured = false;
    uint32_t error = 0;  // simple reply, or an ERROR chunk's error
    uint16_t flags = 0;
    uint16_t type = 0;
    uint64_t cookie = 0;
    std::vector<std::byte> payload;  // structured: the chunk's payload; simple: the data
    std::string message;             // an ERROR chunk's message
};

/// A blocking NBD client over a UNIX socket, with a 5 s receive timeout.
class RawClient {
public:
    explicit RawClient(const std::string& path)
    {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        connected = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        timeval tv{5, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~RawClient()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    bool send(std::span<const std::byte> b)
    {
        while (!b.empty()) {
            const ssize_t n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
            if (n <= 0)
                return false;
            b = b.subspan(static_cast<std::size_t>(n));
        }
        return true;
    }
    /// Exactly n bytes, or nullopt on end of file, error or timeout.
    std::optional<std::vector<std::byte>> recv(std::size_t n)
    {
        std::vector<std::byte> v(n);
        std::size_t got = 0;
        while (got < n) {
            const ssize_t r = ::recv(fd_, v.data() + got, n - got, 0);
            if (r <= 0)
                return std::nullopt;
            got += static_cast<std::size_t>(r);
        }
        return v;
    }
    /// True when the server closed the connection (end of file within 5 s).
    bool closed_by_server()
    {
        std::byte b{};
        for (;;) {
            const ssize_t r = ::recv(fd_, &b, 1, 0);
            if (r == 0)
                return true;
            if (r < 0)
                return errno == ECONNRESET;
        }
    }

    void option(nbd::Opt o, const std::vector<std::byte>& data)
    {
        std::vector<std::byte> v;
        nbd::put_u64(v, nbd::kIHaveOpt);
        nbd::put_u32(v, static_cast<uint32_t>(o));
        nbd::put_u32(v, static_cast<uint32_t>(data.size()));
        v.insert(v.end(), data.begin(), data.end());
        send(v);
    }
    /// Option replies up to and including the final one (ACK or an error); their types.
    std::vector<uint32_t> option_replies()
    {
        std::vector<uint32_t> types;
        for (;;) {
            auto h = recv(20);
            if (!h)
                return types;
            const uint32_t type = nbd::get_u32(std::span(*h).subspan(12));
            const uint32_t len = nbd::get_u32(std::span(*h).subspan(16));
            auto p = recv(len);
            if (type == static_cast<uint32_t>(nbd::Rep::info) && p && p->size() >= 12 &&
                nbd::get_u16(*p) == 0) {
                size = nbd::get_u64(std::span(*p).subspan(2));
                flags = nbd::get_u16(std::span(*p).subspan(10));
            }
            types.push_back(type);
            if (type != static_cast<uint32_t>(nbd::Rep::info) &&
                type != static_cast<uint32_t>(nbd::Rep::server) &&
                type != static_cast<uint32_t>(nbd::Rep::meta_context))
                return types;
        }
    }

    /// Greeting, flags, then the options asked for and GO; true when transmission began.
    bool handshake(const std::string& name, bool structured, bool base_allocation)
    {
        auto g = recv(18);
        if (!g || nbd::get_u64(*g) != nbd::kNbdMagic)
            return false;
        std::vector<std::byte> f;
        nbd::put_u32(f, nbd::kFlagFixedNewstyle | nbd::kFlagNoZeroes);
        send(f);
        if (structured) {
            option(nbd::Opt::structured_reply, {});
            option_replies();
        }
        if (base_allocation) {
            std::vector<std::byte> d;
            nbd::put_u32(d, static_cast<uint32_t>(name.size()));
            auto n = bytes_of(name);
            d.insert(d.end(), n.begin(), n.end());
            nbd::put_u32(d, 1);
            nbd::put_u32(d, 15);
            auto q = bytes_of("base:allocation");
            d.insert(d.end(), q.begin(), q.end());
            option(nbd::Opt::set_meta_context, d);
            option_replies();
        }
        std::vector<std::byte> d;
        nbd::put_u32(d, static_cast<uint32_t>(name.size()));
        auto n = bytes_of(name);
        d.insert(d.end(), n.begin(), n.end());
        nbd::put_u16(d, 0);
        option(nbd::Opt::go, d);
        auto types = option_replies();
        structured_ = structured;
        return !types.empty() && types.back() == static_cast<uint32_t>(nbd::Rep::ack);
    }

    static std::vector<std::byte> request(nbd::Cmd cmd, uint64_t cookie, uint64_t offset,
                                          uint32_t length, uint16_t flags = 0)
    {
        std::vector<std::byte> v;
        nbd::put_u32(v, nbd::kRequestMagic);
        nbd::put_u16(v, flags);
        nbd::put_u16(v, static_cast<uint16_t>(cmd));
        nbd::put_u64(v, cookie);
        nbd::put_u64(v, offset);
        nbd::put_u32(v, length);
        return v;
    }
    bool send_request(nbd::Cmd cmd, uint64_t cookie, uint64_t offset, uint32_t length,
                      uint16_t command_flags = 0, std::span<const std::byte> payload = {})
    {
        return send(request(cmd, cookie, offset, length, command_flags)) && send(payload);
    }

    /// One reply; a simple READ reply's data is `read_length` bytes (0 for other commands).
    std::optional<ClientReply> reply(uint32_t read_length = 0)
    {
        auto m = recv(4);
        if (!m)
            return std::nullopt;
        ClientReply r;
        const uint32_t magic = nbd::get_u32(*m);
        if (magic == nbd::kSimpleReplyMagic) {
            auto h = recv(12);
            if (!h)
                return std::nullopt;
            r.error = nbd::get_u32(*h);
            r.cookie = nbd::get_u64(std::span(*h).subspan(4));
            if (r.error == 0 && read_length > 0) {
                auto d = recv(read_length);
                if (!d)
                    return std::nullopt;
                r.payload = std::move(*d);
            }
            return r;
        }
        if (magic != nbd::kStructuredReplyMagic)
            return std::nullopt;
        auto h = recv(16);
        if (!h)
            return std::nullopt;
        r.structured = true;
        r.flags = nbd::get_u16(*h);
        r.type = nbd::get_u16(std::span(*h).subspan(2));
        r.cookie = nbd::get_u64(std::span(*h).subspan(4));
        const uint32_t len = nbd::get_u32(std::span(*h).subspan(12));
        auto p = recv(len);
        if (!p)
            return std::nullopt;
        r.payload = std::move(*p);
        if ((r.type & 0x8000) != 0 && r.payload.size() >= 6) {
            r.error = nbd::get_u32(r.payload);
            const uint16_t mlen = nbd::get_u16(std::span(r.payload).subspan(4));
            r.message.assign(reinterpret_cast<const char*>(r.payload.data()) + 6,
                             std::min<std::size_t>(mlen, r.payload.size() - 6));
        }
        return r;
    }

    [[nodiscard]] int fd() const noexcept { return fd_; }
    bool connected = false;
    uint64_t size = 0;
    uint16_t flags = 0;

private:
    int fd_ = -1;
    bool structured_ = false;
};

}  // namespace ismd::block::test
