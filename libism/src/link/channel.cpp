// SPDX-License-Identifier: MIT
// The Channel API: checks, queues the operation, and lets the link serve it.
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
// Channel

void ChannelImpl::fail_send(SendOp& op, std::error_code why)
{
    ++stats_.sends_failed;
    stats_.bytes_failed += op.data.size();
    if (op.handler)
        link_->defer([h = std::move(op.handler), why] { h(why); });
}

void ChannelImpl::reset_rings() noexcept
{
    tx_.reset();
    rx_.reset();
    reader_ = MessageReader(reader_.max_message());
    link_->forget_budget(*this);
    inbox_.clear();
    inbox_bytes_ = 0;
    prod_dirty_ = cons_dirty_ = false;
    moved_ = false;
    peer_open_ = mismatch_ = false;
    peer_mode_ = ChannelMode::message;
    fin_end_ = peer_fin_word_ = 0;
    rx_fin_.reset();
    rx_fin_mode_ = ChannelMode::message;
    skip_ = false;
    // A new epoch starts a new stream on every open channel.
    tx_open_ = open_;
    set_open_ = open_;
    set_mode_ = mode_;
    close_pending_ = false;
}

void ChannelImpl::queue_fin(bool close)
{
    SendOp op;
    op.id = ++next_op_;
    op.mode = mode_;
    op.fin = true;
    op.fin_close = close;
    unsent_.push_back(std::move(op));
    tx_open_ = false;
    if (unsent_.size() == 1)
        (void)link_->service_tx(*this);
}

void Channel::shutdown_send()
{
    Link::Settle settle(*link_);
    auto& self = static_cast<ChannelImpl&>(*this);
    if (link_->stopped_ || !open_ || !self.tx_open_)
        return;
    if (!link_->up_ || index_ >= link_->rx_channels_) {
        // No stream to end: the next epoch starts a new one, which stays shut.
        self.tx_open_ = false;
        return;
    }
    self.queue_fin(false);
}

void Channel::close()
{
    Link::Settle settle(*link_);
    auto& self = static_cast<ChannelImpl&>(*this);
    if (link_->stopped_ || !open_)
        return;
    open_ = false;
    const auto aborted = std::make_error_code(std::errc::operation_canceled);
    // Every receive is cancelled, and what was read ahead is dropped with the rest of the
    // peer's stream once our mark is out (our consumer cursor must not move before it).
    link_->fail_receivers(self, aborted);
    self.inbox_.clear();
    self.inbox_bytes_ = 0;
    link_->forget_budget(self);
    self.read_ahead_ = false;
    // With the link down, or a peer without this channel, there is no stream to end.
    if (!link_->up_ || index_ >= link_->rx_channels_) {
        link_->fail_waiters(self, aborted);
        self.tx_open_ = self.set_open_ = false;
        (void)link_->announce_channels();
        return;
    }
    const bool open_stream = self.tx_open_;
    self.tx_open_ = false;  // end_tx_session queues no mark of its own
    link_->end_tx_session(self, aborted);
    self.mismatch_ = false;
    // The set says closed when the mark goes out (write_fin), not before: the peer
    // reads what we sent before it in the mode the set announces until then.
    self.close_pending_ = true;
    if (!open_stream && !self.unsent_.empty() && self.unsent_.back().fin)
        self.unsent_.back().fin_close = true;  // a half-close not yet out says it all
    else
        self.queue_fin(true);
    if (self.skip_)
        (void)link_->service_rx(self);  // our mark is out: drop what the peer sent
}

Channel::OpId Channel::async_send(std::span<const std::byte> data, SendHandler done)
{
    return static_cast<ChannelImpl&>(*this).send(data, std::move(done), false);
}

Channel::OpId Channel::async_write(std::span<const std::byte> data, SendHandler done)
{
    return static_cast<ChannelImpl&>(*this).send(data, std::move(done), true);
}

Channel::OpId ChannelImpl::send(std::span<const std::byte> data, SendHandler done,
                                bool when_written)
{
    Link::Settle settle(*link_);
    auto& self = *this;
    const OpId id = ++next_op_;
    std::error_code refused;
    if (link_->stopped_)
        refused = std::make_error_code(std::errc::operation_canceled);
    else if (!open_)
        refused = make_error_code(errc::bad_argument);
    else if (!self.tx_open_ && link_->up_)
        refused = make_error_code(errc::channel_closed);
    // Our own limit, checked before the link's state: one error, two reasons.
    else if (mode_ == ChannelMode::message && data.size() > self.reader_.max_message())
        refused = make_error_code(errc::message_too_large);  // NOLINT(bugprone-branch-clone)
    else if (!link_->up_)
        refused = make_error_code(errc::peer_gone);
    else if (index_ >= link_->rx_channels_)
        refused = make_error_code(errc::no_peer_channel);  // writing would reset the link
    else if (self.mismatch_)
        refused = make_error_code(errc::mode_mismatch);
    else if (mode_ == ChannelMode::message && data.size() > link_->peer_max_message_)
        refused = make_error_code(errc::message_too_large);  // the peer would reset the link
    else if (unsent_.size() + unconfirmed_.size() >= link_->opt_.send_queue)
        refused = make_error_code(errc::send_queue_full);
    if (refused) {
        ++stats_.sends_failed;
        stats_.bytes_failed += data.size();
        link_->defer([h = std::move(done), refused] { h(refused); });
        return id;
    }
    self.unsent_.push_back(
        ChannelImpl::SendOp{id, data, 0, false, 0, std::move(done), when_written, mode_});
    if (self.unsent_.size() == 1)
        (void)link_->service_tx(self);
    return id;
}

