// SPDX-License-Identifier: MIT
// The Endpoint's adaptive mode between two processes: this test's Endpoint and
// ism-link-peer (examples/ism_link_peer.cpp), both adaptive. Data is verified end to end;
// after a quiet window each Endpoint must be asleep on the interrupt, not spinning; and
// traffic that starts after both went to sleep must wake them (the lost wake-up race:
// a signal raised just before the interrupt is armed).
#include "ism/link/endpoint.hpp"

#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include "ism/device/ism_device.hpp"
#include "ism/sim/fabric.hpp"
#include "link_peer_process.hpp"
#include "link_peer_protocol.hpp"

namespace {

using namespace ism;
using namespace ism::link;
using namespace std::chrono_literals;
using ism::test::LinkPeerProcess;

constexpr const char* kSelf = "lpar1";
constexpr const char* kPeer = "lpar2";

class EndpointAdaptive : public ::testing::Test {
protected:
    void SetUp() override
    {
        fabric_ = "adaptive-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name();
        auto file = sim::open_function({.fabric = fabric_, .name = kSelf});
        ASSERT_TRUE(file) << file.error().message();
        auto dev = device::IsmDevice::open(std::move(*file));
        ASSERT_TRUE(dev) << dev.error().message();
        dev_ = std::move(*dev);
    }

    void TearDown() override
    {
        peer_.reset();
        endpoint_.reset();
        dev_.reset();
        (void)sim::remove_fabric(fabric_);
    }

    /// Both ends adaptive, ours with `window`, the peer's with `peer_window`; returns
    /// once the link is up.
    void start(std::chrono::microseconds window, std::chrono::microseconds peer_window)
    {
        endpoint_ = std::make_unique<Endpoint>(
            io_, *dev_, EndpointOptions{.mode = PollMode::adaptive, .poll_window = window});
        auto link = endpoint_->add_link({.peer_gid = sim::gid_for_name(kPeer), .channels = 4});
        ASSERT_TRUE(link) << link.error().message();
        link_ = *link;
        peer_ = std::make_unique<LinkPeerProcess>(
            ISM_LINK_PEER_PATH,
            std::vector<std::string>{"--fabric", fabric_, "--name", kPeer, "--peer", kSelf,
                                     "--channels", "4", "--mode", "adaptive", "--poll-window-us",
                                     std::to_string(peer_window.count()), "--exit-with-parent"});
        ASSERT_EQ(peer_->spawn_error(), 0);
        ASSERT_TRUE(run_until([this] { return link_->up(); }, 10s)) << "link never came up\n"
                                                                    << peer_->transcript();
    }

    template <class Pred>
    bool run_until(Pred done, std::chrono::milliseconds timeout)
    {
        const auto end = Clock::now() + timeout;
        while (!done()) {
            if (Clock::now() >= end)
                return false;
            io_.run_one_for(5ms);
        }
        return true;
    }

    void run_for(std::chrono::milliseconds d)
    {
        const auto end = Clock::now() + d;
        while (Clock::now() < end)
            io_.run_one_for(end - Clock::now());
    }

    struct Echo {
        bool done = false;
        bool ok = false;
        EndpointStats seen;  // our Endpoint's counters when the echo was handed to us
    };

    /// Sends message `seq` on `channel` and arms a receive for its echo.
    std::shared_ptr<Echo> send(uint32_t channel, uint64_t seq, std::size_t payload)
    {
        auto echo = std::make_shared<Echo>();
        auto msg = std::make_shared<std::vector<std::byte>>(
            link_peer::make_message(channel, seq, payload));
        Channel& ch = link_->open_channel(channel, ChannelMode::message);
        ch.async_receive(
            [this, echo, channel, seq, msg](std::error_code ec, std::vector<std::byte> m) {
                echo->seen = endpoint_->stats();
                const auto h = link_peer::parse_header(m);
                echo->ok = !ec && h && h->channel == channel && h->seq == seq &&
                           m.size() == msg->size() && link_peer::payload_ok(m, *h);
                echo->done = true;
            });
        ch.async_send(*msg, [msg](std::error_code ec) { EXPECT_FALSE(ec) << ec.message(); });
        return echo;
    }

