// SPDX-License-Identifier: MIT
#include "ism/link/endpoint.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>

#include <boost/asio/post.hpp>

namespace ism::link {
namespace {

// How long the polling loop runs before it lets the io_context run other handlers (the
// longest a timer or socket handler waits for it), and how often it collects events
// (while it polls, the summary bit stays set and events raise no interrupt).
constexpr auto kSpinSlice = std::chrono::microseconds(50);
constexpr auto kEventPeriod = std::chrono::milliseconds(1);
// A polling loop that finds nothing for this long gives up the CPU once (sched_yield),
// so that a process it shares the core with (its peer, on a busy machine) runs.
constexpr auto kYieldAfter = std::chrono::microseconds(5);
// A yield that took this long let another task run: the core is shared, most likely with
// the peer (a busy machine, or the scheduler placing both on one CPU), which answers only
// once we yield. Until a yield returns at once again, the loop yields after kYieldShared.
constexpr auto kSharedCoreYield = std::chrono::microseconds(2);
constexpr auto kYieldShared = std::chrono::microseconds(1);
// Timers are re-armed at least this often, so that a deadline that moved closer (a new
// epoch's first OFFER retry) is not missed for long.
constexpr auto kTimerCap = std::chrono::milliseconds(250);
// The cursor area of a DMB (docs/protocol.md): producer then consumer cursors.
constexpr std::size_t kCursorWords = 2 * std::size_t{kMaxChannels};

}  // namespace

// A link's window onto the device: its own DMBs, stores and events to its one peer. It
// also watches the cursor area of the link's DMB, which is where every piece of work the
// peer gives us shows first: a moved cursor is activity, anything else is not.
class Endpoint::DevicePort final : public Port {
public:
    DevicePort(Endpoint& endpoint, uint64_t peer_gid) noexcept
        : endpoint_(endpoint), peer_gid_(peer_gid)
    {
    }

    void attach(Link* link) noexcept { link_ = link; }
    [[nodiscard]] Link* link() const noexcept { return link_; }

    Result<OwnDmb> register_dmb(std::size_t size) override
    {
        auto dmb = endpoint_.device_.register_dmb(size, peer_gid_);
        if (!dmb)
            return tl::unexpected(dmb.error());
        endpoint_.by_sba_[dmb->sba_idx] = this;
        sba_by_token_[dmb->token] = dmb->sba_idx;
        cursors_ = reinterpret_cast<uint64_t*>(dmb->memory.data() + kProducerCursorsOffset);
        cursors_token_ = dmb->token;
        seen_.fill(0);  // a new DMB reads as zeros
        return OwnDmb{dmb->token, dmb->memory};
    }

    void unregister_dmb(uint64_t token) override
    {
        if (auto it = sba_by_token_.find(token); it != sba_by_token_.end()) {
            endpoint_.by_sba_.erase(it->second);
            sba_by_token_.erase(it);
        }
        if (token == cursors_token_) {
            cursors_ = nullptr;
            cursors_token_ = 0;
        }
        (void)endpoint_.device_.unregister_dmb(token);
    }

    Result<void> store(uint64_t token, uint64_t offset, std::span<const std::byte> data,
                       bool signal) override
    {
        auto r = endpoint_.device_.move(token, 0, offset, data, signal);
        if (signal)
            endpoint_.note_store();
        return r;
    }

    Result<void> send_event(uint32_t code, uint64_t info) override
    {
        return endpoint_.device_.signal_event(peer_gid_, code, info, true);
    }

    /// Whether the peer moved a cursor in our DMB since the last call. Reads 512 bytes
    /// that stay in our cache until the peer writes them.
    bool cursors_moved() noexcept
    {
        if (cursors_ == nullptr)
            return false;
        bool moved = false;
        for (std::size_t i = 0; i < kCursorWords; ++i) {
            const uint64_t v =
                std::atomic_ref<uint64_t>(cursors_[i]).load(std::memory_order_relaxed);
            if (v != seen_[i]) {
                seen_[i] = v;
                moved = true;
            }
        }
        return moved;
    }

private:
    Endpoint& endpoint_;
    uint64_t peer_gid_;
    Link* link_ = nullptr;
    std::map<uint64_t, uint32_t> sba_by_token_;
    uint64_t* cursors_ = nullptr;  // the cursor area of our current DMB
    uint64_t cursors_token_ = 0;
    std::array<uint64_t, kCursorWords> seen_{};
};

Endpoint::Endpoint(boost::asio::io_context& io, device::IsmDevice& device,
                   const EndpointOptions& options)
    : io_(io), device_(device), options_(options), irq_(io), timer_(io)
{
    if (options_.mode == PollMode::adaptive && options_.poll_window.count() <= 0)
        options_.mode = PollMode::interrupt;
    if (options_.mode != PollMode::polling && device_.irq_fd() >= 0)
        irq_.assign(::dup(device_.irq_fd()));
    if (options_.mode == PollMode::polling)
        start_polling();
    else
        wait_irq();
}

Endpoint::~Endpoint()
{
    try {
        stop();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a timer that cannot be cancelled dies with us
    }
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
    if (stopped_ || waiting_irq_ || !irq_.is_open())
        return;
    waiting_irq_ = true;
    irq_.async_wait(
        boost::asio::posix::stream_descriptor::wait_read,
        [this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
            if (!alive.lock())
                return;
            waiting_irq_ = false;
            if (ec || stopped_)
                return;
            on_irq();
            // While the polling loop runs, nothing waits on the interrupt: the summary
            // bit stays set and the peer's signals raise none. arm_interrupt() waits
            // again when the loop ends.
            if (!spinning_)
                wait_irq();
        });
}

void Endpoint::on_irq()
{
    ++stats_.interrupts;
    const auto now = Clock::now();
    auto report = device_.handle_interrupt();
    const bool signalled = report && !report->dmbs.empty();
    if (report)
        (void)dispatch(*report, now);
    arm_timer();
    // A signal is a peer at work: poll for what it does next instead of waiting for the
    // next interrupt. Events alone (handshake, resets) are no reason to.
    if (signalled && options_.mode == PollMode::adaptive && !spinning_ && !stopped_)
        start_polling();
}

bool Endpoint::dispatch(const device::InterruptReport& report, Clock::time_point now)
{
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
    // A link with several signalled DMBs is polled once. Activity is counted before the
    // links run their handlers, so that a handler sees what noticed its data.
    std::vector<DevicePort*> ports;
    bool moved = false;
    for (const auto& sig : report.dmbs) {
        auto it = by_sba_.find(sig.sba_idx);
        if (it == by_sba_.end() || it->second->link() == nullptr ||
            std::find(ports.begin(), ports.end(), it->second) != ports.end())
            continue;
        ports.push_back(it->second);
        moved = it->second->cursors_moved() || moved;
    }
    if (moved)
        ++stats_.busy_passes;
    // The ports were collected first: a link's handler may restart the link, which
    // registers a new DMB and so changes by_sba_. Ports live as long as the Endpoint.
    for (DevicePort* port : ports)
        port->link()->poll(now);
    return moved;
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
            ++stats_.timer_runs;
            // By index: a tick's handlers may add links, which moves entries_.
            for (std::size_t i = 0; i < entries_.size(); ++i)  // NOLINT(modernize-loop-convert)
                entries_[i].link->tick(fired);
            arm_timer();
        });
}

