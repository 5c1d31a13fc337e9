// SPDX-License-Identifier: MIT
#include "core/echo.hpp"

#include <algorithm>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/control_server.hpp"
#include "core/link_await.hpp"
#include "core/scope_exit.hpp"

namespace ismd {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using ism::link::Channel;
using ism::link::ChannelMode;

namespace {

enum class Kind : uint8_t { ping = 1, pong = 2, sink = 3 };

constexpr auto kReplyTimeout = std::chrono::seconds(5);

}  // namespace

EchoResponder::EchoResponder(ism::link::Link& link, asio::any_io_executor executor)
    : link_(link),
      channel_(link.open_channel(kCoreChannel, ChannelMode::message)),
      executor_(std::move(executor))
{
    arm();
}

EchoResponder::~EchoResponder()
{
    *alive_ = false;
}

void EchoResponder::arm()
{
    channel_.async_receive([this, alive = std::weak_ptr<bool>(alive_)](
                               std::error_code ec, std::vector<std::byte> message) {
        if (!alive.lock())
            return;
        if (!ec && !message.empty()) {
            const auto kind = static_cast<Kind>(message[0]);
            if (kind == Kind::ping) {
                message[0] = static_cast<std::byte>(Kind::pong);
                auto copy = std::make_shared<std::vector<std::byte>>(std::move(message));
                channel_.async_send(*copy, [copy](std::error_code) {});
            } else if (kind == Kind::pong && pong_) {
                pong_(std::move(message));
            }
        }
        // Down or not, keep a receive pending: it is served in the next epoch.
        arm();
    });
}

asio::awaitable<nlohmann::json> EchoResponder::check(const CheckOptions& options)
{
    if (checking_)
        throw ControlError{"a check of this peer is already running"};
    if (!link_.up())
        throw ControlError{"the link is down"};
    checking_ = true;
    const auto alive = alive_;
    auto still_here = [&alive] {
        if (!*alive)
            throw ControlError{"the peer was removed during the check"};
    };
    const ScopeExit done([this] {
        checking_ = false;
        pong_ = nullptr;
    });

    using PongChannel =
        asio::experimental::channel<void(boost::system::error_code, std::vector<std::byte>)>;
    PongChannel pongs(executor_, 1);
    pong_ = [&pongs](std::vector<std::byte> m) {
        pongs.try_send(boost::system::error_code(), std::move(m));
    };

    std::vector<double> rtt_us;
    rtt_us.reserve(options.count);
    std::vector<std::byte> ping(std::max<uint32_t>(options.size, 9));
    ping[0] = static_cast<std::byte>(Kind::ping);
    asio::steady_timer timer(executor_);
    for (uint32_t i = 0; i < options.count; ++i) {
        std::memcpy(ping.data() + 1, &i, sizeof i);
        const auto start = std::chrono::steady_clock::now();
        const auto sent = co_await send_message(channel_, ping);
        still_here();
        if (auto ec = sent)
            throw ControlError{"round trip " + std::to_string(i) + ": " + ec.message()};
        for (;;) {
            timer.expires_after(kReplyTimeout);
            auto got = co_await (pongs.async_receive(asio::as_tuple(asio::use_awaitable)) ||
                                 timer.async_wait(asio::as_tuple(asio::use_awaitable)));
            still_here();
            if (got.index() == 1)
                throw ControlError{"round trip " + std::to_string(i) + ": no answer within 5 s"};
            auto& [ec, pong] = std::get<0>(got);
            uint32_t seq = 0;
            if (pong.size() == ping.size())
                std::memcpy(&seq, pong.data() + 1, sizeof seq);
            if (seq == i)
                break;  // a late answer to an earlier, timed-out round trip is skipped
        }
        rtt_us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count());
    }
    std::sort(rtt_us.begin(), rtt_us.end());
    auto pct = [&](double p) {
        if (rtt_us.empty())
            return 0.0;
        const auto i = static_cast<std::size_t>(p * static_cast<double>(rtt_us.size() - 1));
        return rtt_us[i];
    };

    // Throughput: a send completes once the peer consumed it, so the last completion
    // marks the end of the transfer.
    // The sends and their completions outlive this coroutine if it gives up waiting.
    struct Bulk {
        std::vector<std::byte> message;
        std::size_t pending = 0;
        std::error_code first_error;
        PongChannel done;
        Bulk(const asio::any_io_executor& ex, std::size_t size, std::size_t n)
            : message(size), done(ex, n + 1)
        {
        }
    };
    const uint32_t n = options.bulk_message == 0 ? 0 : options.bulk_bytes / options.bulk_message;
    auto bulk = std::make_shared<Bulk>(executor_, std::max<uint32_t>(options.bulk_message, 1), n);
    bulk->message[0] = static_cast<std::byte>(Kind::sink);
    const auto start = std::chrono::steady_clock::now();
    for (uint32_t i = 0; i < n; ++i) {
        channel_.async_send(bulk->message, [bulk](std::error_code ec) {
            if (ec && !bulk->first_error)
                bulk->first_error = ec;
            bulk->done.try_send(boost::system::error_code(), std::vector<std::byte>());
        });
        ++bulk->pending;
    }
    while (bulk->pending > 0) {
        timer.expires_after(kReplyTimeout);
        auto got = co_await (bulk->done.async_receive(asio::as_tuple(asio::use_awaitable)) ||
                             timer.async_wait(asio::as_tuple(asio::use_awaitable)));
        still_here();
        if (got.index() == 1)
            throw ControlError{"throughput: the peer stopped taking data"};
        --bulk->pending;
    }
    if (bulk->first_error)
        throw ControlError{"throughput: " + bulk->first_error.message()};
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double bytes = static_cast<double>(n) * options.bulk_message;

    nlohmann::json result;
    result["round_trips"] = options.count;
    result["size"] = options.size;
    result["rtt_us"] = {{"min", rtt_us.empty() ? 0.0 : rtt_us.front()},
                        {"p50", pct(0.50)},
                        {"p90", pct(0.90)},
                        {"p99", pct(0.99)},
                        {"max", rtt_us.empty() ? 0.0 : rtt_us.back()}};
    result["bulk_bytes"] = bytes;
    result["bulk_message"] = options.bulk_message;
    result["throughput_MBps"] = seconds > 0 ? bytes / seconds / 1e6 : 0.0;
    co_return result;
}

}  // namespace ismd
