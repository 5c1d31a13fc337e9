// SPDX-License-Identifier: MIT
#include "console/peer_console.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "core/log.hpp"

namespace ismd::console {

namespace asio = boost::asio;
using control::FrameType;

namespace {

// The link holds at most this much of our output before the program is paused.
constexpr std::size_t kPauseAbove = std::size_t{256} << 10;
constexpr std::size_t kResumeBelow = std::size_t{64} << 10;
// A local client that falls this far behind is dropped rather than buffered forever.
constexpr std::size_t kClientBacklog = std::size_t{4} << 20;
// Output is sent in pieces no larger than this.
constexpr std::size_t kMaxPiece = std::size_t{64} << 10;

std::span<const std::byte> text_bytes(const std::string& s)
{
    return std::as_bytes(std::span(s));
}

}  // namespace

PeerConsole::PeerConsole(ConsoleService& service, const PeerHandle& peer,
                         const ConsoleConfig& config)
    : service_(service),
      peer_(peer),
      config_(config),
      channel_(peer.link->open_channel(peer.first_channel, ism::link::ChannelMode::message))
{
    if (config_.serve) {
        pty_ = std::make_unique<PtySession>(peer_.executor, peer_.name, *config_.serve);
        pty_->set_output_handler([this](uint64_t offset, std::span<const std::byte> bytes) {
            serve_output(offset, bytes);
        });
        pty_->set_notice_handler([this](const std::string& text) {
            if (!remote_opens_.empty() && link_up_now())
                send(Notice{text});
        });
        pty_->start();
    }
    link_was_up_ = link_up_now();
    arm_receive();
}

PeerConsole::~PeerConsole()  // NOLINT(bugprone-exception-escape): out of memory, see the .hpp
{
    *alive_ = false;
    for (auto& c : clients_) {
        notice(*c, "ismd dropped the peer " + peer_.name + " (configuration changed or removed)");
        boost::system::error_code ec;
        c->closed = true;
        c->socket->shutdown(asio::socket_base::shutdown_receive, ec);
    }
    clients_.clear();
    pty_.reset();
    service_.forget(peer_.name);
}

bool PeerConsole::link_up_now() const
{
    return peer_.link->up();
}

void PeerConsole::arm_receive()
{
    channel_.async_receive(
        [this, alive = std::weak_ptr<bool>(alive_)](std::error_code ec, std::vector<std::byte> m) {
            if (!alive.lock())
                return;
            if (!ec)
                on_message(std::move(m));
            arm_receive();
        });
}

void PeerConsole::send(const Message& message)
{
    auto bytes = std::make_shared<std::vector<std::byte>>(encode(message));
    in_flight_ += bytes->size();
    channel_.async_send(*bytes,
                        [this, bytes, alive = std::weak_ptr<bool>(alive_)](std::error_code) {
                            if (!alive.lock())
                                return;
                            in_flight_ -= bytes->size();
                            if (pty_ && in_flight_ < kResumeBelow)
                                pty_->pause(false);
                        });
    if (pty_ && in_flight_ > kPauseAbove)
        pty_->pause(true);
}

void PeerConsole::on_message(std::vector<std::byte> bytes)
{
    auto message = decode(bytes);
    if (!message) {
        if (malformed_++ == 0)
            log(LogLevel::warning, "%s: console: dropped a malformed message (type %u, %zu bytes)",
                peer_.name.c_str(), bytes.empty() ? 0U : static_cast<unsigned>(bytes[0]),
                bytes.size());
        return;
    }
    std::visit(
        [this](auto& m) {
            using T = std::decay_t<decltype(m)>;
            // Serving side.
            if constexpr (std::is_same_v<T, Open>) {
                serve_open(m);
            } else if constexpr (std::is_same_v<T, Close>) {
                remote_opens_.erase(m.attach);
                service_.changed();
            } else if constexpr (std::is_same_v<T, Input>) {
                if (pty_ && !remote_opens_.empty())
                    pty_->input(m.bytes);
            } else if constexpr (std::is_same_v<T, Resize>) {
                if (pty_)
                    pty_->resize(m.cols, m.rows);
            } else if constexpr (std::is_same_v<T, Break>) {
                if (pty_)
                    pty_->send_break();
            } else if constexpr (std::is_same_v<T, Hangup>) {
                if (pty_) {
                    log(LogLevel::notice, "%s: console: hang-up asked by the peer",
                        peer_.name.c_str());
                    pty_->hangup();
                }
            }
            // Attaching side.
            else if constexpr (std::is_same_v<T, Replay>) {
                LocalClient* c = by_attach(m.attach);
                if (c == nullptr)
                    return;
                if (c->session != 0 && c->session != m.session)
                    notice(*c, "the console session on " + peer_.name +
                                   " is a new one (its ismd restarted): here is its scrollback");
                else if (c->session != 0 && m.offset > c->offset)
                    notice(*c, std::to_string(m.offset - c->offset) +
                                   " bytes of output were lost while away");
                to_client(*c, FrameType::data, m.bytes);
                c->session = m.session;
                c->offset = m.offset + m.bytes.size();
                c->live = true;
            } else if constexpr (std::is_same_v<T, Output>) {
                for (auto& c : clients_) {
                    if (!c->live || m.offset + m.bytes.size() <= c->offset)
                        continue;
                    // Skip what the client already has (a replay may overlap).
                    const std::size_t skip =
                        m.offset < c->offset ? static_cast<std::size_t>(c->offset - m.offset) : 0;
                    to_client(*c, FrameType::data, std::span(m.bytes).subspan(skip));
                    c->offset = m.offset + m.bytes.size();
                }
            } else if constexpr (std::is_same_v<T, Notice>) {
                notice_all(peer_.name + ": " + m.text);
            } else if constexpr (std::is_same_v<T, Refused>) {
                if (LocalClient* c = by_attach(m.attach)) {
                    notice(*c, peer_.name + " refused: " + m.reason);
                    const uint8_t down = 0;
                    to_client(*c, FrameType::state,
                              std::span(reinterpret_cast<const std::byte*>(&down), 1));
                }
            }
        },
        *message);
}

// ---- Serving ------------------------------------------------------------------------

void PeerConsole::serve_open(const Open& open)
{
    if (!pty_) {
        send(Refused{open.attach,
                     "no console is served to this host (\"console\": {\"serve\": ...} "
                     "in the peer file for it)"});
        return;
    }
    remote_opens_.insert(open.attach);
    service_.changed();
    if (!pty_->running())
        pty_->start();
    pty_->resize(open.cols, open.rows);
    const Scrollback& sb = pty_->scrollback();
    const uint64_t from = open.session_seen == pty_->session_id() ? open.offset_seen : 0;
    const uint64_t first = std::max(from, sb.begin());
    auto bytes = sb.since(first);
    send(Replay{open.attach, pty_->session_id(), first, std::move(bytes)});
}

void PeerConsole::serve_output(uint64_t offset, std::span<const std::byte> bytes)
{
    if (remote_opens_.empty() || !link_up_now())
        return;  // kept in the scrollback for the next attach
    while (!bytes.empty()) {
        const std::size_t n = std::min(bytes.size(), kMaxPiece);
        send(Output{offset, std::vector<std::byte>(
                                bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n))});
        offset += n;
        bytes = bytes.subspan(n);
    }
}

