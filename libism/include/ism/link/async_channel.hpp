// SPDX-License-Identifier: MIT
// AsyncChannel: a Channel with Boost.Asio's conventions, for services on an io_context.
//
//   AsyncChannel ch(link.open_channel(1, ChannelMode::message), io.get_executor());
//   auto [ec, n] = co_await ch.async_receive(buffer, as_tuple(use_awaitable));
//
// Every operation takes a completion token (async_initiate): callbacks, use_awaitable,
// use_future, deferred, as_tuple(...). A pending handler is kept as an
// any_completion_handler (move-only handlers are fine) and completed through its
// associated executor (this channel's executor when it has none): posted first to this
// channel's executor, so never inline, neither from inside the initiating call nor from
// inside the link's processing. The channel's executor must be the one that runs the link.
//
// Cancellation: the handler's cancellation slot cancels the one operation (Channel::
// cancel): a receive, a read, or a send none of whose bytes went out completes with
// std::errc::operation_canceled and the channel stays usable; an operation already begun
// runs to its end. Errors are std::error_code (ism::errc for the link's): the end of the
// peer's stream is errc::end_of_stream, once per end, after everything sent before it
// (where Asio's own streams say boost::asio::error::eof).
//
// The core Channel stays Boost-free and is driven with an injected clock in the unit
// tests and the fuzzer; this layer only adapts completions, and owns no state of the link.
// A handler that throws propagates out of the io_context's run(), as in Asio, never
// through the link.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include "ism/link/channel.hpp"

namespace ism::link {

class AsyncChannel {
public:
    using executor_type = boost::asio::any_io_executor;
    using SendSignature = void(std::error_code);
    using ReadSignature = void(std::error_code, std::size_t);
    using ReceiveSignature = void(std::error_code, std::vector<std::byte>);

    AsyncChannel(Channel& channel, executor_type executor) noexcept
        : channel_(&channel), executor_(std::move(executor))
    {
    }

    [[nodiscard]] Channel& channel() const noexcept { return *channel_; }
    [[nodiscard]] executor_type get_executor() const noexcept { return executor_; }

    /// Channel::shutdown_send and Channel::close: the peer's receives and reads complete
    /// with errc::end_of_stream after what was sent before; close completes this
    /// channel's pending operations with std::errc::operation_canceled (posted, as every
    /// completion). The channel opens again with Link::open_channel.
    void shutdown_send() { channel_->shutdown_send(); }
    void close() { channel_->close(); }

    /// Channel::async_send: completes once the peer's application has the message (or
    /// with the error; it may then have arrived or not). `data` stays valid until then.
    template <class Token>
    auto async_send(std::span<const std::byte> data, Token&& token)
    {
        return boost::asio::async_initiate<Token, SendSignature>(
            [this](auto handler, std::span<const std::byte> bytes) {
                start_send(bytes,
                           boost::asio::any_completion_handler<SendSignature>(std::move(handler)));
            },
            token, data);
    }

    /// Channel::async_write: completes once every byte is in the peer's ring, so that
    /// `data` may be reused; delivery is not reported per write.
    template <class Token>
    auto async_write(std::span<const std::byte> data, Token&& token)
    {
        return boost::asio::async_initiate<Token, SendSignature>(
            [this](auto handler, std::span<const std::byte> bytes) {
                start_write(bytes,
                            boost::asio::any_completion_handler<SendSignature>(std::move(handler)));
            },
            token, data);
    }

    /// Channel::async_receive(buffer): the next message, copied once into `buffer`;
    /// completes with its length.
    template <class Token>
    auto async_receive(std::span<std::byte> buffer, Token&& token)
    {
        return boost::asio::async_initiate<Token, ReadSignature>(
            [this](auto handler, std::span<std::byte> into) {
                start_receive(
                    into, boost::asio::any_completion_handler<ReadSignature>(std::move(handler)));
            },
            token, buffer);
    }

    /// Channel::async_receive(): the next message in a vector of its own.
    template <class Token>
    auto async_receive(Token&& token)
    {
        return boost::asio::async_initiate<Token, ReceiveSignature>(
            [this](auto handler) {
                start_receive_vector(
                    boost::asio::any_completion_handler<ReceiveSignature>(std::move(handler)));
            },
            token);
    }

