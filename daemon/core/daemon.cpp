// SPDX-License-Identifier: MIT
#include "core/daemon.hpp"

#include <csignal>

#include <boost/asio/post.hpp>

#include "core/echo.hpp"
#include "core/log.hpp"
#include "ism/sim/fabric.hpp"
#include "ism/vfio/vfio_device_file.hpp"

namespace ismd {

namespace asio = boost::asio;

ConfigSchema make_schema(const std::vector<std::unique_ptr<Service>>& services)
{
    ConfigSchema schema;
    for (const auto& s : services)
        schema.services[s->name()] = s->config_parser();
    return schema;
}

Daemon::Daemon(asio::io_context& io, std::filesystem::path config_file, Config config,
               std::vector<std::unique_ptr<Service>> services)
    : io_(io),
      config_file_(std::move(config_file)),
      config_(std::move(config)),
      services_(std::move(services)),
      schema_(make_schema(services_)),
      notifier_(io.get_executor()),
      signals_(io, SIGTERM, SIGINT, SIGHUP)
{
    // Channel 0 is the core's (ismctl check); each service gets the next block.
    uint32_t next = kCoreChannel + 1;
    for (const auto& s : services_) {
        service_list_.push_back(s.get());
        first_channels_.push_back(next);
        next += s->channel_count();
    }
}

Daemon::~Daemon()
{
    stop();
}

ism::link::LinkOptions Daemon::link_options(uint64_t peer_gid) const
{
    const LinkConfig& l = config_.global.link;
    ism::link::LinkOptions o;
    o.peer_gid = peer_gid;
    o.dmb_size = l.dmb_size;
    o.channels = l.channels;
    o.keepalive_interval = l.keepalive;
    o.dead_after = l.dead_after;
    return o;
}

tl::expected<void, std::string> Daemon::open_device()
{
    std::unique_ptr<ism::vfio::DeviceFile> file;
    std::string what;
    if (const auto* emu = std::get_if<EmulatedDevice>(&config_.global.device)) {
        what = "emulated function " + emu->function + " on fabric " + emu->fabric;
        auto f = ism::sim::open_function({.fabric = emu->fabric, .name = emu->function});
        if (!f)
            return tl::unexpected(what + ": " + f.error().message());
        file = std::move(*f);
    } else {
        const auto& v = std::get<VfioDevice>(config_.global.device);
        const std::string selector = v.fid ? "fid:" + std::to_string(*v.fid) : v.pci;
        what = "ISM function " + selector;
        auto f = ism::vfio::open_vfio_device(selector);
        if (!f)
            return tl::unexpected(what + ": " + f.error().message());
        file = std::move(*f);
    }
    auto dev = ism::device::IsmDevice::open(std::move(file));
    if (!dev)
        return tl::unexpected(what + ": " + dev.error().message());
    device_ = std::move(*dev);
    log(LogLevel::info, "opened %s, GID %s", what.c_str(), format_gid(device_->gid()).c_str());
    return {};
}

tl::expected<void, std::string> Daemon::add_peer(const PeerConfig& peer)
{
    auto link = endpoint_->add_link(link_options(peer.gid));
    if (!link)
        return tl::unexpected(peer.name + ": cannot start the link: " + link.error().message());
    peers_[peer.name] = std::make_unique<Peer>(peer, *endpoint_, **link, service_list_,
                                               first_channels_, [this] { update_status(); });
    log(LogLevel::info, "%s: peer %s added", peer.name.c_str(), format_gid(peer.gid).c_str());
    return {};
}

tl::expected<void, std::string> Daemon::start()
{
    set_log_level(config_.global.log_level);
    const uint32_t needed = first_channels_.empty()
                                ? kCoreChannel + 1
                                : first_channels_.back() + service_list_.back()->channel_count();
    if (config_.global.link.channels < needed)
        return tl::unexpected(config_file_.string() + ": /link/channels: expected at least " +
                              std::to_string(needed) +
                              " (one for ismd, the rest for its services), found " +
                              std::to_string(config_.global.link.channels));
    if (auto r = open_device(); !r)
        return r;
    ism::link::EndpointOptions eo;
    switch (config_.global.link.poll) {
        case PollMode::interrupt:
            eo.mode = ism::link::PollMode::interrupt;
            break;
        case PollMode::adaptive:
            eo.mode = ism::link::PollMode::adaptive;
            break;
        case PollMode::polling:
            eo.mode = ism::link::PollMode::polling;
            break;
    }
    eo.poll_window = config_.global.link.poll_window;
    endpoint_ = std::make_unique<ism::link::Endpoint>(io_, *device_, eo);
    for (auto* s : service_list_)
        s->configure(config_.global);
    for (const auto& p : config_.peers) {
        if (auto r = add_peer(p); !r)
            return r;
    }
    control_ = std::make_unique<ControlServer>(io_.get_executor(), config_.global.control.socket,
                                               config_.global.control.group);
    register_ops();
    for (auto* s : service_list_)
        s->register_ops(*control_);
    if (auto r = control_->listen(); !r)
        return tl::unexpected("control socket " + config_.global.control.socket + ": " +
                              r.error().message());

    wait_signal();
    notifier_.start_watchdog();
    notifier_.ready();
    log(LogLevel::notice, "ready: %zu peer(s), control socket %s", peers_.size(),
        config_.global.control.socket.c_str());
    update_status();
    return {};
}

void Daemon::wait_signal()
{
    signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
        if (ec || stopping_)
            return;
        if (signo == SIGHUP) {
            log(LogLevel::notice, "SIGHUP: reloading %s", config_file_.c_str());
            (void)reload();
            wait_signal();
            return;
        }
        log(LogLevel::notice, "%s: stopping", signo == SIGTERM ? "SIGTERM" : "SIGINT");
        stop();
    });
}