// ---- Link state ---------------------------------------------------------------------

void PeerConsole::link_up()
{
    if (link_was_up_)
        return;
    link_was_up_ = true;
    notice_all("the link to " + peer_.name + " is up again");
    const uint8_t up = 1;
    for (auto& c : clients_) {
        to_client(*c, FrameType::state, std::span(reinterpret_cast<const std::byte*>(&up), 1));
        open_remote(*c);
    }
}

void PeerConsole::link_down(std::error_code why)
{
    // The peer's clients are gone with the link; ours wait for it to come back.
    remote_opens_.clear();
    in_flight_ = 0;
    if (pty_)
        pty_->pause(false);
    if (!link_was_up_)
        return;
    link_was_up_ = false;
    const uint8_t down = 0;
    for (auto& c : clients_) {
        c->live = false;
        notice(*c, "the link to " + peer_.name + " is down (" + why.message() +
                       "); waiting for it to come back");
        to_client(*c, FrameType::state, std::span(reinterpret_cast<const std::byte*>(&down), 1));
    }
}

// ---- Attaching ----------------------------------------------------------------------

void PeerConsole::open_remote(LocalClient& client)
{
    client.live = false;
    Open open;
    open.attach = client.attach;
    open.session_seen = client.session;
    open.offset_seen = client.offset;
    open.cols = client.writer ? client.cols : 0;  // 0: leave the window as it is
    open.rows = client.writer ? client.rows : 0;
    open.term = "";
    send(open);
}

