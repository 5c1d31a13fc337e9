// SPDX-License-Identifier: MIT
// Suite LinkTwoProcessMixedByteOrder.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// Mixed byte order on one fabric: this test, built for s390x and run big-endian under
// qemu-user, holds one end of a link; a native (x86-64, little-endian) ism-link-peer from
// the host's own build holds the other. They share nothing but the emulated fabric's file,
// whose every field is big-endian by definition (docs/sim.md), and the DMBs, whose link
// structures are big-endian by the protocol. Any layout that depended on the host's byte
// order fails here: the fabric would not open, the link would not come up, or the echoed
// data would not verify.
//
// Built only by a cross build. The native peer is found through the cache variable
// ISM_NATIVE_LINK_PEER (default: the ci preset's build of this tree) or, at run time, the
// environment variable of the same name. Missing, the test skips with the reason on a
// developer's machine and fails under CI=true.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include "ism/device/ism_device.hpp"
#include "ism/link/endpoint.hpp"
#include "ism/sim/fabric.hpp"
#include "link_peer_process.hpp"
#include "link_peer_protocol.hpp"

namespace {

using namespace ism;
using namespace ism::link;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ism::test::describe_status;
using ism::test::LinkPeerProcess;
namespace lp = ism::link_peer;

constexpr const char* kSelf = "big-endian";
constexpr const char* kPeer = "little-endian";
constexpr uint32_t kChannels = 4;
constexpr uint64_t kMessages = 120;  // per channel
constexpr std::size_t kWindow = 4;   // messages in flight per channel

std::string native_peer_path()
{
    if (const char* env = std::getenv("ISM_NATIVE_LINK_PEER"); env != nullptr && *env != '\0')
        return env;
    return ISM_NATIVE_LINK_PEER;
}

// Sizes from empty payloads to several rings (a message in pieces).
std::size_t size_of(uint32_t channel, uint64_t seq)
{
    if (seq % 40 == 17)
        return 150'000 + channel;
    return (seq * 2749 + channel * 97) % 9000;
}

// Numbered messages on one channel, `kWindow` in flight, every echo compared byte for byte
// with the message sent.
class Echo {
public:
    explicit Echo(Channel& ch) : ch_(ch) { arm(); }

    void start() { fill(); }
    [[nodiscard]] bool done() const noexcept { return echoed_ == kMessages; }
    [[nodiscard]] std::string report() const
    {
        return "channel " + std::to_string(ch_.index()) + ": sent " + std::to_string(sent_) +
               ", echoed " + std::to_string(echoed_) + ", problems: " + problems_;
    }
    [[nodiscard]] bool clean() const noexcept { return problems_.empty(); }

private:
    void fill()
    {
        while (sent_ < kMessages && sent_ - echoed_ < kWindow) {
            const uint64_t seq = sent_++;
            auto buf = std::make_shared<std::vector<std::byte>>(
                lp::make_message(ch_.index(), seq, size_of(ch_.index(), seq)));
            ch_.async_send(*buf, [this, seq, buf](std::error_code ec) {
                if (ec)
                    problems_ += "send " + std::to_string(seq) + ": " + ec.message() + "; ";
            });
        }
    }

    void arm()
    {
        ch_.async_receive([this](std::error_code ec, std::vector<std::byte> message) {
            if (ec) {
                problems_ += "receive: " + ec.message() + "; ";
                return;
            }
            const uint64_t seq = echoed_++;
            if (message != lp::make_message(ch_.index(), seq, size_of(ch_.index(), seq)))
                problems_ += "echo " + std::to_string(seq) + " differs (" +
                             std::to_string(message.size()) + " bytes); ";
            arm();
            fill();
        });
    }

    Channel& ch_;
    uint64_t sent_ = 0;
    uint64_t echoed_ = 0;
    std::string problems_;
};

class LinkTwoProcessMixedByteOrder : public ::testing::Test {
protected:
    void SetUp() override
    {
        peer_path_ = native_peer_path();
        if (::access(peer_path_.c_str(), X_OK) != 0) {
            const std::string why = "no native ism-link-peer at " + peer_path_ +
                                    " (build the ci preset first, or set ISM_NATIVE_LINK_PEER)";
            const char* ci = std::getenv("CI");
            if (ci != nullptr && std::string(ci) == "true")
                FAIL() << why;
            GTEST_SKIP() << why;
        }
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        fabric_ = "mx-" + std::to_string(::getpid()) + "-" + info->name();
    }

    void TearDown() override
    {
        peer_.reset();
        endpoint_.reset();
        dev_.reset();
        (void)sim::remove_fabric(fabric_);
    }