tl::expected<void, std::string> Daemon::reload()
{
    notifier_.reloading();
    auto result = apply_new_config();
    // READY=1 ends the reload whatever its outcome: systemd waits for it.
    notifier_.ready();
    update_status();
    return result;
}

tl::expected<void, std::string> Daemon::apply_new_config()
{
    auto fresh = load_config(config_file_, schema_);
    if (!fresh) {
        log(LogLevel::err, "reload refused, the running configuration stays: %s",
            fresh.error().text.c_str());
        return tl::unexpected(fresh.error().text);
    }
    // What only a restart can change.
    const auto& now = config_.global;
    const auto& next = fresh->global;
    const bool device_same = [&] {
        if (now.device.index() != next.device.index())
            return false;
        if (const auto* a = std::get_if<EmulatedDevice>(&now.device)) {
            const auto& b = std::get<EmulatedDevice>(next.device);
            return a->fabric == b.fabric && a->function == b.function;
        }
        const auto& a = std::get<VfioDevice>(now.device);
        const auto& b = std::get<VfioDevice>(next.device);
        return a.pci == b.pci && a.fid == b.fid;
    }();
    const auto& la = now.link;
    const auto& lb = next.link;
    const bool link_same = la.dmb_size == lb.dmb_size && la.channels == lb.channels &&
                           la.keepalive == lb.keepalive && la.dead_after == lb.dead_after &&
                           la.poll == lb.poll && la.poll_window == lb.poll_window;
    if (!device_same || !link_same || now.control.socket != next.control.socket ||
        now.control.group != next.control.group) {
        const std::string why = config_file_.string() +
                                ": device, link and control settings change only at a restart of "
                                "ismd; the running configuration stays";
        log(LogLevel::err, "reload refused: %s", why.c_str());
        return tl::unexpected(why);
    }
    set_log_level(next.log_level);
    config_.global.log_level = next.log_level;

    // Peers: unchanged files keep everything; the rest go and come anew.
    std::map<std::string, const PeerConfig*> wanted;
    for (const auto& p : fresh->peers)
        wanted[p.name] = &p;
    unsigned kept = 0, dropped = 0, added = 0;
    for (auto it = peers_.begin(); it != peers_.end();) {
        const auto w = wanted.find(it->first);
        if (w != wanted.end() && w->second->file_text == it->second->config().file_text &&
            w->second->file == it->second->config().file) {
            ++kept;
            wanted.erase(w);
            ++it;
        } else {
            log(LogLevel::notice, "%s: peer %s", it->first.c_str(),
                w == wanted.end() ? "removed" : "changed: restarting its link");
            it = peers_.erase(it);
            ++dropped;
        }
    }
    std::string error;
    for (const auto& [name, p] : wanted) {
        if (auto r = add_peer(*p); !r)
            error = r.error();
        else
            ++added;
    }
    config_.peers = std::move(fresh->peers);
    log(LogLevel::notice, "reloaded: %u peer(s) kept, %u added, %u removed or restarted", kept,
        added, dropped);
    if (!error.empty())
        return tl::unexpected(error);
    return {};
}