LocalClient* PeerConsole::by_attach(uint32_t attach)
{
    for (auto& c : clients_)
        if (c->attach == attach)
            return c.get();
    return nullptr;
}

void PeerConsole::to_client(LocalClient& client, FrameType type, std::span<const std::byte> payload)
{
    if (client.closed)
        return;
    for (;;) {
        const std::size_t n = std::min(payload.size(), control::kMaxFrame);
        std::vector<std::byte> frame;
        control::append_frame(frame, type, payload.first(n));
        client.out_bytes += frame.size();
        client.out.push_back(std::move(frame));
        payload = payload.subspan(n);
        if (payload.empty())
            break;
    }
    for (auto& c : clients_) {
        if (c.get() == &client) {
            if (client.out_bytes > kClientBacklog) {
                log(LogLevel::warning,
                    "%s: console: dropping a client (pid %d) that reads too slowly",
                    peer_.name.c_str(), static_cast<int>(client.who.pid));
                client.closed = true;
                boost::system::error_code ec;
                client.socket->close(ec);
                return;
            }
            flush(c);
            return;
        }
    }
}

void PeerConsole::notice(LocalClient& client, const std::string& text)
{
    to_client(client, FrameType::notice, text_bytes(text));
}

void PeerConsole::notice_all(const std::string& text)
{
    for (auto& c : clients_)
        notice(*c, text);
}

void PeerConsole::flush(const std::shared_ptr<LocalClient>& client)
{
    if (client->writing || client->out.empty() || client->closed)
        return;
    client->writing = true;
    auto frame = std::make_shared<std::vector<std::byte>>(std::move(client->out.front()));
    client->out.pop_front();
    asio::async_write(*client->socket, asio::buffer(*frame),
                      [this, client, frame, alive = std::weak_ptr<bool>(alive_)](
                          const boost::system::error_code& ec, std::size_t) {
                          client->writing = false;
                          client->out_bytes -= frame->size();
                          if (!alive.lock() || ec)
                              return;
                          flush(client);
                      });
}

void PeerConsole::drop(const std::shared_ptr<LocalClient>& client)
{
    client->closed = true;
    std::erase(clients_, client);
    if (link_up_now())
        send(Close{client->attach});
    log(LogLevel::info, "%s: console: uid %u (pid %d) detached", peer_.name.c_str(),
        static_cast<unsigned>(client->who.uid), static_cast<int>(client->who.pid));
    service_.changed();
}

void PeerConsole::handle_frame(const std::shared_ptr<LocalClient>& client, const control::Frame& f)
{
    switch (f.type) {
        case FrameType::data:
            if (client->writer && link_up_now())
                send(Input{f.payload});
            else if (!client->writer)
                notice(*client,
                       "read-only: your keys are not sent (--force takes the writer's seat)");
            break;
        case FrameType::resize:
            if (client->writer && f.payload.size() == 4) {
                const auto* p = reinterpret_cast<const uint8_t*>(f.payload.data());
                send(Resize{static_cast<uint16_t>((p[0] << 8) | p[1]),
                            static_cast<uint16_t>((p[2] << 8) | p[3])});
            }
            break;
        case FrameType::brk:
            if (client->writer)
                send(Break{});
            break;
        case FrameType::hangup:
            if (client->writer)
                send(Hangup{});
            break;
        default:
            break;
    }
}

