// SPDX-License-Identifier: MIT
// Suites LinkTwoProcess and LinkTwoProcessGidEvents.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// The link between two processes on one emulated fabric: this test process runs one end
// (Endpoint + Link on an io_context in the test thread), ism-link-peer, started with
// posix_spawn, runs the other. Bulk transfer over every channel, a stalled channel, a
// peer killed mid-transfer, start-up orders, restarts and polling mode.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include "ism/device/ism_device.hpp"
#include "ism/link/async_channel.hpp"
#include "ism/link/endpoint.hpp"
#include "ism/sim/fabric.hpp"
#include "link_peer_process.hpp"
#include "link_peer_protocol.hpp"

namespace {

using namespace ism;
using namespace ism::link;
using namespace std::chrono_literals;
using ism::test::describe_status;
using ism::test::LinkPeerProcess;
namespace lp = ism::link_peer;

constexpr const char* kSelf = "lpar1";
constexpr const char* kPeer = "lpar2";
/// A payload size that stands for an empty message: no header, nothing to check but its
/// place in the order.
constexpr std::size_t kEmpty = std::numeric_limits<std::size_t>::max();

using SizeOf = std::function<std::size_t(uint64_t seq)>;

/// One message this side sent, and what became of it.
struct Sent {
    uint32_t channel = 0;
    uint64_t seq = 0;
    std::size_t bytes = 0;  // the whole message, header included
    int completions = 0;
    std::error_code result;
};

// Numbered messages on one channel, with a window of them outstanding. In echo mode a
// message is outstanding until its echo came back (and every echo is checked, in order);
// otherwise until its send completed. It stops issuing at the first failed send, and
// resumes when told.
class Stream {
public:
    Stream(Channel& ch, SizeOf size_of, std::size_t window, bool echo)
        : ch_(ch), size_of_(std::move(size_of)), window_(window), echo_(echo)
    {
        if (echo_)
            arm();
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    // The endpoint outlives the streams of a test and completes what they left pending
    // when it shuts down: those completions find the stream gone.
    ~Stream() { *alive_ = false; }

    /// Issues messages up to sequence number `limit` (exclusive) as the window allows.
    void send_up_to(uint64_t limit)
    {
        limit_ = limit;
        stopped_ = false;
        fill();
    }
    void stop() noexcept { stopped_ = true; }

    [[nodiscard]] uint32_t channel() const noexcept { return ch_.index(); }
    [[nodiscard]] uint64_t issued() const noexcept { return records_.size(); }
    [[nodiscard]] uint64_t completed() const noexcept { return completed_; }
    [[nodiscard]] uint64_t succeeded() const noexcept { return succeeded_; }
    [[nodiscard]] uint64_t failed() const noexcept { return completed_ - succeeded_; }
    [[nodiscard]] uint64_t echoed() const noexcept { return echoed_; }
    [[nodiscard]] uint64_t sends_pending() const noexcept { return issued() - completed_; }
    [[nodiscard]] const std::deque<Sent>& records() const noexcept { return records_; }
    /// Problems seen (wrong echo, out-of-order completion, ...), the first few described.
    [[nodiscard]] uint64_t problems() const noexcept { return problems_; }
    [[nodiscard]] const std::vector<std::string>& problem_notes() const noexcept { return notes_; }
    [[nodiscard]] uint64_t receive_errors() const noexcept { return receive_errors_; }
    /// Every issued message completed (and in echo mode came back).
    [[nodiscard]] bool settled() const noexcept
    {
        return completed_ == issued() && (!echo_ || echoed_ == issued());
    }

private:
    [[nodiscard]] uint64_t outstanding() const noexcept
    {
        return issued() - (echo_ ? echoed_ : completed_);
    }

    void fill()
    {
        while (!stopped_ && issued() < limit_ && outstanding() < window_)
            issue();
    }

    void issue()
    {
        const uint64_t seq = issued();
        const std::size_t payload = size_of_(seq);
        auto buf = std::make_shared<std::vector<std::byte>>(
            payload == kEmpty ? std::vector<std::byte>{}
                              : lp::make_message(channel(), seq, payload));
        records_.push_back(Sent{channel(), seq, buf->size(), 0, {}});
        // The buffer lives in the handler, which the link keeps until the send completes.
        ch_.async_send(*buf, [this, alive = alive_, seq, buf](std::error_code ec) {
            if (*alive)
                on_sent(seq, ec);
        });
    }

    void on_sent(uint64_t seq, std::error_code ec)
    {
        Sent& r = records_.at(seq);
        if (++r.completions != 1)
            note("send " + std::to_string(seq) + " completed " + std::to_string(r.completions) +
                 " times");
        if (seq != next_completion_)
            note("send " + std::to_string(seq) + " completed out of order, expected " +
                 std::to_string(next_completion_));
        next_completion_ = seq + 1;
        r.result = ec;
        ++completed_;
        if (ec) {
            stopped_ = true;
            return;
        }
        ++succeeded_;
        fill();
    }

    void arm()
    {
        ch_.async_receive(
            [this, alive = alive_](std::error_code ec, const std::vector<std::byte>& message) {
                if (!*alive)
                    return;
                on_echo(ec, message);
            });
    }

    void on_echo(std::error_code ec, const std::vector<std::byte>& message)
    {
        if (ec) {
            ++receive_errors_;
            // The link went down: wait again for the next epoch. Anything else would fail
            // the same way again at once.
            if (ec == errc::peer_gone || ec == errc::link_reset)
                arm();
            else
                note("receive failed: " + ec.message());
            return;
        }
        const uint64_t seq = echoed_++;
        check_echo(seq, message);
        arm();
        fill();
    }

    void check_echo(uint64_t seq, const std::vector<std::byte>& message)
    {
        const std::string what =
            "echo " + std::to_string(seq) + " on channel " + std::to_string(channel()) + ": ";
        if (seq >= issued()) {
            note(what + "nothing was sent with that number");
            return;
        }
        const std::size_t payload = size_of_(seq);
        if (payload == kEmpty) {
            if (!message.empty())
                note(what + "expected an empty message, got " + std::to_string(message.size()) +
                     " bytes");
            return;
        }
        if (message.size() != lp::kHeaderSize + payload) {
            note(what + "expected " + std::to_string(lp::kHeaderSize + payload) + " bytes, got " +
                 std::to_string(message.size()));
            return;
        }
        const auto h = lp::parse_header(message);
        if (!h || h->channel != channel() || h->seq != seq) {
            note(what + "wrong header" +
                 (h ? " (ch=" + std::to_string(h->channel) + " seq=" + std::to_string(h->seq) + ")"
                    : std::string{}));
            return;
        }
        if (!lp::payload_ok(message, *h))
            note(what + "payload differs");
    }

    void note(std::string what)
    {
        ++problems_;
        if (notes_.size() < 8)
            notes_.push_back(std::move(what));
    }

    Channel& ch_;
    SizeOf size_of_;
    std::size_t window_;
    bool echo_;
    bool stopped_ = true;
    uint64_t limit_ = 0;
    std::deque<Sent> records_;  // by sequence number
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    uint64_t completed_ = 0;
    uint64_t succeeded_ = 0;
    uint64_t next_completion_ = 0;
    uint64_t echoed_ = 0;
    uint64_t receive_errors_ = 0;
    uint64_t problems_ = 0;
    std::vector<std::string> notes_;
};

std::string describe(const Stream& s)
{
    std::string out = "channel " + std::to_string(s.channel()) + ": issued " +
                      std::to_string(s.issued()) + ", completed " + std::to_string(s.completed()) +
                      " (" + std::to_string(s.failed()) + " failed), echoed " +
                      std::to_string(s.echoed()) + ", problems " + std::to_string(s.problems());
    for (const auto& n : s.problem_notes())
        out += "\n    " + n;
    return out;
}

class LinkTwoProcess : public ::testing::Test {
protected:
    void SetUp() override
    {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        fabric_ = "lp-" + std::to_string(::getpid()) + "-" + info->name();
        auto file = sim::open_function(
            {.fabric = fabric_, .name = kSelf, .gid_disabled_events = gid_disabled_events_});
        ASSERT_TRUE(file) << "open function: " << file.error().message();
        auto dev = device::IsmDevice::open(std::move(*file));
        ASSERT_TRUE(dev) << "open device: " << dev.error().message();
        dev_ = std::move(*dev);
    }

