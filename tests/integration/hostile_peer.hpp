// SPDX-License-Identifier: MIT
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// The hostile peer: the fixture of suite LinkTwoProcessHostile, whose tests are in
// link_hostile_<family>_test.cpp, one file per family of attack. The test process drives
// its ISM function by hand, without the Link class: it speaks the link protocol
// (docs/protocol.md) with the wire helpers alone, brings ism-link-peer (started with
// posix_spawn) up, and then commits one hostile act per test. After a protocol violation
// the victim must reset with the reason of section 7, send RESET for the epoch it tears
// down, start a new epoch (a new DMB and a fresh OFFER) and come up again after an honest
// handshake; whatever it is sent, it must never crash. LINK_HOSTILE_VERBOSE=1 prints the
// victim's output for every test.
//
// In a named namespace, not an anonymous one: gtest requires every test of a suite to use
// the one fixture type, and the suite's tests are spread over several files.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ism/byte_order.hpp"
#include "ism/device/ism_device.hpp"
#include "ism/link/wire.hpp"
#include "ism/sim/fabric.hpp"
#include "link_peer_process.hpp"
#include "link_peer_protocol.hpp"

namespace ism::test::hostile {

using namespace ism::link;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline constexpr std::size_t kOwnDmbSize = std::size_t{256} << 10;
inline constexpr std::size_t kVictimDmbSize = std::size_t{256} << 10;
inline constexpr uint8_t kChannels = 16;
inline constexpr auto kKeepaliveEvery = 100ms;
inline constexpr auto kOfferEvery = 100ms;
inline constexpr auto kStep = 20ms;
inline constexpr uint32_t kSoftware = static_cast<uint32_t>(device::EventType::software);
inline constexpr uint64_t kTokenMask = 0x0000'FFFF'0000'0000ULL;

inline std::size_t prod_offset(uint32_t c)
{
    return kProducerCursorsOffset + std::size_t{8} * c;
}

inline std::size_t cons_offset(uint32_t c)
{
    return kConsumerCursorsOffset + std::size_t{8} * c;
}

inline std::array<std::byte, kRecordHeaderSize> record(uint32_t length, uint8_t flags)
{
    std::array<std::byte, kRecordHeaderSize> raw{};
    RecordHeader{length, flags}.encode(raw);
    return raw;
}

/// The payload of the first piece of a message of several: the message's total length,
/// then `data` bytes of `fill` (docs/protocol.md section 5, version 3).
inline std::vector<std::byte> first_payload(uint64_t total, std::size_t data,
                                            std::byte fill = std::byte{0x11})
{
    std::vector<std::byte> p(kRecordTotalSize + data, fill);
    store_be64(p, 0, total);
    return p;
}

/// "key=123" out of one of the victim's lines.
inline std::optional<unsigned long> field(const std::string& line, std::string_view key)
{
    const std::string needle = " " + std::string(key) + "=";
    const auto at = line.find(needle);
    if (at == std::string::npos)
        return std::nullopt;
    try {
        return std::stoul(line.substr(at + needle.size()), nullptr, 0);
    } catch (...) {
        return std::nullopt;
    }
}

/// A predicate for take_event and its kin: any event with the code.
inline bool any_event(const device::Event& /*ev*/)
{
    return true;
}

// What the victim offered us (the end of the link we write into).
struct VictimEnd {
    uint64_t token = 0;
    uint16_t epoch = 0;
    std::size_t dmb_size = 0;
};

class LinkTwoProcessHostile : public ::testing::Test {
protected:
    void SetUp() override
    {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        fabric_ = "lh-" + std::to_string(::getpid()) + "-" + info->name();
        victim_gid_ = sim::gid_for_name("victim");
        auto file = sim::open_function({.fabric = fabric_, .name = "hostile"});
        ASSERT_TRUE(file) << file.error().message();
        auto dev = device::IsmDevice::open(std::move(*file));
        ASSERT_TRUE(dev) << dev.error().message();
        dev_ = std::move(*dev);
        rng_.seed(
            static_cast<std::mt19937_64::result_type>(Clock::now().time_since_epoch().count()));

        std::vector<std::string> args{ISM_LINK_PEER_PATH,
                                      "--fabric",
                                      fabric_,
                                      "--name",
                                      "victim",
                                      "--peer",
                                      "hostile",
                                      "--channels",
                                      std::to_string(kChannels),
                                      "--dmb-size",
                                      std::to_string(kVictimDmbSize),
                                      "--keepalive-ms",
                                      "200",
                                      "--dead-after-ms",
                                      "1500",
                                      "--exit-with-parent"};
        const std::string program = args.front();
        args.erase(args.begin());
        victim_ = std::make_unique<test::LinkPeerProcess>(program, args);
        ASSERT_EQ(victim_->spawn_error(), 0) << "cannot start " << ISM_LINK_PEER_PATH;
        ASSERT_TRUE(expect_line("ready ", 10s)) << "the victim never said it was ready";
    }

