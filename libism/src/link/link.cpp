// SPDX-License-Identifier: MIT
// The link's frame: options, construction, the deferral of handlers (docs/protocol.md).
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <utility>

#include "link_detail.hpp"

namespace ism::link {

using namespace detail;

// ---------------------------------------------------------------------------------------
// Options

Result<void> LinkOptions::validate() const
{
    if (!std::has_single_bit(dmb_size) || dmb_size < kMinDmbSize || dmb_size > kMaxDmbSize ||
        channels == 0 || channels > kMaxChannels ||
        ring_size_for(dmb_size, channels) < kMinRingSize || keepalive_interval.count() <= 0 ||
        keepalive_interval.count() > kMaxKeepaliveMs || dead_after <= keepalive_interval ||
        peer_keepalive_limit < keepalive_interval ||
        peer_keepalive_limit.count() > kMaxKeepaliveMs || offer_first.count() <= 0 ||
        offer_max < offer_first || max_message == 0 || max_message > kMaxMessageSize ||
        send_queue == 0 || rx_budget == 0)
        return fail(errc::bad_argument);
    return {};
}

// ---------------------------------------------------------------------------------------
// Deferred handlers: every entry point settles on the way out, so that handlers run once
// the link's state is consistent and may call back into it.

void Link::settle()
{
    // Handlers first: a consumer cursor goes out only after the messages it releases
    // were handed over, and sends issued by handlers share the batch's one signal.
    for (;;) {
        // Swapped, not moved: both vectors keep their capacity, so deferring a handler
        // allocates nothing once the link has run a while. settle() does not nest (a
        // handler's calls into the link run at depth 2).
        running_.swap(deferred_);
        handlers_run_ += running_.size();
        for (auto& fn : running_) {
            // The rule is that handlers do not throw; one that does must not unwind
            // through the link (a Settle runs in destructors) nor skip the others.
            try {
                fn();
            } catch (...) {
                ++handler_exceptions_;
                if (!handler_exception_)
                    handler_exception_ = std::current_exception();
            }
        }
        running_.clear();
        // A handler that re-armed may have been handed the next message, whose own
        // handler is now deferred: publish the cursor only once every handover ran.
        if (!deferred_.empty())
            continue;
        if (up_)
            flush_cursors();
        if (deferred_.empty())
            return;
    }
}

void Link::emit(LinkEvent event)
{
    if (on_event_)
        defer([this, event] {
            if (on_event_)
                on_event_(event);
        });
}

// ---------------------------------------------------------------------------------------
// Construction and handshake

Link::Link(Port& port, const LinkOptions& options)
    : port_(port), opt_(options), rng_(std::random_device{}())
{
    channels_.reserve(opt_.channels);
    for (uint32_t c = 0; c < opt_.channels; ++c)
        channels_.push_back(std::make_unique<ChannelImpl>(*this, c, opt_.max_message));
}

Link::~Link()
{
    shutdown();
}

void Link::shutdown()
{
    if (stopped_)
        return;
    Settle settle(*this);
    stopped_ = true;
    restart(std::make_error_code(std::errc::operation_canceled),
            have_dmb_ && have_peer_ ? std::optional(ResetReason::shutdown) : std::nullopt, 0, now_);
}

void Link::reset(uint32_t channel, std::error_code why)
{
    if (stopped_ || !up_)
        return;
    Settle settle(*this);
    violation(ResetReason::service, why, channel);
}

Result<void> Link::start(Clock::time_point now)
{
    now_ = now;
    if (auto v = opt_.validate(); !v)
        return v;
    if (stopped_)
        return fail(errc::bad_argument);
    Settle settle(*this);
    return begin_epoch(now);
}

const Channel* Link::channel(uint32_t index) const noexcept
{
    if (index >= channels_.size() || !channels_[index]->open_)
        return nullptr;
    return channels_[index].get();
}

Channel& Link::open_channel(uint32_t index, ChannelMode mode)
{
    Settle settle(*this);
    ChannelImpl& ch = *channels_.at(index);
    if (!ch.open_) {
        ch.open_ = true;
        ch.mode_ = mode;
        ch.tx_open_ = true;
        // A close mark not yet out: the set still announces the old stream until it is.
        if (!ch.close_pending_) {
            ch.set_open_ = true;
            ch.set_mode_ = mode;
        }
        check_modes(ch);
        // The peer learns of it before any data we send on it (stores are ordered).
        (void)announce_channels();
    }
    return ch;
}

}  // namespace ism::link