    void TearDown() override
    {
        for (auto& p : peers_) {
            // A peer still expected alive must not have died on its own (a payload error
            // exits with 3).
            if (p.get() == live_peer_) {
                EXPECT_FALSE(p->poll_exit()) << "peer " << describe_status(p->poll_exit()) << "\n"
                                             << p->transcript();
            }
        }
        peers_.clear();  // kills and reaps whatever still runs
        live_peer_ = nullptr;
        endpoint_.reset();  // the link goes with it; its handlers are dropped uncalled
        dev_.reset();
        (void)sim::remove_fabric(fabric_);
        for (const auto& f : logs_)
            ::unlink(f.c_str());
    }

    /// Quick peer-loss detection. Both ends get the same values: nothing tells a side the
    /// other's keepalive interval, and a dead_after shorter than it reads as peer loss.
    static LinkOptions fast_options()
    {
        LinkOptions o;
        o.keepalive_interval = 100ms;
        o.dead_after = 1000ms;
        return o;
    }

    /// Our end: an Endpoint on io_ and a link to kPeer.
    Link& start_link(LinkOptions options = {}, EndpointOptions eo = {})
    {
        endpoint_ = std::make_unique<Endpoint>(io_, *dev_, eo);
        options.peer_gid = sim::gid_for_name(kPeer);
        auto link = endpoint_->add_link(options);
        EXPECT_TRUE(link) << "add_link: " << link.error().message();
        if (!link)
            throw std::runtime_error("add_link failed");
        link_ = *link;
        states_.assign(options.channels, {});
        return *link_;
    }

    /// Opens a channel in message mode and records its state changes in states_.
    Channel& open(uint32_t c)
    {
        Channel& ch = link_->open_channel(c, ChannelMode::message);
        ch.set_state_handler([this, c](bool up) { states_.at(c).push_back(up); });
        return ch;
    }

    /// Starts ism-link-peer as kPeer; `extra` are further options.
    LinkPeerProcess& spawn_peer(const std::vector<std::string>& extra)
    {
        std::vector<std::string> args{
            "--fabric", fabric_, "--name", kPeer, "--peer", kSelf, "--exit-with-parent"};
        args.insert(args.end(), extra.begin(), extra.end());
        peers_.push_back(std::make_unique<LinkPeerProcess>(ISM_LINK_PEER_PATH, args));
        LinkPeerProcess& p = *peers_.back();
        EXPECT_EQ(p.spawn_error(), 0) << "posix_spawn " << ISM_LINK_PEER_PATH;
        live_peer_ = &p;
        return p;
    }