    /// Channel::async_read_some (stream mode).
    template <class Token>
    auto async_read_some(std::span<std::byte> buffer, Token&& token)
    {
        return boost::asio::async_initiate<Token, ReadSignature>(
            [this](auto handler, std::span<std::byte> into) {
                start_read_some(
                    into, boost::asio::any_completion_handler<ReadSignature>(std::move(handler)));
            },
            token, buffer);
    }

private:
    // One pending operation: its handler, until the link completes it or it is cancelled.
    template <class Signature>
    struct Pending;
    template <class... Args>
    struct Pending<void(Args...)> {
        // Boost 1.81's any_completion_handler move-assignment recurses without end: the
        // handler is only ever move-constructed here.
        Pending(boost::asio::any_completion_handler<void(Args...)>&& h, executor_type ex)
            : slot(boost::asio::get_associated_cancellation_slot(h)),
              handler(std::move(h)),
              fallback(std::move(ex))
        {
        }

        boost::asio::cancellation_slot slot;
        boost::asio::any_completion_handler<void(Args...)> handler;
        executor_type fallback;
        bool done = false;
        bool cancelling = false;  // inside the slot's own handler: it must not clear itself

        void complete(Args... args)
        {
            done = true;
            if (slot.is_connected() && !cancelling)
                slot.clear();
            // Out of the link's processing first (post), then onto the handler's own
            // executor (dispatch runs it there, or posts to it when that is another one).
            boost::asio::post(
                fallback, [h = std::move(handler), ... a = std::move(args)]() mutable {
                    boost::asio::dispatch(boost::asio::append(std::move(h), std::move(a)...));
                });
        }
    };

    template <class Signature, class Start>
    void start(boost::asio::any_completion_handler<Signature> handler, Start&& start_op)
    {
        auto pending = std::make_shared<Pending<Signature>>(std::move(handler), executor_);
        const Channel::OpId id = start_op(pending);
        // A refusal completes at once: nothing left to cancel then.
        if (!pending->done && pending->slot.is_connected()) {
            pending->slot.assign([ch = channel_, id, weak = std::weak_ptr(pending)](
                                     boost::asio::cancellation_type_t type) {
                auto p = weak.lock();
                if (!p || p->done || type == boost::asio::cancellation_type::none)
                    return;
                p->cancelling = true;
                (void)ch->cancel(id);
                p->cancelling = false;
            });
        }
    }

    void start_send(std::span<const std::byte> data,
                    boost::asio::any_completion_handler<SendSignature> handler)
    {
        start<SendSignature>(std::move(handler), [&](const auto& p) {
            return channel_->async_send(data, [p](std::error_code ec) { p->complete(ec); });
        });
    }

    void start_write(std::span<const std::byte> data,
                     boost::asio::any_completion_handler<SendSignature> handler)
    {
        start<SendSignature>(std::move(handler), [&](const auto& p) {
            return channel_->async_write(data, [p](std::error_code ec) { p->complete(ec); });
        });
    }

    void start_receive(std::span<std::byte> into,
                       boost::asio::any_completion_handler<ReadSignature> handler)
    {
        start<ReadSignature>(std::move(handler), [&](const auto& p) {
            return channel_->async_receive(
                into, [p](std::error_code ec, std::size_t n) { p->complete(ec, n); });
        });
    }

    void start_receive_vector(boost::asio::any_completion_handler<ReceiveSignature> handler)
    {
        start<ReceiveSignature>(std::move(handler), [&](const auto& p) {
            return channel_->async_receive([p](std::error_code ec, std::vector<std::byte> m) {
                p->complete(ec, std::move(m));
            });
        });
    }

    void start_read_some(std::span<std::byte> into,
                         boost::asio::any_completion_handler<ReadSignature> handler)
    {
        start<ReadSignature>(std::move(handler), [&](const auto& p) {
            return channel_->async_read_some(
                into, [p](std::error_code ec, std::size_t n) { p->complete(ec, n); });
        });
    }

    Channel* channel_;
    executor_type executor_;
};

}  // namespace ism::link
