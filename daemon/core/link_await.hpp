// SPDX-License-Identifier: MIT
// Awaitable forms of the link channel's operations, for the daemon's coroutines.
#pragma once

#include <memory>
#include <span>
#include <system_error>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "ism/link/link.hpp"

namespace ismd {

/// Sends one message (or stream bytes); `data` must stay valid until it completes.
inline boost::asio::awaitable<std::error_code> send_message(ism::link::Channel& channel,
                                                            std::span<const std::byte> data)
{
    co_return co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable),
                                                   void(std::error_code)>(
        [&channel, data](auto handler) {
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            channel.async_send(data, [h](std::error_code ec) { (*h)(ec); });
        },
        boost::asio::use_awaitable);
}

}  // namespace ismd