    /// spawn_peer(), then waits for its `ready` line while our end keeps running.
    LinkPeerProcess& start_peer(const std::vector<std::string>& extra)
    {
        LinkPeerProcess& p = spawn_peer(extra);
        const auto ready = p.wait_line("ready gid=", 10s, pump());
        EXPECT_TRUE(ready) << "peer never got ready; " << describe_status(p.poll_exit()) << "\n"
                           << p.transcript();
        if (ready) {
            char expect[64];
            std::snprintf(expect, sizeof expect, "ready gid=0x%016" PRIx64,
                          sim::gid_for_name(kPeer));
            EXPECT_EQ(*ready, expect);
        }
        return p;
    }

    /// Signals the peer and waits until it ends; its wait status.
    std::optional<int> stop_peer(LinkPeerProcess& p, int sig)
    {
        if (&p == live_peer_)
            live_peer_ = nullptr;
        EXPECT_TRUE(p.signal(sig)) << "kill " << sig;
        return p.wait_exit(10s);
    }

    /// Runs our end for one short slice.
    std::function<void()> pump()
    {
        return [this] {
            if (io_.stopped())
                io_.restart();
            io_.run_one_for(5ms);
        };
    }

    /// Runs our end until `done` holds, at most `max`. Gives up early (with a failure)
    /// when a peer that should be running exited.
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds max)
    {
        const auto deadline = Clock::now() + max;
        auto next_check = Clock::now();
        while (!done()) {
            const auto now = Clock::now();
            if (now >= deadline)
                return done();
            if (live_peer_ != nullptr && now >= next_check) {
                next_check = now + 50ms;
                live_peer_->read_lines();
                if (auto status = live_peer_->poll_exit()) {
                    ADD_FAILURE() << "peer " << describe_status(status) << "\n"
                                  << live_peer_->transcript();
                    live_peer_ = nullptr;
                    return done();
                }
            }
            if (io_.stopped())
                io_.restart();
            io_.run_one_for(10ms);
        }
        return true;
    }

    /// Runs our end for `d` (the scenario needs time to pass, nothing to wait for).
    void run_for(std::chrono::milliseconds d)
    {
        (void)run_until([] { return false; }, d);
    }

    std::string log_path(const std::string& tag)
    {
        std::string path = ::testing::TempDir() + fabric_ + "." + tag + ".log";
        ::unlink(path.c_str());
        logs_.push_back(path);
        return path;
    }

    static bool all_settled(const std::vector<std::unique_ptr<Stream>>& streams)
    {
        for (const auto& s : streams) {
            if (!s->settled())
                return false;
        }
        return true;
    }

    static std::string describe_all(const std::vector<std::unique_ptr<Stream>>& streams)
    {
        std::string out;
        for (const auto& s : streams)
            out += describe(*s) + "\n";
        return out;
    }

    /// Echoed streams on channels 0..3: mixed sizes up to 5000 bytes, 4 in flight each.
    std::vector<std::unique_ptr<Stream>> echo_streams()
    {
        std::vector<std::unique_ptr<Stream>> streams;
        for (uint32_t c = 0; c < 4; ++c)
            streams.push_back(std::make_unique<Stream>(
                open(c), [](uint64_t seq) { return std::size_t{seq * 37 % 5000}; }, 4, true));
        return streams;
    }

    /// Sends `more` messages on every stream and waits until each came back right.
    void exchange(std::vector<std::unique_ptr<Stream>>& streams, uint64_t more)
    {
        for (auto& s : streams)
            s->send_up_to(s->issued() + more);
        ASSERT_TRUE(run_until([&] { return all_settled(streams); }, 20s)) << describe_all(streams);
        expect_clean(streams);
    }

    /// Every message of every stream sent successfully (and in echo mode came back right).
    void expect_clean(const std::vector<std::unique_ptr<Stream>>& streams)
    {
        for (const auto& s : streams) {
            EXPECT_EQ(s->problems(), 0U) << describe(*s);
            EXPECT_EQ(s->failed(), 0U) << describe(*s);
            EXPECT_EQ(s->succeeded(), s->issued()) << describe(*s);
        }
    }

    /// The kill -9 test, in either peer-loss mode.
    void kill_nine_mid_transfer_then_recovery();

