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

void ChannelImpl::reset_rings() noexcept
{
    tx_.reset();
    rx_.reset();
    reader_ = MessageReader(reader_.max_message());
    inbox_.clear();
    inbox_bytes_ = 0;
    prod_dirty_ = cons_dirty_ = false;
    moved_ = false;
    peer_open_ = mismatch_ = false;
    peer_mode_ = ChannelMode::message;
}

void Channel::async_send(std::span<const std::byte> data, SendHandler done)
{
    Link::Settle settle(*link_);
    auto& self = static_cast<ChannelImpl&>(*this);
    std::error_code refused;
    if (!open_)
        refused = make_error_code(errc::bad_argument);
    else if (mode_ == ChannelMode::message && data.size() > self.reader_.max_message())
        refused = make_error_code(errc::message_too_large);
    else if (!link_->up_)
        refused = make_error_code(errc::peer_gone);
    else if (index_ >= link_->rx_channels_)
        refused = make_error_code(errc::no_peer_channel);  // writing would reset the link
    else if (self.mismatch_)
        refused = make_error_code(errc::mode_mismatch);
    else if (mode_ == ChannelMode::message && data.size() > link_->peer_max_message_)
        refused = make_error_code(errc::message_too_large);  // the peer would reset the link
    if (refused) {
        ++stats_.sends_failed;
        stats_.bytes_failed += data.size();
        link_->defer([h = std::move(done), refused] { h(refused); });
        return;
    }
    self.unsent_.push_back(ChannelImpl::SendOp{data, 0, false, 0, std::move(done)});
    if (self.unsent_.size() == 1)
        (void)link_->service_tx(self);
}

void Channel::async_receive(ReceiveHandler done)
{
    Link::Settle settle(*link_);
    auto& self = static_cast<ChannelImpl&>(*this);
    if (!open_ || mode_ != ChannelMode::message) {
        link_->defer([h = std::move(done)] { h(make_error_code(errc::bad_argument), {}); });
        return;
    }
    if (self.mismatch_) {
        link_->defer([h = std::move(done)] { h(make_error_code(errc::mode_mismatch), {}); });
        return;
    }
    self.receivers_.push_back(std::move(done));
    if (link_->up_)
        (void)link_->service_rx(self);
}

void Channel::async_read_some(std::span<std::byte> buffer, ReadHandler done)
{
    Link::Settle settle(*link_);
    auto& self = static_cast<ChannelImpl&>(*this);
    if (!open_ || mode_ != ChannelMode::stream || buffer.empty()) {
        link_->defer([h = std::move(done)] { h(make_error_code(errc::bad_argument), 0); });
        return;
    }
    if (self.mismatch_) {
        link_->defer([h = std::move(done)] { h(make_error_code(errc::mode_mismatch), 0); });
        return;
    }
    self.reads_.push_back(ChannelImpl::ReadOp{buffer, std::move(done)});
    if (link_->up_)
        (void)link_->service_rx(self);
}

std::size_t Channel::pending_sends() const noexcept
{
    const auto& self = static_cast<const ChannelImpl&>(*this);
    return self.unsent_.size() + self.unconfirmed_.size();
}

}  // namespace ism::link