    void TearDown() override
    {
        if (!victim_)
            return;
        victim_->read_lines();
        const bool was_alive = alive();
        if (HasFailure() || std::getenv("LINK_HOSTILE_VERBOSE") != nullptr) {
            std::string all;
            const auto& lines = victim_->lines();
            for (std::size_t i = 0; i < lines.size(); ++i)
                all += "  victim +" + std::to_string(victim_->when(i).count()) +
                       " ms: " + lines[i] + "\n";
            std::fprintf(stderr, "victim output (%s):\n%s", was_alive ? "alive" : "dead",
                         all.c_str());
        }
        victim_.reset();
        dev_.reset();
        (void)sim::remove_fabric(fabric_);
    }

    // ---- waiting: events, the victim's lines, keepalive --------------------------------

    /// Waits up to `max` for an interrupt or output, collects both, and keeps our
    /// keepalive going in the victim's DMB.
    void pump(milliseconds max = kStep)
    {
        std::array<pollfd, 2> pfds{pollfd{dev_->irq_fd(), POLLIN, 0},
                                   pollfd{victim_->output_fd(), POLLIN, 0}};
        const nfds_t n = victim_->output_fd() >= 0 ? 2 : 1;
        if (::poll(pfds.data(), n, static_cast<int>(max.count())) > 0) {
            if ((pfds[0].revents & POLLIN) != 0) {
                auto r = dev_->handle_interrupt();
                EXPECT_TRUE(r) << r.error().message();
                if (r)
                    events_.insert(events_.end(), r->events.begin(), r->events.end());
            }
        }
        victim_->read_lines();
        keepalive();
    }

    template <class Pred>
    bool wait_until(Pred pred, milliseconds max)
    {
        const auto deadline = Clock::now() + max;
        while (!pred()) {
            const auto now = Clock::now();
            if (now >= deadline)
                return false;
            pump(std::min<milliseconds>(
                kStep, std::chrono::duration_cast<milliseconds>(deadline - now) + 1ms));
        }
        return true;
    }

    void keepalive()
    {
        if (!keepalive_on_ || !wrote_cb_)
            return;
        const auto now = Clock::now();
        if (now < next_keepalive_)
            return;
        next_keepalive_ = now + kKeepaliveEvery;
        ++keepalive_;
        // Fails once the victim dropped that DMB: harmless.
        (void)store_word(kKeepaliveOffset, keepalive_, false);
    }

    /// The next line of the victim's that starts with `prefix`, after the last one
    /// taken; lines before it are passed over.
    std::optional<std::string> take_line(std::string_view prefix)
    {
        const auto& lines = victim_->lines();
        for (std::size_t i = line_cursor_; i < lines.size(); ++i) {
            if (lines[i].starts_with(prefix)) {
                line_cursor_ = i + 1;
                return lines[i];
            }
        }
        return std::nullopt;
    }

    std::optional<std::string> expect_line(std::string_view prefix, milliseconds max)
    {
        std::optional<std::string> line;
        wait_until([&] { return (line = take_line(prefix)).has_value(); }, max);
        return line;
    }

    /// Still running: not exited, not killed by a signal.
    bool alive() { return victim_ && !victim_->poll_exit(); }

    std::size_t count_lines(std::string_view prefix) const
    {
        const auto& lines = victim_->lines();
        return static_cast<std::size_t>(
            std::count_if(lines.begin(), lines.end(),
                          [&](const std::string& l) { return l.starts_with(prefix); }));
    }