    std::string fabric_;
    bool gid_disabled_events_ = false;  // our function's FunctionOptions::gid_disabled_events
    std::unique_ptr<device::IsmDevice> dev_;
    boost::asio::io_context io_;
    std::unique_ptr<Endpoint> endpoint_;
    Link* link_ = nullptr;
    std::vector<std::vector<bool>> states_;  // per channel: what its state handler was told
    std::vector<std::unique_ptr<LinkPeerProcess>> peers_;
    LinkPeerProcess* live_peer_ = nullptr;  // the peer that must not exit by itself
    std::vector<std::string> logs_;
};

// Payload sizes for the bulk test: empty messages, tiny and odd ones, ring-sized and
// larger (a 64 KiB payload does not fit a ring of 16 channels in a 1 MiB DMB either).
std::size_t bulk_size(uint32_t c, uint64_t seq)
{
    static constexpr std::size_t kSizes[] = {kEmpty, 0,     1,     3,     7,     13,
                                             64,     255,   1000,  4080,  4096,  4097,
                                             9999,   16384, 32767, 65536, 65472, 100003};
    if (seq == 20 + c)
        return std::size_t{1} << 20;  // one 1 MiB message per channel, at a different place
    return kSizes[(seq + c * 5) % std::size(kSizes)];
}

TEST_F(LinkTwoProcess, SixteenChannelsBulkTransferVerified)
{
    constexpr uint32_t kChannels = 16;
    constexpr uint64_t kPerChannel = 150;
    Link& link = start_link();
    auto& peer = start_peer({});
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << "link never came up\n"
                                                           << peer.transcript();
    std::vector<std::unique_ptr<Stream>> streams;
    for (uint32_t c = 0; c < kChannels; ++c)
        streams.push_back(std::make_unique<Stream>(
            open(c), [c](uint64_t seq) { return bulk_size(c, seq); }, 8, true));

    const auto t0 = Clock::now();
    for (auto& s : streams)
        s->send_up_to(kPerChannel);
    ASSERT_TRUE(run_until([&] { return all_settled(streams); }, 40s))
        << "traffic did not finish:\n"
        << describe_all(streams) << peer.transcript();
    const auto elapsed = std::chrono::duration<double>(Clock::now() - t0).count();

    uint64_t bytes = 0;
    for (uint32_t c = 0; c < kChannels; ++c) {
        const Stream& s = *streams[c];
        EXPECT_EQ(s.issued(), kPerChannel);
        const ChannelStats& st = link_->open_channel(c, ChannelMode::message).stats();
        uint64_t sent = 0;
        bool big = false;
        for (const auto& r : s.records()) {
            sent += r.bytes;
            big = big || r.bytes > (std::size_t{1} << 20);
        }
        EXPECT_TRUE(big) << "channel " << c << " carried no 1 MiB message";
        bytes += sent;
        EXPECT_EQ(st.messages_sent, kPerChannel) << "channel " << c;
        EXPECT_EQ(st.bytes_sent, sent) << "channel " << c;
        EXPECT_EQ(st.messages_received, kPerChannel) << "channel " << c;
        EXPECT_EQ(st.bytes_received, sent) << "channel " << c << ": echoes are the same bytes";
        EXPECT_EQ(st.sends_failed, 0U) << "channel " << c;
    }
    expect_clean(streams);
    EXPECT_EQ(link.ups(), 1U) << "the link went down during the transfer\n" << peer.transcript();
    std::printf("[ info ] %.1f MB each way over %u channels in %.2f s\n",
                static_cast<double>(bytes) / 1e6, kChannels, elapsed);

    EXPECT_EQ(describe_status(stop_peer(peer, SIGTERM)), "exited with 0") << peer.transcript();
    EXPECT_FALSE(peer.printed("error")) << peer.transcript();
    EXPECT_FALSE(peer.printed("down")) << peer.transcript();
}

TEST_F(LinkTwoProcess, StalledChannelDoesNotBlockOthers)
{
    constexpr uint64_t kStalledSends = 40;  // 40 x 4 KiB: more than a 64 KiB ring holds
    constexpr uint64_t kFlowingSends = 3000;
    Link& link = start_link();
    auto& peer = start_peer({"--stall", "3", "--sink"});
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << peer.transcript();

    Stream stalled(
        open(3), [](uint64_t) { return std::size_t{4096}; }, kStalledSends, false);
    Stream flowing(
        open(5), [](uint64_t seq) { return std::size_t{1000 + seq % 100}; }, 32, false);
    stalled.send_up_to(kStalledSends);
    flowing.send_up_to(kFlowingSends);
    ASSERT_TRUE(run_until([&] { return flowing.settled(); }, 30s))
        << "channel 5 stopped while channel 3 was stalled:\n"
        << describe(flowing) << "\n"
        << describe(stalled);

    EXPECT_EQ(flowing.succeeded(), kFlowingSends) << describe(flowing);
    EXPECT_EQ(flowing.problems(), 0U) << describe(flowing);
    // Channel 3's reader never read: nothing of it was confirmed, all of it still waits.
    EXPECT_EQ(stalled.completed(), 0U) << describe(stalled);
    EXPECT_EQ(link.open_channel(3, ChannelMode::message).pending_sends(), kStalledSends);
    EXPECT_EQ(link.open_channel(5, ChannelMode::message).pending_sends(), 0U);
    EXPECT_TRUE(link.up());
    EXPECT_EQ(link.ups(), 1U) << peer.transcript();
    EXPECT_FALSE(peer.printed("reset")) << peer.transcript();
}

struct LogLine {
    uint32_t channel = 0;
    uint64_t seq = 0;
    std::size_t len = 0;
};

std::vector<LogLine> read_log(const std::string& path, std::vector<std::string>& bad)
{
    std::vector<LogLine> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        LogLine l;
        char tail = 0;
        if (std::sscanf(line.c_str(), "recv ch=%" SCNu32 " seq=%" SCNu64 " len=%zu%c", &l.channel,
                        &l.seq, &l.len, &tail) != 3)
            bad.emplace_back(path).append(": ").append(line);
        else
            out.push_back(l);
    }
    return out;
}

// Mostly small messages, now and then one three times a ring (sent in pieces).
std::size_t kill_test_size(uint32_t c, uint64_t seq)
{
    if (seq % 50 == 7)
        return 200'000;
    return 1 + (seq * 7919 + c * 131) % 12000;
}