namespace {

std::error_code receive_refusal(const Channel& ch, bool stopped, bool open, bool mismatch,
                                ChannelMode mode)
{
    if (stopped)
        return std::make_error_code(std::errc::operation_canceled);
    if (!open || ch.mode() != mode)
        return make_error_code(errc::bad_argument);
    if (mismatch)
        return make_error_code(errc::mode_mismatch);
    return {};
}

}  // namespace

Channel::OpId Channel::async_receive(ReceiveHandler done)
{
    Link::Settle settle(*link_);
    auto& self = static_cast<ChannelImpl&>(*this);
    const OpId id = ++next_op_;
    if (auto why =
            receive_refusal(*this, link_->stopped_, open_, self.mismatch_, ChannelMode::message)) {
        link_->defer([h = std::move(done), why] { h(why, {}); });
        return id;
    }
    ChannelImpl::RecvOp op;
    op.id = id;
    op.whole = std::move(done);
    self.read_ahead_ = true;
    self.receivers_.push_back(std::move(op));
    if (link_->up_)
        (void)link_->service_rx(self);
    return id;
}

Channel::OpId Channel::async_receive(std::span<std::byte> buffer, ReadHandler done)
{
    Link::Settle settle(*link_);
    auto& self = static_cast<ChannelImpl&>(*this);
    const OpId id = ++next_op_;
    if (auto why =
            receive_refusal(*this, link_->stopped_, open_, self.mismatch_, ChannelMode::message)) {
        link_->defer([h = std::move(done), why] { h(why, 0); });
        return id;
    }
    ChannelImpl::RecvOp op;
    op.id = id;
    op.buffer = buffer;
    op.into = std::move(done);
    self.read_ahead_ = false;
    self.receivers_.push_back(std::move(op));
    if (link_->up_)
        (void)link_->service_rx(self);
    return id;
}

Channel::OpId Channel::async_read_some(std::span<std::byte> buffer, ReadHandler done)
{
    Link::Settle settle(*link_);
    auto& self = static_cast<ChannelImpl&>(*this);
    const OpId id = ++next_op_;
    auto why = receive_refusal(*this, link_->stopped_, open_, self.mismatch_, ChannelMode::stream);
    if (!why && buffer.empty())
        why = make_error_code(errc::bad_argument);
    if (why) {
        link_->defer([h = std::move(done), why] { h(why, 0); });
        return id;
    }
    self.reads_.push_back(ChannelImpl::ReadOp{id, buffer, std::move(done)});
    if (link_->up_)
        (void)link_->service_rx(self);
    return id;
}

bool Channel::cancel(OpId op)
{
    Link::Settle settle(*link_);
    auto& self = static_cast<ChannelImpl&>(*this);
    const auto aborted = std::make_error_code(std::errc::operation_canceled);
    for (auto it = self.receivers_.begin(); it != self.receivers_.end(); ++it) {
        if (it->id != op || it->started)
            continue;
        if (it->whole)
            link_->defer([h = std::move(it->whole), aborted] { h(aborted, {}); });
        else
            link_->defer([h = std::move(it->into), aborted] { h(aborted, 0); });
        self.receivers_.erase(it);
        // Room kept in the receive budget for this receiver goes to the others.
        if (link_->rx_waiter_ == index_) {
            link_->rx_waiter_.reset();
            link_->rx_freed_ = true;
            if (link_->up_)
                (void)link_->wake_budget_waiters();
        }
        return true;
    }
    for (auto it = self.reads_.begin(); it != self.reads_.end(); ++it) {
        if (it->id != op)
            continue;
        link_->defer([h = std::move(it->handler), aborted] { h(aborted, 0); });
        self.reads_.erase(it);
        return true;
    }
    for (auto it = self.unsent_.begin(); it != self.unsent_.end(); ++it) {
        if (it->id != op || it->started || it->done != 0)
            continue;
        ++stats_.sends_failed;
        stats_.bytes_failed += it->data.size();
        link_->defer([h = std::move(it->handler), aborted] { h(aborted); });
        self.unsent_.erase(it);
        return true;
    }
    return false;
}

std::size_t Channel::pending_sends() const noexcept
{
    const auto& self = static_cast<const ChannelImpl&>(*this);
    // End-of-stream marks waiting to go out are not sends.
    const auto marks = std::count_if(self.unsent_.begin(), self.unsent_.end(),
                                     [](const ChannelImpl::SendOp& op) { return op.fin; });
    return self.unsent_.size() - static_cast<std::size_t>(marks) + self.unconfirmed_.size();
}

std::size_t Channel::pending_receives() const noexcept
{
    const auto& self = static_cast<const ChannelImpl&>(*this);
    return self.receivers_.size() + self.reads_.size();
}

bool Channel::peer_open() const noexcept
{
    return static_cast<const ChannelImpl&>(*this).peer_open_;
}

}  // namespace ism::link