void Daemon::stop()
{
    if (stopping_)
        return;
    stopping_ = true;
    notifier_.stopping();
    notifier_.stop_watchdog();
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    for (auto* s : service_list_)
        s->stop();
    if (control_)
        control_->stop();
    // Each link resets itself towards its peer and unregisters its DMB.
    peers_.clear();
    if (endpoint_)
        endpoint_->stop();
    endpoint_.reset();
    device_.reset();
    io_.stop();
}

Peer* Daemon::find_peer(const std::string& name)
{
    const auto it = peers_.find(name);
    return it == peers_.end() ? nullptr : it->second.get();
}

std::string Daemon::summary() const
{
    std::size_t up = 0;
    for (const auto& [name, p] : peers_)
        if (p->up())
            ++up;
    std::string s = std::to_string(peers_.size()) + (peers_.size() == 1 ? " peer, " : " peers, ") +
                    std::to_string(up) + " up";
    for (auto* svc : service_list_) {
        const std::string part = svc->summary();
        if (!part.empty())
            s += "; " + part;
    }
    return s;
}

void Daemon::update_status()
{
    // Many changes in one turn of the loop give one STATUS= line.
    if (status_posted_ || stopping_)
        return;
    status_posted_ = true;
    asio::post(io_, [this] {
        status_posted_ = false;
        if (!stopping_)
            notifier_.status(summary());
    });
}

void Daemon::register_ops()
{
    control_->on("status", [this](const ControlRequest&) -> asio::awaitable<nlohmann::json> {
        nlohmann::json j;
        j["summary"] = summary();
        j["gid"] = format_gid(device_->gid());
        nlohmann::json peers = nlohmann::json::array();
        for (const auto& [name, p] : peers_)
            peers.push_back(p->status());
        j["peers"] = peers;
        co_return j;
    });
    control_->on("peers", [this](const ControlRequest&) -> asio::awaitable<nlohmann::json> {
        nlohmann::json peers = nlohmann::json::array();
        for (const auto& [name, p] : peers_)
            peers.push_back({{"name", name},
                             {"gid", format_gid(p->config().gid)},
                             {"link", p->up() ? "up" : "down"},
                             {"file", p->config().file.string()}});
        co_return peers;
    });
    control_->on("reload", [this](const ControlRequest& r) -> asio::awaitable<nlohmann::json> {
        log(LogLevel::notice, "reload asked by uid %u", static_cast<unsigned>(r.who.uid));
        if (auto result = reload(); !result)
            throw ControlError{result.error()};
        co_return nlohmann::json{{"peers", peers_.size()}};
    });
    control_->on("check", [this](const ControlRequest& r) -> asio::awaitable<nlohmann::json> {
        const auto& a = r.args;
        if (!a.contains("peer") || !a["peer"].is_string())
            throw ControlError{"check: \"peer\" missing"};
        Peer* peer = find_peer(a["peer"].get<std::string>());
        if (peer == nullptr)
            throw ControlError{"no peer named \"" + a["peer"].get<std::string>() + "\""};
        CheckOptions o;
        if (a.contains("count") && a["count"].is_number_unsigned())
            o.count = std::clamp<uint32_t>(a["count"].get<uint32_t>(), 1, 1000000);
        if (a.contains("size") && a["size"].is_number_unsigned())
            o.size = std::clamp<uint32_t>(a["size"].get<uint32_t>(), 9, 1 << 20);
        // A reload may remove the peer while the check runs: the responder is shared,
        // and the check fails at its next step when its link is gone.
        const auto echo = peer->echo();
        co_return co_await echo->check(o);
    });
}

}  // namespace ismd