void LinkTwoProcess::kill_nine_mid_transfer_then_recovery()
{
    constexpr uint32_t kChannels = 4;
    constexpr uint64_t kBeforeKill = 1500;  // confirmed sends (all channels) before kill -9
    constexpr uint64_t kAfter = 200;        // sends per channel once the link is back
    const std::vector<std::string> fast{"--sink", "--keepalive-ms", "100", "--dead-after-ms",
                                        "1000"};
    const std::string l1 = log_path("L1");
    const std::string l2 = log_path("L2");
    auto with_log = [&](const std::string& log) {
        auto args = fast;
        args.insert(args.end(), {"--log", log});
        return args;
    };

    Link& link = start_link(fast_options());
    std::vector<std::unique_ptr<Stream>> streams;
    for (uint32_t c = 0; c < kChannels; ++c)
        streams.push_back(std::make_unique<Stream>(
            open(c), [c](uint64_t seq) { return kill_test_size(c, seq); }, 64, false));
    auto& first = start_peer(with_log(l1));
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << first.transcript();

    // Stream until enough went through, then kill the peer with plenty in flight.
    for (auto& s : streams)
        s->send_up_to(std::numeric_limits<uint64_t>::max());
    auto confirmed = [&] {
        uint64_t n = 0;
        for (const auto& s : streams)
            n += s->succeeded();
        return n;
    };
    ASSERT_TRUE(run_until([&] { return confirmed() >= kBeforeKill; }, 20s))
        << describe_all(streams);
    // The kill comes from another thread after a random delay, so that it lands at any
    // point of our loop (a batch half written, cursors the peer published that we have not
    // read yet, a message in pieces), not just between two of our handlers.
    live_peer_ = nullptr;
    std::atomic<bool> kill_sent{false};
    std::thread killer([pid = first.pid(), &kill_sent] {
        std::mt19937 rng(std::random_device{}());
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        ::kill(pid, SIGKILL);
        kill_sent = true;
    });
    const bool sent_kill = run_until([&] { return kill_sent.load(); }, 5s);
    killer.join();
    ASSERT_TRUE(sent_kill);
    const auto t_kill = Clock::now();
    const auto killed = first.wait_exit(10s);
    ASSERT_TRUE(killed && WIFSIGNALED(*killed) && WTERMSIG(*killed) == SIGKILL)
        << describe_status(killed);

    // Every send completes, the unconfirmed ones with peer_gone, and the link goes down.
    ASSERT_TRUE(run_until(
        [&] {
            if (link.up())
                return false;
            for (const auto& s : streams) {
                if (s->sends_pending() != 0 || states_[s->channel()].size() < 2)
                    return false;
            }
            return true;
        },
        10s))
        << "sends still pending or link still up " << link.up() << "\n"
        << describe_all(streams);
    const auto detect = std::chrono::duration<double>(Clock::now() - t_kill).count();
    uint64_t failed_phase1 = 0;
    std::vector<uint64_t> phase2_start;
    for (const auto& s : streams) {
        failed_phase1 += s->failed();
        phase2_start.push_back(s->issued());
        for (const auto& r : s->records()) {
            if (r.result) {
                EXPECT_EQ(r.result, make_error_code(errc::peer_gone))
                    << "ch " << r.channel << " seq " << r.seq << ": " << r.result.message();
            }
        }
    }
    EXPECT_GT(failed_phase1, 0U) << "the kill failed no send at all";

    // A fresh process takes the peer's name; the link comes back by itself.
    auto& second = start_peer(with_log(l2));
    ASSERT_TRUE(run_until(
        [&] {
            for (uint32_t c = 0; c < kChannels; ++c) {
                if (states_[c].size() < 3)
                    return false;
            }
            return link.ups() == 2 && link.up();
        },
        10s))
        << "link did not come back, ups " << link.ups() << "\n"
        << second.transcript();
    for (uint32_t c = 0; c < kChannels; ++c)
        EXPECT_EQ(states_[c], (std::vector<bool>{true, false, true})) << "channel " << c;

    for (auto& s : streams)
        s->send_up_to(s->issued() + kAfter);
    ASSERT_TRUE(run_until([&] { return all_settled(streams); }, 20s)) << describe_all(streams);
    for (uint32_t c = 0; c < kChannels; ++c) {
        const auto& recs = streams[c]->records();
        for (uint64_t seq = phase2_start[c]; seq < recs.size(); ++seq)
            EXPECT_FALSE(recs[seq].result) << "after recovery: ch " << c << " seq " << seq << ": "
                                           << recs[seq].result.message();
    }
    EXPECT_EQ(describe_status(stop_peer(second, SIGTERM)), "exited with 0") << second.transcript();

    // What the peers logged against what our sends reported.
    std::vector<std::string> bad;
    const auto log1 = read_log(l1, bad);
    const auto log2 = read_log(l2, bad);
    EXPECT_TRUE(bad.empty()) << "unreadable log line: " << (bad.empty() ? "" : bad.front());
    std::map<std::pair<uint32_t, uint64_t>, int> seen;
    for (const auto* log : {&log1, &log2}) {
        for (const auto& l : *log) {
            const int n = ++seen[{l.channel, l.seq}];
            EXPECT_EQ(n, 1) << "ch " << l.channel << " seq " << l.seq << " delivered twice";
            ASSERT_LT(l.channel, kChannels) << "a channel we never used";
            const auto& recs = streams[l.channel]->records();
            ASSERT_LT(l.seq, recs.size()) << "ch " << l.channel << ": a message never sent";
            EXPECT_EQ(l.len, recs[l.seq].bytes) << "ch " << l.channel << " seq " << l.seq;
            if (log == &log2) {
                EXPECT_GE(l.seq, phase2_start[l.channel])
                    << "ch " << l.channel << " seq " << l.seq
                    << ": a message of the dead epoch reached the new peer";
            }
        }
    }
    uint64_t delivered_unconfirmed = 0;
    for (uint32_t c = 0; c < kChannels; ++c) {
        const Stream& s = *streams[c];
        uint64_t failed = 0;
        uint64_t failed_bytes = 0;
        uint64_t ok_bytes = 0;
        for (const auto& r : s.records()) {
            EXPECT_EQ(r.completions, 1) << "ch " << c << " seq " << r.seq;
            const auto it = seen.find({c, r.seq});
            if (!r.result) {
                ok_bytes += r.bytes;
                EXPECT_TRUE(it != seen.end())
                    << "ch " << c << " seq " << r.seq << ": confirmed but never logged";
            } else {
                ++failed;
                failed_bytes += r.bytes;
                delivered_unconfirmed += it != seen.end() ? 1U : 0U;
            }
        }
        const ChannelStats& st = link.open_channel(c, ChannelMode::message).stats();
        EXPECT_EQ(st.sends_failed, failed) << "channel " << c;
        EXPECT_EQ(st.bytes_failed, failed_bytes) << "channel " << c;
        EXPECT_EQ(st.messages_sent, s.succeeded()) << "channel " << c;
        EXPECT_EQ(st.bytes_sent, ok_bytes) << "channel " << c;
        EXPECT_EQ(s.problems(), 0U) << describe(s);
    }
    std::printf(
        "[ info ] %" PRIu64 " sends failed by the kill (%" PRIu64
        " of them had arrived), all settled %.3f s after the kill; %zu + %zu messages logged\n",
        failed_phase1, delivered_unconfirmed, detect, log1.size(), log2.size());
}