    bool from_victim(const device::Event& ev, uint32_t code) const
    {
        return ev.type == kSoftware && ev.code == code && ev.tok == victim_gid_;
    }

    /// Removes and returns the first event from the victim with `code` that `pred` likes.
    std::optional<device::Event> take_event(uint32_t code,
                                            const std::function<bool(const device::Event&)>& pred)
    {
        for (auto it = events_.begin(); it != events_.end(); ++it) {
            if (from_victim(*it, code) && pred(*it)) {
                device::Event ev = *it;
                events_.erase(it);
                return ev;
            }
        }
        return std::nullopt;
    }

    std::optional<device::Event> expect_event(uint32_t code,
                                              const std::function<bool(const device::Event&)>& pred,
                                              milliseconds max)
    {
        std::optional<device::Event> ev;
        wait_until([&] { return (ev = take_event(code, pred)).has_value(); }, max);
        return ev;
    }

    bool has_event(uint32_t code, const std::function<bool(const device::Event&)>& pred) const
    {
        return std::any_of(events_.begin(), events_.end(), [&](const device::Event& ev) {
            return from_victim(ev, code) && pred(ev);
        });
    }

    // ---- the handshake, by hand ---------------------------------------------------------

    /// A new DMB for the victim to write into, and a new epoch (as a restarting side does).
    void new_own_end()
    {
        if (own_.token != 0)
            (void)dev_->unregister_dmb(own_.token);
        own_ = {};
        auto dmb = dev_->register_dmb(kOwnDmbSize, victim_gid_);
        ASSERT_TRUE(dmb) << dmb.error().message();
        own_ = *dmb;
        const uint16_t previous = epoch_;
        do {
            epoch_ = static_cast<uint16_t>(rng_());
        } while (epoch_ == 0 || epoch_ == previous);
    }

    [[nodiscard]] Offer our_offer() const
    {
        return Offer{own_.token, epoch_, kProtocolVersion, kProtocolVersion,
                     offered_size_ != 0 ? offered_size_ : own_.memory.size()};
    }

    void send_offer(uint64_t info)
    {
        auto r = dev_->signal_event(victim_gid_, kEventOffer, info);
        EXPECT_TRUE(r) << r.error().message();
    }

    [[nodiscard]] ControlBlock our_control_block() const
    {
        ControlBlock cb;
        cb.version = cb_version_;
        cb.nr_channels = nr_channels_;
        cb.writer_epoch = epoch_;
        cb.peer_epoch = vp_.epoch;
        cb.ring_size = tx_ring_;
        cb.writer_token = own_.token;
        cb.keepalive = keepalive_;
        cb.keepalive_ms = static_cast<uint32_t>(kKeepaliveEvery.count());
        cb.max_message = static_cast<uint32_t>(kMaxMessageSize);
        // Every channel open in message mode, as the victim has them.
        cb.channels.open = nr_channels_ >= 32 ? ~0U : (1U << nr_channels_) - 1;
        return cb;
    }

    /// Writes our control block (after zeroed cursors when `fresh`) into the victim's DMB.
    bool write_control(bool fresh)
    {
        if (fresh) {
            static const std::array<std::byte, kCursorAreaSize> zeros{};
            if (!dev_->move(vp_.token, 0, kControlBlockSize, zeros, false))
                return false;
            if (before_control_)
                before_control_();
        }
        std::array<std::byte, kControlBlockSize> raw{};
        our_control_block().encode(raw);
        return dev_->move(vp_.token, 0, 0, raw, true).has_value();
    }

    /// Takes the victim's end from its OFFER: the DMB we write into from now on, our rings
    /// in it, empty.
    void adopt(const Offer& offer)
    {
        vp_ = VictimEnd{offer.token, offer.epoch, offer.dmb_size};
        have_victim_ = true;
        wrote_cb_ = false;
        tx_ring_ = ring_size_for(vp_.dmb_size, nr_channels_);
        tx_prod_.fill(0);
    }

