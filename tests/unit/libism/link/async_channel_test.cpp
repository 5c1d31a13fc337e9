// SPDX-License-Identifier: MIT
// Suite LinkInMemoryAsyncChannel.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// AsyncChannel in memory: completion tokens, coroutines, move-only handlers, completion
// through the handler's executor (never inline) and per-operation cancellation.
#include "ism/link/async_channel.hpp"

#include <array>
#include <memory>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include "link_pair_fixture.hpp"

namespace {

using namespace ism;
using namespace ism::link;
using namespace ism::link::test;
namespace asio = boost::asio;

class LinkInMemoryAsyncChannel : public LinkInMemory {
protected:
    // The link's processing and the handlers' executor, in turns, until both are idle.
    void run()
    {
        for (int i = 0; i < 1000; ++i) {
            pump();
            io_.restart();  // a poll() with nothing to do stops the context
            if (io_.poll() == 0 && !a_->port.signalled && !b_->port.signalled)
                return;
        }
    }

    asio::io_context io_;
};

TEST_F(LinkInMemoryAsyncChannel, ACoroutineReceivesIntoItsBufferWithAsTuple)
{
    make();
    AsyncChannel tx(a_->link.open_channel(0, ChannelMode::message), io_.get_executor());
    AsyncChannel rx(b_->link.open_channel(0, ChannelMode::message), io_.get_executor());
    start_both();
    const auto m = pattern(3000, 1);
    std::vector<std::byte> buffer(4096);
    std::optional<std::size_t> got;
    std::optional<std::error_code> sent;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
            auto [ec, n] =
                co_await rx.async_receive(std::span(buffer), asio::as_tuple(asio::use_awaitable));
            if (!ec)
                got = n;
        },
        asio::detached);
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
            auto [ec] = co_await tx.async_send(m, asio::as_tuple(asio::use_awaitable));
            sent = ec;
        },
        asio::detached);
    run();
    ASSERT_EQ(got, m.size());
    EXPECT_TRUE(std::equal(m.begin(), m.end(), buffer.begin()));
    ASSERT_TRUE(sent.has_value());
    EXPECT_FALSE(*sent);
}

TEST_F(LinkInMemoryAsyncChannel, HandlersRunOnlyFromTheirExecutorNeverInline)
{
    make();
    AsyncChannel tx(a_->link.open_channel(0, ChannelMode::message), io_.get_executor());
    ASSERT_TRUE(a_->link.start(now_));  // down: the send is refused at once
    std::optional<std::error_code> result;
    // A move-only handler.
    auto token = std::make_unique<int>(7);
    tx.async_send(pattern(8, 0), [&, t = std::move(token)](std::error_code ec) {
        EXPECT_EQ(*t, 7);
        result = ec;
    });
    EXPECT_FALSE(result.has_value()) << "completed inside async_send";
    run();
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(*result, errc::peer_gone);
}

TEST_F(LinkInMemoryAsyncChannel, ACancelledReceiveCompletesAbortedAndTheChannelGoesOn)
{
    make();
    AsyncChannel tx(a_->link.open_channel(0, ChannelMode::message), io_.get_executor());
    AsyncChannel rx(b_->link.open_channel(0, ChannelMode::message), io_.get_executor());
    start_both();
    std::vector<std::byte> buffer(64);
    asio::cancellation_signal cancel;
    std::optional<std::error_code> first;
    rx.async_receive(std::span(buffer),
                     asio::bind_cancellation_slot(
                         cancel.slot(), [&](std::error_code ec, std::size_t) { first = ec; }));
    run();
    EXPECT_FALSE(first.has_value());
    cancel.emit(asio::cancellation_type::terminal);
    EXPECT_EQ(rx.channel().pending_receives(), 0U);
    run();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(*first, std::errc::operation_canceled);
    // The next receive gets the next message.
    const auto m = pattern(10, 2);
    std::optional<std::size_t> got;
    rx.async_receive(std::span(buffer), [&](std::error_code ec, std::size_t n) {
        if (!ec)
            got = n;
    });
    tx.async_send(m, [](std::error_code) {});
    run();
    EXPECT_EQ(got, 10U);
}

TEST_F(LinkInMemoryAsyncChannel, AWriteLetsACoroutineReuseItsBufferAtOnce)
{
    make();
    AsyncChannel tx(a_->link.open_channel(0, ChannelMode::message), io_.get_executor());
    AsyncChannel rx(b_->link.open_channel(0, ChannelMode::message), io_.get_executor());
    start_both();
    int written = 0;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
            std::vector<std::byte> buffer(100);
            for (int i = 0; i < 3; ++i) {
                std::fill(buffer.begin(), buffer.end(), static_cast<std::byte>(i));
                auto [ec] = co_await tx.async_write(buffer, asio::as_tuple(asio::use_awaitable));
                if (!ec)
                    ++written;
            }
        },
        asio::detached);
    run();
    EXPECT_EQ(written, 3) << "no receive yet: writes do not wait for b's application";
    std::vector<std::byte> buffer(100);
    for (int i = 0; i < 3; ++i) {
        std::optional<std::size_t> got;
        rx.async_receive(std::span(buffer), [&](std::error_code ec, std::size_t n) {
            if (!ec)
                got = n;
        });
        run();
        ASSERT_EQ(got, 100U);
        EXPECT_EQ(buffer[0], static_cast<std::byte>(i));
    }
}

}  // namespace

TEST_F(LinkInMemoryAsyncChannel, AStreamReadsItsBytesThenEndOfStreamAndACloseCancelsAtOnce)
{
    make();
    AsyncChannel a(a_->link.open_channel(2, ChannelMode::stream), io_.get_executor());
    AsyncChannel b(b_->link.open_channel(2, ChannelMode::stream), io_.get_executor());
    start_both();
    const auto bytes = pattern(5000, 4);
    std::vector<std::byte> got;
    std::optional<std::error_code> end;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
            std::array<std::byte, 700> buf{};
            for (;;) {
                auto [ec, n] = co_await b.async_read_some(buf, asio::as_tuple(asio::use_awaitable));
                if (ec) {
                    end = ec;
                    co_return;
                }
                got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
            }
        },
        asio::detached);
    a.async_write(bytes, [](std::error_code) {});
    a.shutdown_send();
    run();
    ASSERT_TRUE(end.has_value());
    EXPECT_EQ(*end, errc::end_of_stream);
    EXPECT_EQ(got, bytes);
    // a's pending read completes with operation_canceled when a closes, posted.
    std::optional<std::error_code> read;
    std::array<std::byte, 16> small{};
    a.async_read_some(small, [&](std::error_code ec, std::size_t) { read = ec; });
    a.close();
    EXPECT_FALSE(read.has_value()) << "never inline";
    run();
    ASSERT_TRUE(read.has_value());
    EXPECT_EQ(*read, std::errc::operation_canceled);
}