// Peer loss as real ISM shows it (the default): failing stores and the keepalive tell.
TEST_F(LinkTwoProcess, KillNineMidTransferThenRecovery)
{
    kill_nine_mid_transfer_then_recovery();
}

// The same with the emulation's optional GID-disabled event.
class LinkTwoProcessGidEvents : public LinkTwoProcess {
protected:
    LinkTwoProcessGidEvents() { gid_disabled_events_ = true; }
};

TEST_F(LinkTwoProcessGidEvents, KillNineMidTransferThenRecovery)
{
    kill_nine_mid_transfer_then_recovery();
}

TEST_F(LinkTwoProcess, LimitsAndModesTheSidesDisagreeOnFailLocallyNotTheLink)
{
    // The peer takes messages of at most 2000 bytes and has every channel open in
    // message mode; we open channel 1 in stream mode. Neither is a reason to reset.
    Link& link = start_link();
    std::vector<LinkEvent> events;
    link.set_event_handler([&](const LinkEvent& e) { events.push_back(e); });
    auto& peer = start_peer({"--max-message", "2000"});
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << peer.transcript();
    Channel& stream = link.open_channel(1, ChannelMode::stream);
    const auto mismatch = [&] {
        return std::any_of(events.begin(), events.end(), [](const LinkEvent& e) {
            return e.kind == LinkEvent::Kind::channel_error && e.channel == 1 &&
                   e.error == errc::mode_mismatch;
        });
    };
    ASSERT_TRUE(run_until(mismatch, 5s)) << peer.transcript();
    ASSERT_TRUE(peer.wait_line("channel_error channel=1 ", 5s, pump())) << peer.transcript();
    std::optional<std::error_code> streamed;
    const std::vector<std::byte> bytes(100, std::byte{1});
    stream.async_send(bytes, [&](std::error_code ec) { streamed = ec; });
    ASSERT_TRUE(run_until([&] { return streamed.has_value(); }, 5s));
    EXPECT_EQ(*streamed, errc::mode_mismatch);

    Channel& ch = open(0);
    std::optional<std::error_code> big;
    std::vector<std::byte> too_big(2001);
    ch.async_send(too_big, [&](std::error_code ec) { big = ec; });
    ASSERT_TRUE(run_until([&] { return big.has_value(); }, 5s));
    EXPECT_EQ(*big, errc::message_too_large);
    // What fits goes through, echoed back.
    auto streams = std::vector<std::unique_ptr<Stream>>{};
    streams.push_back(std::make_unique<Stream>(
        ch, [](uint64_t seq) { return std::size_t{seq * 37 % (2001 - lp::kHeaderSize)}; }, 4,
        true));
    ASSERT_NO_FATAL_FAILURE(exchange(streams, 100));
    EXPECT_EQ(link.ups(), 1U);
    EXPECT_FALSE(peer.printed("reset_sent")) << peer.transcript();
    EXPECT_FALSE(peer.printed("down")) << peer.transcript();
    EXPECT_EQ(describe_status(stop_peer(peer, SIGTERM)), "exited with 0") << peer.transcript();
}