    /// Offers our end and answers the victim's OFFERs until our control block is in its
    /// DMB, without waiting for the victim to accept it: for a test that puts something
    /// wrong in the handshake's way.
    void write_control_after_offers()
    {
        auto next_offer = Clock::now();
        const bool ok = wait_until(
            [&] {
                if (Clock::now() >= next_offer && !wrote_cb_) {
                    send_offer(our_offer().pack());
                    next_offer = Clock::now() + kOfferEvery;
                }
                answer_offers();
                return wrote_cb_;
            },
            5s);
        ASSERT_TRUE(ok) << "our control block was never written into the victim's DMB";
    }

    /// Answers every OFFER the victim sent, in order, as section 3 says.
    void answer_offers()
    {
        while (auto ev = take_event(kEventOffer, any_event)) {
            auto offer = Offer::unpack(ev->info);
            EXPECT_TRUE(offer) << "the victim sent a malformed OFFER: " << std::hex << ev->info;
            if (!offer)
                continue;
            const bool fresh =
                !have_victim_ || offer->token != vp_.token || offer->epoch != vp_.epoch;
            if (fresh)
                adopt(*offer);
            // A stale OFFER (for a DMB the victim already dropped) fails: ignored.
            if (write_control(fresh))
                wrote_cb_ = true;
        }
    }

    /// The victim's control block in our DMB names our epoch: it accepted us.
    bool victim_accepted()
    {
        if (!have_victim_ || own_.token == 0)
            return false;
        std::array<std::byte, kControlBlockSize> raw;
        std::memcpy(raw.data(), own_.memory.data(), raw.size());
        std::atomic_thread_fence(std::memory_order_acquire);
        // Against the size we offered: the victim's geometry follows what we claimed.
        auto cb = ControlBlock::parse(raw, our_offer().dmb_size);
        return cb && cb->writer_epoch == vp_.epoch && cb->writer_token == vp_.token &&
               cb->peer_epoch == epoch_;
    }

    /// An honest handshake from a fresh end of ours: returns once the victim's control
    /// block names our epoch, ours is in its DMB, and it printed `up`.
    void bring_up(uint8_t nr_channels = kChannels, std::size_t offered_size = 0)
    {
        ASSERT_NO_FATAL_FAILURE(new_own_end());
        offered_size_ = offered_size;
        nr_channels_ = nr_channels;
        cb_version_ = kProtocolVersion;
        keepalive_on_ = true;
        auto next_offer = Clock::now();
        bool up = false;
        const bool ok = wait_until(
            [&] {
                const auto now = Clock::now();
                const bool accepted = victim_accepted();
                if (!accepted && now >= next_offer) {
                    send_offer(our_offer().pack());
                    next_offer = now + kOfferEvery;
                }
                answer_offers();
                up = up || take_line("up ").has_value();
                return up && wrote_cb_ && victim_accepted();
            },
            10s);
        ASSERT_TRUE(ok) << "no handshake: up line " << up << ", control block written " << wrote_cb_
                        << ", accepted " << victim_accepted();
        ASSERT_TRUE(alive()) << test::describe_status(victim_->poll_exit());
    }

    /// After the victim dropped its end `old` (a reset, a dead or lost peer): it offers
    /// a fresh one, a new DMB and a new epoch, within `max`.
    void expect_fresh_offer(const VictimEnd& old, milliseconds max = 5s)
    {
        const bool reoffered = wait_until(
            [&] {
                return has_event(kEventOffer, [&](const device::Event& ev) {
                    auto o = Offer::unpack(ev.info);
                    return o && o->token != old.token && o->epoch != old.epoch;
                });
            },
            max);
        ASSERT_TRUE(reoffered) << "no fresh OFFER (a new DMB and epoch) after the victim's end "
                               << std::hex << old.token << " went";
    }

    /// The victim refused our OFFER with `reason` (section 3) and answered it with a RESET
    /// of that reason for `victim_token`, the end it offered us.
    void expect_offer_refused(unsigned long reason, uint64_t victim_token)
    {
        const auto line = expect_line("offer_refused ", 5s);
        ASSERT_TRUE(line) << "the OFFER was not refused";
        EXPECT_EQ(field(*line, "reason"), reason) << *line;
        const auto reset = expect_event(kEventReset, any_event, 5s);
        ASSERT_TRUE(reset) << "no RESET answer";
        EXPECT_EQ(reset->info & 0xFFFF, reason);
        EXPECT_EQ(reset->info & kTokenMask, victim_token);
    }

