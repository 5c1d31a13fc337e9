// SPDX-License-Identifier: MIT
// Suites ExchangeTwoProcess and ExchangeTwoProcessGidEvents.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// Two processes on one emulated fabric: this test drives one ISM function through the
// real device layer, and ism-exchange, started with posix_spawn, drives the other.
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "exchange_protocol.hpp"
#include "ism/device/ism_device.hpp"
#include "ism/sim/fabric.hpp"
#include "ism/sim/faults.hpp"
#include "link_peer_process.hpp"

extern char** environ;

namespace {

using namespace ism;
using namespace ism::exchange;
using namespace std::chrono_literals;

class ExchangeTwoProcess : public ::testing::Test {
protected:
    void SetUp() override
    {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        fabric_ = "it-" + std::to_string(::getpid()) + "-" + info->name();
        dev_ = open_device("lpar1");
        ASSERT_TRUE(dev_);
        auto dmb = dev_->register_dmb(kDmbSize, peer_gid_);
        ASSERT_TRUE(dmb) << dmb.error().message();
        dmb_ = *dmb;
    }

    void TearDown() override
    {
        stop_peer(SIGKILL);
        dev_.reset();
        extra_.reset();
        (void)sim::remove_fabric(fabric_);
    }

    std::unique_ptr<device::IsmDevice> open_device(const std::string& name)
    {
        auto file = sim::open_function(
            {.fabric = fabric_, .name = name, .gid_disabled_events = gid_disabled_events_});
        EXPECT_TRUE(file) << file.error().message();
        if (!file)
            return nullptr;
        auto dev = device::IsmDevice::open(std::move(*file));
        EXPECT_TRUE(dev) << dev.error().message();
        return dev ? std::move(*dev) : nullptr;
    }

    void start_peer()
    {
        std::vector<std::string> args =
            test::peer_command(ISM_EXCHANGE_PATH,
                               {"--fabric", fabric_, "--name", "lpar2", "--peer", "lpar1", "--role",
                                "responder", "--timeout", "30", "--quiet"},
                               test::peer_launcher());
        std::vector<char*> argv;
        argv.reserve(args.size() + 1);
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        ASSERT_EQ(::posix_spawn(&peer_pid_, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    }

    void stop_peer(int sig)
    {
        if (peer_pid_ <= 0)
            return;
        ::kill(peer_pid_, sig);
        int status = 0;
        ::waitpid(peer_pid_, &status, 0);
        peer_pid_ = -1;
    }

    // Waits for one interrupt and keeps what it reported.
    bool wait(std::chrono::milliseconds max)
    {
        pollfd pfd{dev_->irq_fd(), POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(max.count())) <= 0)
            return false;
        auto r = dev_->handle_interrupt();
        EXPECT_TRUE(r);
        if (!r)
            return false;
        for (const auto& s : r->dmbs) {
            EXPECT_EQ(s.sba_idx, dmb_.sba_idx);
            signalled_ |= s.sba_idx == dmb_.sba_idx;
            masks_ |= s.dmbe_mask;
        }
        events_.insert(events_.end(), r->events.begin(), r->events.end());
        return true;
    }

    bool take(uint32_t type, uint32_t code, device::Event& out)
    {
        for (auto it = events_.begin(); it != events_.end(); ++it) {
            if (it->type == type && it->code == code) {
                out = *it;
                events_.erase(it);
                return true;
            }
        }
        return false;
    }

    bool wait_for(uint32_t type, uint32_t code, device::Event& out,
                  std::chrono::milliseconds max = 10s)
    {
        const auto deadline = std::chrono::steady_clock::now() + max;
        while (!take(type, code, out)) {
            if (std::chrono::steady_clock::now() > deadline)
                return false;
            wait(100ms);
        }
        return true;
    }

    // HELLO until the responder answers; returns its DMB token.
    uint64_t handshake()
    {
        device::Event ev;
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!take(kSoftware, kHelloAck, ev)) {
            if (std::chrono::steady_clock::now() > deadline) {
                ADD_FAILURE() << "no HELLO_ACK";
                return 0;
            }
            (void)dev_->signal_event(peer_gid_, kHello, dmb_.token);
            wait(50ms);
        }
        EXPECT_EQ(ev.tok, peer_gid_);  // software events carry the sender's GID
        return ev.info;
    }