TEST_F(LinkTwoProcess, ACoroutineEchoesThenStopTellsThePeerAtOnce)
{
    // Our end as a service would run it: AsyncChannel in a coroutine, messages echoed
    // into one buffer. Then Endpoint::stop(): the pending receive completes with
    // operation_canceled and the peer learns of it from RESET (reason 7), long before
    // its dead_after of 30 s.
    Link& link = start_link();
    auto& peer = start_peer({"--dead-after-ms", "30000", "--keepalive-ms", "1000"});
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << peer.transcript();
    AsyncChannel ch(link.open_channel(2, ChannelMode::message), io_.get_executor());
    int echoed = 0;
    std::optional<std::error_code> last;
    boost::asio::co_spawn(
        io_,
        [&]() -> boost::asio::awaitable<void> {
            using boost::asio::as_tuple;
            using boost::asio::use_awaitable;
            std::vector<std::byte> buffer(64 * 1024);
            for (uint64_t seq = 0;; ++seq) {
                const auto m = lp::make_message(2, seq, seq * 997 % 40000);
                if (seq < 50) {
                    auto [sent] = co_await ch.async_write(m, as_tuple(use_awaitable));
                    if (sent) {
                        last = sent;
                        co_return;
                    }
                }
                auto [ec, n] =
                    co_await ch.async_receive(std::span(buffer), as_tuple(use_awaitable));
                if (ec) {
                    last = ec;
                    co_return;
                }
                if (n == m.size() && std::equal(m.begin(), m.end(), buffer.begin()))
                    ++echoed;
            }
        },
        boost::asio::detached);
    ASSERT_TRUE(run_until([&] { return echoed == 50; }, 10s)) << echoed << peer.transcript();
    EXPECT_FALSE(last.has_value());
    const auto t0 = Clock::now();
    endpoint_->stop();
    ASSERT_TRUE(run_until([&] { return last.has_value(); }, 2s));
    EXPECT_EQ(*last, std::errc::operation_canceled);
    ASSERT_TRUE(peer.wait_line("reset_received reason=7", 5s, pump())) << peer.transcript();
    EXPECT_LT(Clock::now() - t0, 5s);
    EXPECT_FALSE(peer.printed("error")) << peer.transcript();
    EXPECT_EQ(describe_status(stop_peer(peer, SIGTERM)), "exited with 0") << peer.transcript();
}

TEST_F(LinkTwoProcess, AChannelClosedAfterItsDataEndsTheStreamAndOpensAgain)
{
    // Three rounds on one channel, as a console attaches and detaches: we write 20
    // messages, read the 20 echoes, close and reopen. The peer reads its end of stream
    // after the 20 (it says how many it had) and closes and reopens its end in turn; we
    // read that end of stream after its echoes. Every round starts a clean stream.
    Link& link = start_link();
    auto& peer = start_peer({});
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << peer.transcript();
    Channel& raw = link.open_channel(2, ChannelMode::message);
    ASSERT_TRUE(run_until([&] { return raw.peer_open(); }, 5s)) << peer.transcript();
    std::vector<bool> told;
    raw.set_peer_handler([&](bool open) { told.push_back(open); });
    AsyncChannel ch(raw, io_.get_executor());
    constexpr int kRounds = 3;
    constexpr uint64_t kMessages = 20;
    int rounds = 0;
    std::optional<std::string> failure;
    boost::asio::co_spawn(
        io_,
        [&]() -> boost::asio::awaitable<void> {
            using boost::asio::as_tuple;
            using boost::asio::use_awaitable;
            std::vector<std::byte> buffer(64 * 1024);
            for (int r = 0; r < kRounds; ++r) {
                std::vector<std::vector<std::byte>> sent;
                for (uint64_t seq = 0; seq < kMessages; ++seq) {
                    sent.push_back(lp::make_message(2, static_cast<uint64_t>(r) * 1000 + seq,
                                                    seq * 997 % 30000));
                    auto [ec] = co_await ch.async_write(sent.back(), as_tuple(use_awaitable));
                    if (ec) {
                        failure = "write: " + ec.message();
                        co_return;
                    }
                }
                for (const auto& m : sent) {
                    auto [ec, n] =
                        co_await ch.async_receive(std::span(buffer), as_tuple(use_awaitable));
                    if (ec || n != m.size() || !std::equal(m.begin(), m.end(), buffer.begin())) {
                        failure = "echo: " + ec.message();
                        co_return;
                    }
                }
                ch.close();
                (void)link.open_channel(2, ChannelMode::message);
                auto [ec, n] =
                    co_await ch.async_receive(std::span(buffer), as_tuple(use_awaitable));
                if (ec != errc::end_of_stream) {
                    failure = "expected the peer's end of stream, got " + ec.message() +
                              " n=" + std::to_string(n);
                    co_return;
                }
                ++rounds;
            }
        },
        boost::asio::detached);
    ASSERT_TRUE(run_until([&] { return rounds == kRounds || failure; }, 20s))
        << rounds << peer.transcript();
    ASSERT_FALSE(failure) << *failure << peer.transcript();
    peer.read_lines();
    const std::string t = peer.transcript();
    std::size_t eofs = 0;
    for (auto at = t.find("eof ch=2 messages=20"); at != std::string::npos;
         at = t.find("eof ch=2 messages=20", at + 1))
        ++eofs;
    EXPECT_EQ(eofs, std::size_t{kRounds}) << t;
    // The peer's end: closed and open again once per round.
    ASSERT_TRUE(run_until([&] { return told.size() >= 2 * kRounds; }, 5s));
    ASSERT_EQ(told.size(), std::size_t{2 * kRounds});
    for (std::size_t i = 0; i < told.size(); ++i)
        EXPECT_EQ(told[i], i % 2 == 1) << i;
    EXPECT_EQ(link.ups(), 1U);
    EXPECT_FALSE(peer.printed("error")) << t;
    EXPECT_FALSE(peer.printed("reset_sent")) << t;
    EXPECT_EQ(describe_status(stop_peer(peer, SIGTERM)), "exited with 0") << t;
}