    /// Still up with us after something it had to ignore: a violation of ours is still
    /// noticed as one (and the link recovers from it).
    void expect_still_up()
    {
        ASSERT_NO_FATAL_FAILURE(set_prod(0, tx_ring_ + 8));
        ASSERT_NO_FATAL_FAILURE(expect_reset(ResetReason::producer, 0));
    }

    /// The victim is still running; else how it ended.
    void assert_alive() { ASSERT_TRUE(alive()) << test::describe_status(victim_->poll_exit()); }

    /// After an attack: the victim printed reset_sent with `reason` (on `channel`), sent
    /// RESET for the epoch it tore down, offered a new DMB and epoch, comes up again after
    /// an honest handshake, and is still running.
    void expect_reset(ResetReason reason, std::optional<uint32_t> channel, milliseconds max = 5s)
    {
        const VictimEnd old = vp_;
        const auto line = expect_line("reset_sent ", max);
        ASSERT_TRUE(line) << "the victim did not reset";
        EXPECT_EQ(field(*line, "reason"), static_cast<unsigned long>(reason)) << *line;
        if (channel) {
            EXPECT_EQ(field(*line, "channel"), *channel) << *line;
        }

        const auto reset = expect_event(
            kEventReset,
            [&](const device::Event& ev) { return (ev.info & kTokenMask) == old.token; }, 5s);
        ASSERT_TRUE(reset) << "no RESET event for the victim's token " << std::hex << old.token;
        EXPECT_EQ(reset->info & 0xFFFF, static_cast<uint64_t>(reason));
        EXPECT_EQ((reset->info >> 16) & 0xFFFF, old.epoch) << "RESET names the torn-down epoch";

        ASSERT_NO_FATAL_FAILURE(expect_fresh_offer(old));
        ASSERT_NO_FATAL_FAILURE(bring_up());
        EXPECT_NE(vp_.token, old.token);
        EXPECT_NE(vp_.epoch, old.epoch);
        EXPECT_EQ(victim_dmbs(), 1U) << "the old DMB must be gone";
        EXPECT_TRUE(alive()) << test::describe_status(victim_->poll_exit());
    }

    // ---- the data path, by hand ---------------------------------------------------------

    /// Stores into the victim's current DMB.
    Result<void> store(uint64_t offset, std::span<const std::byte> data, bool signal)
    {
        return dev_->move(vp_.token, 0, offset, data, signal);
    }

    /// Stores one 8-byte word (a cursor, the keepalive) big-endian into the victim's DMB.
    Result<void> store_word(uint64_t offset, uint64_t value, bool signal)
    {
        std::array<std::byte, 8> raw{};
        store_be64(raw, 0, value);
        return store(offset, raw, signal);
    }

    void store_ok(uint64_t offset, std::span<const std::byte> data, bool signal)
    {
        auto r = store(offset, data, signal);
        ASSERT_TRUE(r) << "store at " << offset << ": " << r.error().message();
    }

    void set_prod(uint32_t c, uint64_t prod)
    {
        auto r = store_word(prod_offset(c), prod, true);
        ASSERT_TRUE(r) << "producer cursor " << c << ": " << r.error().message();
    }

    void set_cons(uint32_t c, uint64_t cons)
    {
        auto r = store_word(cons_offset(c), cons, true);
        ASSERT_TRUE(r) << "consumer cursor " << c << ": " << r.error().message();
    }

    [[nodiscard]] uint64_t ring_base(uint32_t c) const
    {
        return kRingAreaOffset + uint64_t{c} * tx_ring_;
    }

    /// Stores raw bytes at `at` in ring c of the victim's DMB (no signal).
    void put_ring(uint32_t c, std::size_t at, std::span<const std::byte> data)
    {
        ASSERT_LE(at + data.size(), tx_ring_);
        ASSERT_NO_FATAL_FAILURE(store_ok(ring_base(c) + at, data, false));
    }