    // Moves `len` bytes into the peer's DMB, has them echoed, and checks them.
    void echo(uint64_t peer_token, std::size_t len, bool signal, uint64_t seq)
    {
        std::vector<std::byte> data(len);
        for (std::size_t i = 0; i < len; ++i)
            data[i] = static_cast<std::byte>(i * 251 + seq);
        signalled_ = false;
        masks_ = 0;
        ASSERT_TRUE(dev_->move(peer_token, 0, 0, data, signal));
        ASSERT_TRUE(dev_->signal_event(peer_gid_, kEcho, pack(len, signal, seq)));
        device::Event ev;
        while (true) {
            ASSERT_TRUE(wait_for(kSoftware, kEchoed, ev)) << "no ECHOED for " << len;
            if ((ev.info >> kSequenceShift) == seq)
                break;
        }
        EXPECT_EQ(ev.info & kLengthMask, len);
        EXPECT_EQ((ev.info & kSignalledBit) != 0, signal) << "peer's view of the signal";
        // The echo itself always carries the signal flag: our DMB bit must have been set,
        // with the DMBE bit for index 0.
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (!signalled_ && std::chrono::steady_clock::now() < deadline)
            wait(100ms);
        EXPECT_TRUE(signalled_);
        EXPECT_NE(masks_, 0);
        EXPECT_EQ(std::memcmp(dmb_.memory.data(), data.data(), len), 0) << len << " bytes";
    }

    static constexpr uint32_t kSoftware = static_cast<uint32_t>(device::EventType::software);
    /// The kill -9 test, in either peer-loss mode.
    void killed_peer_is_noticed_and_replaced();