TEST_F(LinkTwoProcess, BothSidesStartAtOnce)
{
    auto& peer = spawn_peer({});
    Link& link = start_link();
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << peer.transcript();
    ASSERT_TRUE(peer.wait_line("up ups=1", 5s, pump())) << peer.transcript();
    ASSERT_TRUE(peer.wait_line("ready gid=", 1s));

    auto streams = echo_streams();
    ASSERT_NO_FATAL_FAILURE(exchange(streams, 200));
    EXPECT_EQ(link.ups(), 1U);
    EXPECT_FALSE(peer.printed("down")) << peer.transcript();
    EXPECT_EQ(describe_status(stop_peer(peer, SIGTERM)), "exited with 0") << peer.transcript();
}

TEST_F(LinkTwoProcess, PeerStartsLate)
{
    Link& link = start_link();
    run_for(1500ms);  // the peer is not there yet: our OFFERs go nowhere
    ASSERT_FALSE(link.up());
    EXPECT_EQ(link.ups(), 0U);

    const auto t0 = Clock::now();
    auto& peer = start_peer({});
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << peer.transcript();
    const auto took = std::chrono::duration<double>(Clock::now() - t0).count();
    ASSERT_TRUE(peer.wait_line("up ups=1", 5s, pump())) << peer.transcript();

    auto streams = echo_streams();
    ASSERT_NO_FATAL_FAILURE(exchange(streams, 200));
    EXPECT_EQ(link.ups(), 1U);
    EXPECT_EQ(describe_status(stop_peer(peer, SIGTERM)), "exited with 0") << peer.transcript();
    std::printf("[ info ] up %.3f s after the late peer started\n", took);
}

TEST_F(LinkTwoProcess, PeerRestartsCleanly)
{
    Link& link = start_link();
    // Channels opened before the link is up: their state handlers see every change.
    auto streams = echo_streams();
    auto& first = start_peer({});
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << first.transcript();
    ASSERT_NO_FATAL_FAILURE(exchange(streams, 200));

    // A clean exit: the peer's function goes away, its DMB with it, and our next keepalive
    // store fails (no GID-disabled event by default), before the dead_after timeout.
    EXPECT_EQ(describe_status(stop_peer(first, SIGTERM)), "exited with 0") << first.transcript();
    const auto t_exit = Clock::now();
    ASSERT_TRUE(run_until([&] { return !link.up(); }, 5s)) << "peer's exit went unnoticed";
    const auto noticed = std::chrono::duration<double>(Clock::now() - t_exit).count();
    EXPECT_LT(noticed, 2.0) << "noticed only by the keepalive timeout";

    auto& second = start_peer({});
    ASSERT_TRUE(run_until([&] { return link.up() && link.ups() == 2; }, 10s))
        << "ups " << link.ups() << "\n"
        << second.transcript();
    ASSERT_TRUE(second.wait_line("up ups=1", 5s, pump())) << second.transcript();
    ASSERT_NO_FATAL_FAILURE(exchange(streams, 200));
    for (uint32_t c = 0; c < 4; ++c) {
        EXPECT_EQ(states_[c], (std::vector<bool>{true, false, true})) << "channel " << c;
        // The receives pending when the first peer left failed and were renewed.
        EXPECT_EQ(streams[c]->receive_errors(), 1U) << describe(*streams[c]);
    }
    EXPECT_EQ(link.ups(), 2U);
    EXPECT_EQ(describe_status(stop_peer(second, SIGTERM)), "exited with 0") << second.transcript();
    std::printf("[ info ] clean exit noticed in %.3f s\n", noticed);
}

TEST_F(LinkTwoProcess, PollingModeCarriesTraffic)
{
    constexpr uint32_t kChannels = 4;
    constexpr uint64_t kRoundTrips = 750;  // per channel, one at a time
    Link& link = start_link({}, EndpointOptions{.mode = PollMode::polling});
    auto& peer = start_peer({"--polling"});
    ASSERT_TRUE(run_until([&] { return link.up(); }, 10s)) << peer.transcript();

    std::vector<std::unique_ptr<Stream>> streams;
    for (uint32_t c = 0; c < kChannels; ++c)
        streams.push_back(std::make_unique<Stream>(
            open(c), [c](uint64_t seq) { return std::size_t{(seq * 131 + c) % 3000}; }, 1, true));
    const auto t0 = Clock::now();
    for (auto& s : streams)
        s->send_up_to(kRoundTrips);
    ASSERT_TRUE(run_until([&] { return all_settled(streams); }, 30s)) << describe_all(streams);
    const auto elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    expect_clean(streams);
    for (const auto& s : streams)
        EXPECT_EQ(s->echoed(), kRoundTrips) << describe(*s);
    EXPECT_EQ(link.ups(), 1U);
    EXPECT_EQ(describe_status(stop_peer(peer, SIGTERM)), "exited with 0") << peer.transcript();
    std::printf("[ info ] %" PRIu64 " round trips in %.2f s (%.1f us each per channel)\n",
                kRoundTrips * kChannels, elapsed, elapsed * 1e6 / static_cast<double>(kRoundTrips));
}

}  // namespace