    void open_ours()
    {
        auto file = sim::open_function({.fabric = fabric_, .name = kSelf});
        ASSERT_TRUE(file) << "open function: " << file.error().message();
        auto dev = device::IsmDevice::open(std::move(*file));
        ASSERT_TRUE(dev) << "open device: " << dev.error().message();
        dev_ = std::move(*dev);
        endpoint_ = std::make_unique<Endpoint>(io_, *dev_);
        LinkOptions o;
        o.peer_gid = sim::gid_for_name(kPeer);
        o.channels = kChannels;
        auto link = endpoint_->add_link(o);
        ASSERT_TRUE(link) << "add_link: " << link.error().message();
        link_ = *link;
    }

    // The native peer, run directly (no emulator: it is a binary of this host).
    void start_peer()
    {
        peer_ = std::make_unique<LinkPeerProcess>(
            peer_path_,
            std::vector<std::string>{"--fabric", fabric_, "--name", kPeer, "--peer", kSelf,
                                     "--channels", std::to_string(kChannels), "--exit-with-parent"},
            std::vector<std::string>{});
        ASSERT_EQ(peer_->spawn_error(), 0) << "posix_spawn " << peer_path_;
    }

    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds max)
    {
        const auto deadline = Clock::now() + max;
        while (!done()) {
            if (Clock::now() >= deadline || peer_->poll_exit())
                return done();
            peer_->read_lines();
            if (io_.stopped())
                io_.restart();
            io_.run_one_for(10ms);
        }
        return true;
    }

    // Echoes verified data over every channel, in both directions: the peer checks each
    // message before echoing it (and exits with 3 on a bad one), we check each echo.
    void exchange()
    {
        ASSERT_TRUE(run_until([&] { return link_->up(); }, 20s))
            << "link not up; peer " << describe_status(peer_->poll_exit()) << "\n"
            << peer_->transcript();
        auto& echoes = echoes_;  // outlive this call: the link holds their handlers
        for (uint32_t c = 0; c < kChannels; ++c)
            echoes.push_back(std::make_unique<Echo>(link_->open_channel(c, ChannelMode::message)));
        const auto t0 = Clock::now();
        for (auto& e : echoes)
            e->start();
        const bool all = run_until(
            [&] {
                for (const auto& e : echoes) {
                    if (!e->done())
                        return false;
                }
                return true;
            },
            60s);
        const auto took = std::chrono::duration<double>(Clock::now() - t0).count();
        std::string report;
        for (const auto& e : echoes) {
            report += e->report() + "\n";
            EXPECT_TRUE(e->clean()) << e->report();
        }
        ASSERT_TRUE(all) << report << "peer " << describe_status(peer_->poll_exit()) << "\n"
                         << peer_->transcript();
        EXPECT_EQ(link_->ups(), 1U);
        EXPECT_FALSE(peer_->poll_exit()) << "peer " << describe_status(peer_->poll_exit());
        ASSERT_TRUE(peer_->signal(SIGTERM));
        EXPECT_EQ(describe_status(peer_->wait_exit(10s)), "exited with 0") << peer_->transcript();
        std::printf("[ info ] %" PRIu64 " messages echoed over %u channels in %.2f s\n",
                    kMessages * kChannels, kChannels, took);
    }

    std::string peer_path_;
    std::string fabric_;
    boost::asio::io_context io_;
    std::unique_ptr<device::IsmDevice> dev_;
    std::unique_ptr<Endpoint> endpoint_;
    Link* link_ = nullptr;
    std::unique_ptr<LinkPeerProcess> peer_;
    std::vector<std::unique_ptr<Echo>> echoes_;
};

// We (big-endian) create the fabric file; the native peer joins it.
TEST_F(LinkTwoProcessMixedByteOrder, BigEndianCreatesTheFabricLittleEndianJoins)
{
    ASSERT_NO_FATAL_FAILURE(open_ours());
    ASSERT_NO_FATAL_FAILURE(start_peer());
    ASSERT_NO_FATAL_FAILURE(exchange());
}

// The native peer creates the fabric file; we join it once it is ready.
TEST_F(LinkTwoProcessMixedByteOrder, LittleEndianCreatesTheFabricBigEndianJoins)
{
    ASSERT_NO_FATAL_FAILURE(start_peer());
    ASSERT_TRUE(peer_->wait_line("ready gid=", 20s))
        << "peer never got ready; " << describe_status(peer_->poll_exit()) << "\n"
        << peer_->transcript();
    ASSERT_NO_FATAL_FAILURE(open_ours());
    ASSERT_NO_FATAL_FAILURE(exchange());
}

}  // namespace