void Endpoint::note_store()
{
    // Our own signalled store (data, or credit returned) means an answer may follow.
    stored_ = true;
    if (options_.mode == PollMode::adaptive && !spinning_ && !stopped_)
        start_polling();
}

void Endpoint::start_polling()
{
    spinning_ = true;
    ++stats_.poll_windows;
    last_activity_ = Clock::now();
    // on_irq() just collected events, or the loop starts with the Endpoint.
    if (options_.mode != PollMode::polling)
        next_events_ = last_activity_ + kEventPeriod;
    boost::asio::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.lock())
            spin();
    });
}

bool Endpoint::poll_all(Clock::time_point now)
{
    ++stats_.poll_passes;
    bool moved = std::exchange(stored_, false);
    bool found = false;
    // By index: a handler the link runs may add a link. A pass looks at every port before
    // it polls a link, so that the count is made before the links' handlers run.
    moved_.resize(entries_.size());
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        moved_[i] = entries_[i].port->cursors_moved() ? 1 : 0;
        found = found || moved_[i] != 0;
    }
    if (found)
        ++stats_.busy_passes;
    handed_ = false;
    for (std::size_t i = 0; i < moved_.size() && i < entries_.size(); ++i) {
        // A link that is not up reads its control block, which the cursors do not show.
        if (moved_[i] != 0 || !entries_[i].link->up()) {
            Link& link = *entries_[i].link;
            const uint64_t handlers = link.handlers_run();
            link.poll(now);
            handed_ = handed_ || link.handlers_run() != handlers;
        }
    }
    return moved || found;
}

void Endpoint::spin()
{
    if (stopped_) {
        spinning_ = false;
        return;
    }
    const bool adaptive = options_.mode == PollMode::adaptive;
    const auto start = Clock::now();
    auto now = start;
    auto yielded = start;
    for (;;) {
        const bool busy = poll_all(now);
        if (busy)
            last_activity_ = now;
        else if (now - std::max(last_activity_, yielded) >= yield_after_) {
            ::sched_yield();
            yielded = Clock::now();
            yield_after_ = yielded - now >= kSharedCoreYield ? kYieldShared : kYieldAfter;
        }
        now = Clock::now();
        if (now >= next_events_) {
            next_events_ = now + kEventPeriod;
            auto report = device_.handle_interrupt();
            if (report && dispatch(*report, now))
                last_activity_ = now;
            arm_timer();
        }
        if (stopped_) {
            spinning_ = false;
            return;
        }
        if (adaptive && now - last_activity_ >= options_.poll_window) {
            arm_interrupt();
            return;
        }
        // After a pass that ran the application's handlers, let the io_context run what
        // they posted (an application's next request, a coroutine resuming) before
        // polling on. A pass that only moved data (a piece in, credit back) gave the
        // application nothing: polling on saves the re-post and its epoll_wait.
        if (handed_ || now - start >= kSpinSlice)
            break;
    }
    boost::asio::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.lock())
            spin();
    });
}

void Endpoint::arm_interrupt()
{
    ++stats_.sleeps;
    spinning_ = false;
    // Clearing the summary bit (the first thing the scan does) re-arms the interrupt:
    // from then on the peer's next signal raises it. A signal raised while we polled
    // (which raised none, the bit being set) left its DMB bit, which this report
    // carries; one raised after the clear raises the interrupt, which the wait below
    // sees even if it came before the wait began. Work found here, or by the pass after
    // it, keeps the loop going instead.
    const auto now = Clock::now();
    bool moved = false;
    if (auto report = device_.handle_interrupt(); report)
        moved = dispatch(*report, now);
    moved = poll_all(now) || moved;
    arm_timer();
    if (stopped_)
        return;
    if (moved && !spinning_)
        start_polling();
    if (!spinning_)
        wait_irq();
}

}  // namespace ism::link