    std::string fabric_;
    boost::asio::io_context io_;
    std::unique_ptr<device::IsmDevice> dev_;
    std::unique_ptr<Endpoint> endpoint_;
    Link* link_ = nullptr;
    std::unique_ptr<LinkPeerProcess> peer_;
};

TEST_F(EndpointAdaptive, EchoesVerifiedDataThenSleepsOnTheInterrupt)
{
    ASSERT_NO_FATAL_FAILURE(start(200us, 200us));
    // Bursts on four channels, sizes from empty payloads to several rings' worth.
    std::vector<std::shared_ptr<Echo>> echoes;
    uint64_t seq = 1;
    for (std::size_t payload : {0UL, 1UL, 100UL, 4000UL, 70'000UL, 600'000UL}) {
        for (uint32_t c = 0; c < 4; ++c)
            echoes.push_back(send(c, seq, payload));
        ++seq;
        ASSERT_TRUE(run_until(
            [&] {
                for (auto& e : echoes) {
                    if (!e->done)
                        return false;
                }
                return true;
            },
            20s))
            << peer_->transcript();
    }
    for (auto& e : echoes)
        EXPECT_TRUE(e->ok);
    EXPECT_GT(endpoint_->stats().busy_passes, 0U) << "the polling loop never found work";

    // Quiet: once the window has passed, the Endpoint waits on the interrupt and its
    // polling loop does not run at all.
    ASSERT_TRUE(run_until([this] { return endpoint_->sleeping(); }, 5s));
    EXPECT_GE(endpoint_->stats().sleeps, 1U);
    const auto passes = endpoint_->stats().poll_passes;
    run_for(100ms);
    EXPECT_TRUE(endpoint_->sleeping());
    EXPECT_EQ(endpoint_->stats().poll_passes, passes) << "an idle Endpoint polled";
    EXPECT_FALSE(peer_->printed("down")) << peer_->transcript();
}

TEST_F(EndpointAdaptive, TrafficAfterSleepWakesBothEnds)
{
    // Our window is far shorter than the peer's wake-up: after sending, our Endpoint is
    // asleep again by the time the echo comes, which must then wake it. The peer's is
    // long enough for our credit to come in while it polls (so it goes to sleep with
    // signals raised while it polled); asleep before each message, it must wake for it.
    // A wake-up lost on either side leaves the echo to the timers' safety net.
    ASSERT_NO_FATAL_FAILURE(start(1us, 300us));
    constexpr int kCycles = 40;
    int via_timer = 0;  // cycles a timer ran in, which could have delivered the echo
    for (int i = 0; i < kCycles; ++i) {
        ASSERT_TRUE(run_until([this] { return endpoint_->sleeping(); }, 5s));
        run_for(3ms);  // the peer's window passes too
        ASSERT_TRUE(endpoint_->sleeping());
        const EndpointStats before = endpoint_->stats();
        auto echo = send(static_cast<uint32_t>(i % 3), static_cast<uint64_t>(i) + 1,
                         static_cast<std::size_t>(i) * 997 % 9000);
        ASSERT_TRUE(run_until([&] { return echo->done; }, 10s)) << "cycle " << i << ": no echo\n"
                                                                << peer_->transcript();
        EXPECT_TRUE(echo->ok) << "cycle " << i;
        // The echo reached us through the interrupt or a polling pass that found it,
        // not through the timers' safety net. A cycle in which a timer ran is not judged
        // (it runs every 250 ms; a lost wake-up would wait for it every time).
        const EndpointStats& seen = echo->seen;
        if (seen.timer_runs != before.timer_runs) {
            ++via_timer;
            continue;
        }
        EXPECT_TRUE(seen.interrupts > before.interrupts || seen.busy_passes > before.busy_passes)
            << "cycle " << i << ": the echo was found by neither the interrupt nor polling";
    }
    EXPECT_LE(via_timer, 3) << "timers ran in most cycles: wake-ups were lost";
    EXPECT_GE(endpoint_->stats().sleeps, static_cast<uint64_t>(kCycles));
    EXPECT_FALSE(peer_->printed("down")) << peer_->transcript();
}

TEST_F(EndpointAdaptive, PollingLeavesOtherHandlersTheirTurn)
{
    // Polling runs from a handler that re-posts itself: timers and posted handlers on the
    // same io_context still run while it polls, and it never stops on its own.
    Endpoint endpoint(io_, *dev_, EndpointOptions{.mode = PollMode::polling});
    boost::asio::steady_timer timer(io_);
    int fired = 0;
    int posted = 0;
    for (int i = 0; i < 5; ++i) {
        timer.expires_after(2ms);
        timer.async_wait([&](const boost::system::error_code& ec) { fired += ec ? 0 : 1; });
        boost::asio::post(io_, [&] { ++posted; });
        const int want = i + 1;
        ASSERT_TRUE(run_until([&] { return fired == want && posted == want; }, 5s))
            << "a handler starved while the Endpoint polled";
    }
    EXPECT_FALSE(endpoint.sleeping());
    EXPECT_GT(endpoint.stats().poll_passes, 0U);
    endpoint.stop();
}

}  // namespace