    std::string fabric_;
    bool gid_disabled_events_ = false;  // our function's FunctionOptions::gid_disabled_events
    uint64_t peer_gid_ = sim::gid_for_name("lpar2");
    std::unique_ptr<device::IsmDevice> dev_;
    std::unique_ptr<device::IsmDevice> extra_;
    device::Dmb dmb_;
    pid_t peer_pid_ = -1;
    bool signalled_ = false;
    uint16_t masks_ = 0;
    std::vector<device::Event> events_;
};

TEST_F(ExchangeTwoProcess, FindEachOtherByGidAndMoveEverySize)
{
    start_peer();
    const uint64_t token = handshake();
    ASSERT_NE(token, 0U);
    EXPECT_EQ(token & 0xFFFF'FFFFULL, 0U);
    uint64_t seq = 0;
    for (std::size_t len : {1UL, 7UL, 8UL, 4095UL, 4096UL, 4097UL, 65536UL, 1000000UL, kDmbSize})
        echo(token, len, true, ++seq);
}

TEST_F(ExchangeTwoProcess, MoveWithoutSignalLandsSilently)
{
    start_peer();
    const uint64_t token = handshake();
    echo(token, 4096 * 3, false, 1);
    echo(token, 100, false, 2);
    echo(token, 100, true, 3);
}

TEST_F(ExchangeTwoProcess, QueryRgidAndSignalsToUnknownGids)
{
    start_peer();
    (void)handshake();
    EXPECT_TRUE(dev_->query_rgid(peer_gid_));
    EXPECT_EQ(dev_->query_rgid(0x0BAD'0BAD'0BAD'0BADULL).error(), errc::hw_unknown_gid);
    EXPECT_EQ(dev_->signal_event(0x0BAD'0BAD'0BAD'0BADULL, 1, 2).error(), errc::hw_unknown_gid);
}

TEST_F(ExchangeTwoProcess, StoresToAnUnknownTokenFail)
{
    std::vector<std::byte> data(64);
    auto r = dev_->move(0x7777'0000'0000ULL, 0, 0, data, true);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
}

TEST_F(ExchangeTwoProcess, OnlyTheRegisteredWriterMayStore)
{
    start_peer();
    const uint64_t token = handshake();
    extra_ = open_device("lpar3");
    ASSERT_TRUE(extra_);
    std::vector<std::byte> data(64, std::byte{0xEE});
    auto r = extra_->move(token, 0, 0, data, true);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
    echo(token, 64, true, 1);  // the rightful writer still can
}

TEST_F(ExchangeTwoProcess, StoresBeyondTheDmbFail)
{
    start_peer();
    const uint64_t token = handshake();
    std::vector<std::byte> data(16);
    auto r = dev_->move(token, 0, kDmbSize - 8, data, false);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
}

TEST_F(ExchangeTwoProcess, DmbRevokedUnderTheWriterFailsItsStores)
{
    start_peer();
    const uint64_t token = handshake();
    echo(token, 128, true, 1);
    ASSERT_TRUE(sim::faults::revoke_dmb(fabric_, peer_gid_, token));
    std::vector<std::byte> data(128);
    auto r = dev_->move(token, 0, 0, data, true);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
}

TEST_F(ExchangeTwoProcess, HeldInterruptsArriveWhenReleased)
{
    start_peer();
    const uint64_t token = handshake();
    ASSERT_TRUE(sim::faults::hold_interrupts(fabric_, dev_->gid(), true));
    std::vector<std::byte> data(512, std::byte{0x5A});
    ASSERT_TRUE(dev_->move(token, 0, 0, data, true));
    ASSERT_TRUE(dev_->signal_event(peer_gid_, kEcho, pack(512, true, 1)));
    // The echo lands, but no interrupt tells us so while they are held.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::memcmp(dmb_.memory.data(), data.data(), data.size()) != 0 &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
    ASSERT_EQ(std::memcmp(dmb_.memory.data(), data.data(), data.size()), 0);
    EXPECT_FALSE(wait(300ms));
    ASSERT_TRUE(sim::faults::hold_interrupts(fabric_, dev_->gid(), false));
    device::Event ev;
    EXPECT_TRUE(wait_for(kSoftware, kEchoed, ev, 5s));
    EXPECT_TRUE(signalled_);
}

void ExchangeTwoProcess::killed_peer_is_noticed_and_replaced()
{
    start_peer();
    const uint64_t old_token = handshake();
    echo(old_token, 4096, true, 1);
    stop_peer(SIGKILL);
    // A sender trusts a peer it saw alive for 1 ms (see the emulated device's liveness
    // check); stores after that fail.
    std::this_thread::sleep_for(10ms);

    // The fabric notices: the dead function's DMB refuses stores and its GID is gone. We,
    // who own a DMB for that GID, are told only if we asked for GID-disabled events.
    std::vector<std::byte> data(64);
    auto r = dev_->move(old_token, 0, 0, data, true);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
    EXPECT_EQ(dev_->query_rgid(peer_gid_).error(), errc::hw_unknown_gid);
    device::Event ev;
    constexpr auto kDevice = static_cast<uint32_t>(device::EventType::device);
    if (gid_disabled_events_) {
        EXPECT_TRUE(wait_for(kDevice, device::kEventGidDisabled, ev, 5s));
        EXPECT_EQ(ev.tok, peer_gid_);
    } else {
        EXPECT_FALSE(wait_for(kDevice, device::kEventGidDisabled, ev, 500ms))
            << "GID disabled event without gid_disabled_events";
    }

    start_peer();
    const uint64_t new_token = handshake();
    ASSERT_NE(new_token, 0U);
    EXPECT_NE(new_token, old_token);
    echo(new_token, 65536, true, 2);
    EXPECT_FALSE(dev_->move(old_token, 0, 0, data, false));  // the old DMB stays gone
}

TEST_F(ExchangeTwoProcess, KilledPeerIsNoticedAndAFreshProcessTakesItsPlace)
{
    killed_peer_is_noticed_and_replaced();
}

// The same with the emulation's optional GID-disabled event (FunctionOptions).
class ExchangeTwoProcessGidEvents : public ExchangeTwoProcess {
protected:
    ExchangeTwoProcessGidEvents() { gid_disabled_events_ = true; }
};

TEST_F(ExchangeTwoProcessGidEvents, KilledPeerIsNoticedAndAFreshProcessTakesItsPlace)
{
    killed_peer_is_noticed_and_replaced();
}

}  // namespace