    /// A cursor of the victim's in our DMB (the victim's producer and consumer cursors).
    uint64_t load_cursor(std::size_t offset) const
    {
        auto* word = reinterpret_cast<uint64_t*>(own_.memory.data() + offset);
        const uint64_t raw = std::atomic_ref<uint64_t>(*word).load(std::memory_order_acquire);
        std::array<std::byte, 8> bytes;
        std::memcpy(bytes.data(), &raw, bytes.size());
        return load_be64(bytes, 0);
    }

    /// Sends one whole message on channel c, honestly (one record, publishing it).
    void send_message(uint32_t c, std::span<const std::byte> message)
    {
        send_piece(c, message, kRecordFirst | kRecordLast);
    }

    /// DMBs the victim's function holds (one per incarnation of its end: no leak).
    std::optional<uint32_t> victim_dmbs() const
    {
        auto functions = sim::list_functions(fabric_);
        if (!functions)
            return std::nullopt;
        for (const auto& f : *functions) {
            if (f.gid == victim_gid_)
                return f.dmbs;
        }
        return std::nullopt;
    }

    /// The token the victim currently offers (from its OFFERs, which stay queued).
    std::optional<uint64_t> offered_token(milliseconds max = 5s)
    {
        std::optional<uint64_t> token;
        wait_until(
            [&] {
                const auto newest = std::find_if(
                    events_.rbegin(), events_.rend(),
                    [this](const device::Event& e) { return from_victim(e, kEventOffer); });
                if (newest == events_.rend())
                    return false;
                token = newest->info & kTokenMask;
                return true;
            },
            max);
        return token;
    }

    /// Keeps pumping for `quiet`: the victim's lines and its events are collected, our
    /// keepalive goes on.
    void idle(milliseconds quiet)
    {
        const auto until = Clock::now() + quiet;
        wait_until([&] { return Clock::now() >= until; }, quiet + 1s);
    }

    /// Stores one record (a piece with `flags`) on channel c, padding to the ring's end
    /// first if it does not fit there, and publishes it once the victim returned room.
    void send_piece(uint32_t c, std::span<const std::byte> payload, uint8_t flags)
    {
        const RecordHeader h{static_cast<uint32_t>(payload.size()), flags};
        const auto fits = [&](std::size_t need) {
            return tx_prod_[c] + need - load_cursor(cons_offset(c)) <= tx_ring_;
        };
        std::size_t at = tx_prod_[c] % tx_ring_;
        if (tx_ring_ - at < h.footprint()) {
            ASSERT_TRUE(wait_until([&] { return fits(tx_ring_ - at); }, 5s)) << "no credit";
            ASSERT_NO_FATAL_FAILURE(put_ring(c, at, record(0, 0)));
            tx_prod_[c] += tx_ring_ - at;
            at = 0;
        }
        ASSERT_TRUE(wait_until([&] { return fits(h.footprint()); }, 5s)) << "no credit";
        ASSERT_NO_FATAL_FAILURE(put_ring(c, at, record(h.length, h.flags)));
        if (!payload.empty()) {
            ASSERT_NO_FATAL_FAILURE(put_ring(c, at + kRecordHeaderSize, payload));
        }
        tx_prod_[c] += h.footprint();
        ASSERT_NO_FATAL_FAILURE(set_prod(c, tx_prod_[c]));
    }

    std::string fabric_;
    uint64_t victim_gid_ = 0;
    std::unique_ptr<device::IsmDevice> dev_;
    std::unique_ptr<test::LinkPeerProcess> victim_;
    std::mt19937_64 rng_;

    // Our end.
    device::Dmb own_;
    uint16_t epoch_ = 0;
    uint8_t nr_channels_ = kChannels;
    uint8_t cb_version_ = kProtocolVersion;
    std::size_t offered_size_ = 0;          // a DMB size to claim in OFFERs instead of the real one
    std::function<void()> before_control_;  // runs between the zeroed cursors and the block
    uint64_t keepalive_ = 0;
    bool keepalive_on_ = true;
    Clock::time_point next_keepalive_{};

    // The victim's end.
    VictimEnd vp_;
    bool have_victim_ = false;
    bool wrote_cb_ = false;
    uint32_t tx_ring_ = 0;  // our rings in the victim's DMB
    std::array<uint64_t, kMaxChannels> tx_prod_{};

    std::deque<device::Event> events_;
    std::size_t line_cursor_ = 0;
};

}  // namespace ism::test::hostile
