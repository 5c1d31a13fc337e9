// SPDX-License-Identifier: MIT
#include "ism/link/endpoint.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <set>

namespace ism::link {
namespace {

// How long the polling loop spins before it lets the io_context run other handlers,
// and how often it collects events (polling never waits for the interrupt).
constexpr auto kSpinSlice = std::chrono::microseconds(200);
constexpr auto kEventPeriod = std::chrono::milliseconds(1);
// Timers are re-armed at least this often, so that a deadline that moved closer (a new
// epoch's first OFFER retry) is not missed for long.
constexpr auto kTimerCap = std::chrono::milliseconds(250);

}  // namespace

// A link's window onto the device: its own DMBs, stores and events to its one peer.
class Endpoint::DevicePort final : public Port {
public:
    DevicePort(Endpoint& endpoint, uint64_t peer_gid) noexcept
        : endpoint_(endpoint), peer_gid_(peer_gid)
    {
    }

    void attach(Link* link) noexcept { link_ = link; }

    Result<OwnDmb> register_dmb(std::size_t size) override
    {
        auto dmb = endpoint_.device_.register_dmb(size, peer_gid_);
        if (!dmb)
            return tl::unexpected(dmb.error());
        endpoint_.by_sba_[dmb->sba_idx] = link_;
        sba_by_token_[dmb->token] = dmb->sba_idx;
        return OwnDmb{dmb->token, dmb->memory};
    }

    void unregister_dmb(uint64_t token) override
    {
        if (auto it = sba_by_token_.find(token); it != sba_by_token_.end()) {
            endpoint_.by_sba_.erase(it->second);
            sba_by_token_.erase(it);
        }
        (void)endpoint_.device_.unregister_dmb(token);
    }

    Result<void> store(uint64_t token, uint64_t offset, std::span<const std::byte> data,
                       bool signal) override
    {
        return endpoint_.device_.move(token, 0, offset, data, signal);
    }

    Result<void> send_event(uint32_t code, uint64_t info) override
    {
        return endpoint_.device_.signal_event(peer_gid_, code, info, true);
    }

private:
    Endpoint& endpoint_;
    uint64_t peer_gid_;
    Link* link_ = nullptr;
    std::map<uint64_t, uint32_t> sba_by_token_;
};

Endpoint::Endpoint(boost::asio::io_context& io, device::IsmDevice& device,
                   const EndpointOptions& options)
    : io_(io), device_(device), options_(options), irq_(io), timer_(io)
{
    if (!options_.polling && device_.irq_fd() >= 0)
        irq_.assign(::dup(device_.irq_fd()));
    if (options_.polling)
        boost::asio::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
            if (alive.lock())
                spin();
        });
    else
        wait_irq();
}

Endpoint::~Endpoint()
{
    stop();
    // Links unregister their DMBs through their ports, which update by_sba_.
    entries_.clear();
}

void Endpoint::stop()
{
    // Every link closes its end: pending operations complete with operation_canceled
    // (their handlers posted, not run here), the peer gets RESET, the DMBs go.
    for (auto& e : entries_)
        e.link->shutdown();
    stopped_ = true;
    boost::system::error_code ignored;
    irq_.cancel(ignored);
    timer_.cancel();
}

Result<Link*> Endpoint::add_link(const LinkOptions& options)
{
    if (auto v = options.validate(); !v)
        return tl::unexpected(v.error());
    if (options.peer_gid == 0 || link_for_gid(options.peer_gid) != nullptr)
        return fail(errc::bad_argument);
    Entry entry;
    entry.port = std::make_unique<DevicePort>(*this, options.peer_gid);
    entry.link = std::make_unique<Link>(*entry.port, options);
    entry.port->attach(entry.link.get());
    Link* link = entry.link.get();
    entries_.push_back(std::move(entry));
    if (auto r = link->start(Clock::now()); !r) {
        // The link retries registering its DMB at its next OFFER time.
        (void)r;
    }
    arm_timer();
    return link;
}

void Endpoint::remove_link(Link* link)
{
    std::erase_if(entries_, [link](const Entry& e) { return e.link.get() == link; });
}

Link* Endpoint::link_for_gid(uint64_t gid)
{
    for (auto& e : entries_) {
        if (e.link->options().peer_gid == gid)
            return e.link.get();
    }
    return nullptr;
}

void Endpoint::wait_irq()
{
    if (stopped_ || !irq_.is_open())
        return;
    irq_.async_wait(
        boost::asio::posix::stream_descriptor::wait_read,
        [this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
            if (ec || !alive.lock() || stopped_)
                return;
            on_irq();
            wait_irq();
        });
}

void Endpoint::on_irq()
{
    auto report = device_.handle_interrupt();
    if (report)
        dispatch(*report);
    arm_timer();
}

void Endpoint::dispatch(const device::InterruptReport& report)
{
    const auto now = Clock::now();
    // Events first: an OFFER or a GID-disabled event changes what the DMB means.
    for (const auto& ev : report.events) {
        if (ev.type == static_cast<uint32_t>(device::EventType::software)) {
            if (Link* link = link_for_gid(ev.tok))
                link->on_event(ev.code, ev.info, now);
        } else if (ev.type == static_cast<uint32_t>(device::EventType::device) &&
                   ev.code == device::kEventGidDisabled) {
            if (Link* link = link_for_gid(ev.tok))
                link->on_peer_disabled(now);
        }
    }
    std::set<Link*> polled;
    for (const auto& sig : report.dmbs) {
        auto it = by_sba_.find(sig.sba_idx);
        if (it != by_sba_.end() && it->second != nullptr && polled.insert(it->second).second)
            it->second->poll(now);
    }
}

void Endpoint::arm_timer()
{
    if (stopped_)
        return;
    const auto now = Clock::now();
    auto due = now + kTimerCap;
    for (auto& e : entries_)
        due = std::min(due, e.link->next_deadline());
    due = std::max(due, now);
    // Re-arm only when the deadline moved closer: cancelling costs a wake-up.
    if (timer_.expiry() > now && timer_.expiry() <= due)
        return;
    timer_.expires_at(due);
    timer_.async_wait(
        [this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
            if (ec || !alive.lock() || stopped_)
                return;
            const auto fired = Clock::now();
            for (std::size_t i = 0; i < entries_.size(); ++i)
                entries_[i].link->tick(fired);
            arm_timer();
        });
}

void Endpoint::spin()
{
    if (stopped_)
        return;
    const auto start = Clock::now();
    auto now = start;
    do {
        for (std::size_t i = 0; i < entries_.size(); ++i)
            entries_[i].link->poll(now);
        now = Clock::now();
        if (now >= next_events_) {
            next_events_ = now + kEventPeriod;
            auto report = device_.handle_interrupt();
            if (report)
                dispatch(*report);
            arm_timer();
        }
    } while (now - start < kSpinSlice && !stopped_);
    boost::asio::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.lock())
            spin();
    });
}

}  // namespace ism::link
