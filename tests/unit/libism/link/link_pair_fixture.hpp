// SPDX-License-Identifier: MIT
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// Two links joined by in-memory ports, with time and event delivery under the test's
// control: LinkInMemory, the fixture of the link's unit tests.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "ism/link/link.hpp"

namespace ism::link::test {

using namespace std::chrono_literals;

inline std::vector<std::byte> pattern(std::size_t n, unsigned seed)
{
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = static_cast<std::byte>((i * 131 + seed * 7 + (i >> 8)) & 0xFF);
    return v;
}

// One side's view of the fabric: its DMBs (written by the other side), its event queue.
class MemPort final : public Port {
public:
    explicit MemPort(uint64_t token_base) : next_token_(token_base) {}

    Result<OwnDmb> register_dmb(std::size_t size) override
    {
        const uint64_t token = (next_token_++) << 32;
        auto& mem = dmbs_[token];
        mem.assign(size / 8, 0);
        return OwnDmb{token, std::as_writable_bytes(std::span(mem))};
    }
    void unregister_dmb(uint64_t token) override { dmbs_.erase(token); }

    Result<void> store(uint64_t token, uint64_t offset, std::span<const std::byte> data,
                       bool signal) override
    {
        ++stores;
        if (peer == nullptr || peer->dead)
            return fail(errc::hw_unknown_token);
        auto it = peer->dmbs_.find(token);
        if (it == peer->dmbs_.end())
            return fail(errc::hw_unknown_token);
        auto mem = std::as_writable_bytes(std::span(it->second));
        if (offset > mem.size() || data.size() > mem.size() - offset)
            return fail(errc::hw_bad_address);
        std::memcpy(mem.data() + offset, data.data(), data.size());
        if (signal)
            peer->signalled = true;
        return {};
    }

    Result<void> send_event(uint32_t code, uint64_t info) override
    {
        sent_events.emplace_back(code, info);
        if (peer != nullptr && !peer->dead && !drop_events)
            peer->events.emplace_back(code, info);
        return {};
    }

    std::span<std::byte> dmb(uint64_t token)
    {
        return std::as_writable_bytes(std::span(dmbs_.at(token)));
    }

    MemPort* peer = nullptr;
    bool dead = false;
    bool hung = false;  // its process stopped: memory still there, nothing runs
    bool drop_events = false;
    bool signalled = false;
    std::deque<std::pair<uint32_t, uint64_t>> events;
    std::vector<std::pair<uint32_t, uint64_t>> sent_events;
    uint64_t stores = 0;

private:
    uint64_t next_token_;
    std::map<uint64_t, std::vector<uint64_t>> dmbs_;
};

struct Side {
    Side(uint64_t token_base, LinkOptions o) : port(token_base), link(port, o)
    {
        link.set_event_handler([this](const LinkEvent& e) { seen.push_back(e); });
    }
    MemPort port;
    std::vector<LinkEvent> seen;  // before the link: its destructor still reports
    Link link;

    [[nodiscard]] bool saw(LinkEvent::Kind k) const
    {
        return std::any_of(seen.begin(), seen.end(),
                           [k](const LinkEvent& e) { return e.kind == k; });
    }
    [[nodiscard]] const LinkEvent* last(LinkEvent::Kind k) const
    {
        const auto it = std::find_if(seen.rbegin(), seen.rend(),
                                     [k](const LinkEvent& e) { return e.kind == k; });
        return it == seen.rend() ? nullptr : &*it;
    }
};

class LinkInMemory : public ::testing::Test {
public:
    LinkInMemory() = default;
    LinkInMemory(const LinkInMemory&) = delete;
    LinkInMemory& operator=(const LinkInMemory&) = delete;
    LinkInMemory(LinkInMemory&&) = delete;
    LinkInMemory& operator=(LinkInMemory&&) = delete;

    ~LinkInMemory() override
    {
        // Each link's destructor shuts it down (RESET to a peer that may be gone first).
        for (Side* s : {a_.get(), b_.get()})
            if (s != nullptr)
                s->port.peer = nullptr;
    }

protected:
    static LinkOptions options(uint32_t channels = 16, std::size_t dmb = 256 * 1024)
    {
        LinkOptions o;
        o.dmb_size = dmb;
        o.channels = channels;
        return o;
    }

    void make(LinkOptions oa = options(), LinkOptions ob = options())
    {
        a_ = std::make_unique<Side>(1, oa);
        b_ = std::make_unique<Side>(0x100, ob);
        wire();
    }
    void wire()
    {
        a_->port.peer = &b_->port;
        b_->port.peer = &a_->port;
    }

    // Delivers events and signals until nothing moves.
    void pump(int rounds = 10000)
    {
        for (int i = 0; i < rounds; ++i) {
            bool any = false;
            for (Side* s : {a_.get(), b_.get()}) {
                if (s == nullptr || s->port.dead || s->port.hung)
                    continue;
                while (!s->port.events.empty()) {
                    auto [code, info] = s->port.events.front();
                    s->port.events.pop_front();
                    s->link.on_event(code, info, now_);
                    any = true;
                }
                if (s->port.signalled) {
                    s->port.signalled = false;
                    s->link.poll(now_);
                    any = true;
                }
            }
            if (!any)
                return;
        }
        FAIL() << "the pair never settled";
    }

    void advance(std::chrono::milliseconds d)
    {
        now_ += d;
        for (Side* s : {a_.get(), b_.get()})
            if (s != nullptr && !s->port.dead && !s->port.hung)
                s->link.tick(now_);
        pump();
    }

    void start_both()
    {
        ASSERT_TRUE(a_->link.start(now_));
        ASSERT_TRUE(b_->link.start(now_));
        pump();
        ASSERT_TRUE(a_->link.up());
        ASSERT_TRUE(b_->link.up());
    }

    Clock::time_point now_ = Clock::time_point{} + 1000h;
    std::vector<std::byte> tx_bytes_;
    std::unique_ptr<Side> a_;
    std::unique_ptr<Side> b_;
};

}  // namespace ism::link::test
