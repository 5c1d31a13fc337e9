// SPDX-License-Identifier: MIT
#include "core/peer.hpp"

#include <ctime>

#include "core/echo.hpp"
#include "core/log.hpp"

namespace ismd {

using ism::link::LinkEvent;

namespace {

std::string iso_time(std::chrono::system_clock::time_point t)
{
    if (t == std::chrono::system_clock::time_point{})
        return {};
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

Peer::Peer(PeerConfig config, ism::link::Endpoint& endpoint, ism::link::Link& link,
           const std::vector<Service*>& services, const std::vector<uint32_t>& first_channels,
           std::function<void()> on_change)
    : config_(std::move(config)), endpoint_(endpoint), link_(link), on_change_(std::move(on_change))
{
    const auto executor = endpoint_.executor();
    echo_ = std::make_shared<EchoResponder>(link_, executor);
    for (std::size_t i = 0; i < services.size(); ++i) {
        Service* s = services[i];
        PeerHandle handle;
        handle.name = config_.name;
        handle.gid = config_.gid;
        const auto it = config_.services.find(s->name());
        handle.section = it == config_.services.end() ? nullptr : &it->second;
        handle.link = &link_;
        handle.first_channel = first_channels[i];
        handle.executor = executor;
        handle.status_changed = on_change_;
        if (auto ps = s->add_peer(handle))
            services_.emplace(s->name(), std::move(ps));
    }
    link_.set_event_handler([this](const LinkEvent& e) { on_link_event(e); });
}

Peer::~Peer()
{
    link_.set_event_handler(nullptr);
    services_.clear();
    echo_->detach();
    echo_.reset();
    endpoint_.remove_link(&link_);
}

void Peer::on_link_event(const LinkEvent& e)
{
    switch (e.kind) {
        case LinkEvent::Kind::up:
            last_up_ = std::chrono::system_clock::now();
            log(LogLevel::notice, "%s: link up (epoch %u, handshake %llu)", config_.name.c_str(),
                static_cast<unsigned>(link_.epoch()), static_cast<unsigned long long>(link_.ups()));
            for (auto& [name, s] : services_)
                s->link_up();
            break;
        case LinkEvent::Kind::down:
            last_down_ = std::chrono::system_clock::now();
            last_error_ = e.error.message();
            log(LogLevel::warning, "%s: link down: %s", config_.name.c_str(), last_error_.c_str());
            for (auto& [name, s] : services_)
                s->link_down(e.error);
            break;
        case LinkEvent::Kind::reset_sent:
            ++resets_;
            log(LogLevel::warning, "%s: reset the link: the peer broke rule %u on channel %u (%s)",
                config_.name.c_str(), static_cast<unsigned>(e.reason), e.channel,
                e.error.message().c_str());
            break;
        case LinkEvent::Kind::reset_received:
            ++resets_;
            log(LogLevel::warning, "%s: the peer reset the link (reason %u)", config_.name.c_str(),
                static_cast<unsigned>(e.reason));
            break;
        case LinkEvent::Kind::channel_error:
            log(LogLevel::warning, "%s: channel %u: %s", config_.name.c_str(), e.channel,
                e.error.message().c_str());
            break;
        case LinkEvent::Kind::offer_refused:
            log(LogLevel::warning, "%s: refused the peer's offer: %s", config_.name.c_str(),
                e.error.message().c_str());
            break;
    }
    if (on_change_)
        on_change_();
}

nlohmann::json Peer::status() const
{
    nlohmann::json j;
    j["name"] = config_.name;
    j["gid"] = format_gid(config_.gid);
    j["link"] = link_.up() ? "up" : "down";
    j["epoch"] = link_.epoch();
    j["handshakes"] = link_.ups();
    j["resets"] = resets_;
    j["last_handshake"] = iso_time(last_up_);
    j["last_loss"] = iso_time(last_down_);
    j["last_error"] = last_error_;
    nlohmann::json channels = nlohmann::json::array();
    uint64_t tx_b = 0, tx_m = 0, rx_b = 0, rx_m = 0, failed = 0;
    for (uint32_t c = 0; c < link_.options().channels; ++c) {
        const ism::link::Channel* ch = link_.channel(c);
        if (ch == nullptr)
            continue;
        const auto& st = ch->stats();
        channels.push_back({{"index", c},
                            {"messages_sent", st.messages_sent},
                            {"bytes_sent", st.bytes_sent},
                            {"messages_received", st.messages_received},
                            {"bytes_received", st.bytes_received},
                            {"sends_failed", st.sends_failed}});
        tx_b += st.bytes_sent;
        tx_m += st.messages_sent;
        rx_b += st.bytes_received;
        rx_m += st.messages_received;
        failed += st.sends_failed;
    }
    j["channels"] = channels;
    j["bytes_sent"] = tx_b;
    j["messages_sent"] = tx_m;
    j["bytes_received"] = rx_b;
    j["messages_received"] = rx_m;
    j["sends_failed"] = failed;
    for (const auto& [name, s] : services_)
        j[name] = s->status();
    return j;
}

}  // namespace ismd