asio::awaitable<void> PeerConsole::attach(std::shared_ptr<ControlSocket> socket,
                                          ControlRequest request, std::string leftover)
{
    const auto alive = std::weak_ptr<bool>(alive_);
    const nlohmann::json& a = request.args;
    const bool read_only = a.value("mode", std::string("rw")) == "ro";
    const bool force = a.value("force", false);
    nlohmann::json reply = {{"v", control::kVersion}};
    if (a.contains("id"))
        reply["id"] = a["id"];

    std::shared_ptr<LocalClient> writer;
    for (auto& c : clients_)
        if (c->writer)
            writer = c;
    if (!config_.attach) {
        reply["ok"] = false;
        reply["error"] =
            "attaching to " + peer_.name + "'s console is off (\"attach\": false in its peer file)";
        co_await send_line(*socket, reply);
        co_return;
    }
    if (!read_only && writer && !force) {
        reply["ok"] = false;
        reply["error"] = "the writer's seat on " + peer_.name + " is taken by uid " +
                         std::to_string(writer->who.uid) + " (pid " +
                         std::to_string(writer->who.pid) +
                         "): attach --read-only to watch, or --force to take the seat";
        co_await send_line(*socket, reply);
        co_return;
    }

    auto client = std::make_shared<LocalClient>();
    client->socket = socket;
    client->who = request.who;
    client->attach = next_attach_++;
    client->writer = !read_only;
    reply["ok"] = true;
    reply["result"] = {{"peer", peer_.name},
                       {"mode", read_only ? "ro" : "rw"},
                       {"link", link_up_now() ? "up" : "down"}};
    if (!co_await send_line(*socket, reply) || alive.expired())
        co_return;
    if (!read_only && writer) {
        writer->writer = false;
        notice(*writer, "uid " + std::to_string(request.who.uid) + " (pid " +
                            std::to_string(request.who.pid) +
                            ") took the writer's seat: you are read-only now");
    }
    clients_.push_back(client);
    log(LogLevel::info, "%s: console: uid %u (pid %d) attached %s", peer_.name.c_str(),
        static_cast<unsigned>(request.who.uid), static_cast<int>(request.who.pid),
        read_only ? "read-only" : "as the writer");
    service_.changed();
    if (a.contains("cols") && a.contains("rows") && a["cols"].is_number_unsigned() &&
        a["rows"].is_number_unsigned()) {
        client->cols = static_cast<uint16_t>(std::min<unsigned>(a["cols"].get<unsigned>(), 65535));
        client->rows = static_cast<uint16_t>(std::min<unsigned>(a["rows"].get<unsigned>(), 65535));
    }
    if (link_up_now()) {
        open_remote(*client);
    } else {
        notice(*client, "the link to " + peer_.name + " is down; waiting for it to come back");
        const uint8_t down = 0;
        to_client(*client, FrameType::state,
                  std::span(reinterpret_cast<const std::byte*>(&down), 1));
    }

    control::FrameReader reader;
    bool ok = reader.feed(std::as_bytes(std::span(leftover)));
    std::vector<std::byte> buf(16384);
    while (ok) {
        while (auto f = reader.next()) {
            if (f->type == FrameType::detach) {
                ok = false;
                break;
            }
            handle_frame(client, *f);
        }
        if (!ok || client->closed)
            break;
        auto [ec, n] = co_await socket->async_read_some(asio::buffer(buf),
                                                        asio::as_tuple(asio::use_awaitable));
        if (alive.expired())
            co_return;
        if (ec)
            break;
        ok = reader.feed(std::span(buf).first(n));
        if (!ok)
            notice(*client, "malformed frame: closing");
    }
    if (alive.expired())
        co_return;
    drop(client);
    boost::system::error_code ec;
    socket->shutdown(asio::socket_base::shutdown_both, ec);
}

std::string PeerConsole::signal_remote(bool is_break)
{
    if (!config_.attach)
        return "attaching to " + peer_.name +
               "'s console is off (\"attach\": false in its peer file)";
    if (!link_up_now())
        return "the link to " + peer_.name + " is down";
    if (is_break)
        send(Break{});
    else
        send(Hangup{});
    return {};
}

nlohmann::json PeerConsole::status() const
{
    nlohmann::json j;
    nlohmann::json clients = nlohmann::json::array();
    for (const auto& c : clients_)
        clients.push_back(
            {{"uid", c->who.uid}, {"pid", c->who.pid}, {"mode", c->writer ? "rw" : "ro"}});
    j["attached"] = clients;
    j["serving"] = pty_ != nullptr;
    std::string summary = std::to_string(clients_.size()) + " attached here";
    if (pty_) {
        j["program"] = pty_->config().program;
        j["program_pid"] = pty_->running() ? pty_->pid() : 0;
        j["spawns"] = pty_->spawns();
        j["peer_attached"] = remote_opens_.size();
        j["scrollback_bytes"] = pty_->scrollback().size();
        summary +=
            ", serving " + pty_->config().program.front() +
            (pty_->running() ? " (pid " + std::to_string(pty_->pid()) + ")" : " (not running)") +
            " to " + std::to_string(remote_opens_.size()) + " of the peer's clients";
    }
    j["malformed"] = malformed_;
    j["summary"] = summary;
    return j;
}

}  // namespace ismd::console
