// SPDX-License-Identifier: MIT
#include "link_traffic.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>

#include "bench_common.hpp"

namespace ism::bench {

using link::Channel;
using link::ChannelMode;

// ---- control ----

ControlChannel::ControlChannel(Session& s)
    : s_(s), ch_(s.link().open_channel(s.data_channels(), ChannelMode::message))
{
    receive();
}

void ControlChannel::send(const Control& c)
{
    auto buf = std::make_shared<std::array<std::byte, sizeof(Control)>>();
    std::memcpy(buf->data(), &c, sizeof(c));
    ++in_flight_;
    ch_.async_send(*buf, [this, buf](std::error_code ec) {
        --in_flight_;
        if (ec)
            s_.fail("send control", ec);
    });
}

std::optional<Control> ControlChannel::next(Clock::duration timeout)
{
    if (!s_.run_until([this] { return !received_.empty(); }, timeout))
        return std::nullopt;
    const Control c = received_.front();
    received_.pop_front();
    return c;
}

std::optional<Control> ControlChannel::ask(const Control& c, Cmd answer)
{
    send(c);
    auto a = next();
    if (a && a->cmd != answer) {
        s_.fail("unexpected answer " + std::to_string(static_cast<uint32_t>(a->cmd)) +
                " to command " + std::to_string(static_cast<uint32_t>(c.cmd)));
        return std::nullopt;
    }
    return a;
}

bool ControlChannel::flush()
{
    return s_.run_until([this] { return in_flight_ == 0; }, kStepTimeout);
}

void ControlChannel::receive()
{
    ch_.async_receive([this](std::error_code ec, std::vector<std::byte> m) {
        if (ec) {
            s_.fail("receive control", ec);
            return;
        }
        Control c;
        if (m.size() != sizeof(c)) {
            s_.fail("malformed control message");
            return;
        }
        std::memcpy(&c, m.data(), sizeof(c));
        received_.push_back(c);
        receive();
    });
}

// ---- throughput ----

namespace {

// Every new send is issued from a completion handler, so that sends completed by one
// credit update go out together under one signal.
class ThroughputRun {
public:
    ThroughputRun(Session& s, uint32_t channels, std::size_t size, std::size_t window,
                  uint64_t phase)
        : s_(s), phase_(phase)
    {
        flows_.resize(channels);
        for (uint32_t c = 0; c < channels; ++c) {
            Flow& f = flows_[c];
            f.index = c;
            f.buffers.resize(window);
            for (auto& b : f.buffers) {
                b.resize(size);
                fill(b);
            }
        }
    }

    std::optional<double> run(double seconds)
    {
        start_ = Clock::now();
        deadline_ = start_ + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(seconds));
        last_ = start_;
        for (auto& f : flows_) {
            for (std::size_t slot = 0; slot < f.buffers.size(); ++slot)
                issue(f, slot);
        }
        if (!s_.run_until([this] { return in_flight_ == 0; },
                          kStepTimeout + std::chrono::seconds(static_cast<long>(seconds))))
            return std::nullopt;
        return std::chrono::duration<double>(last_ - start_).count();
    }

    [[nodiscard]] uint64_t messages() const noexcept
    {
        uint64_t n = 0;
        for (const auto& f : flows_)
            n += f.completed;
        return n;
    }

private:
    struct Flow {
        uint32_t index = 0;
        std::vector<std::vector<std::byte>> buffers;
        uint64_t next_seq = 1;
        uint64_t completed = 0;
    };

    void issue(Flow& f, std::size_t slot)
    {
        auto& b = f.buffers[slot];
        stamp(b, tag(phase_, f.index, f.next_seq++));
        ++in_flight_;
        s_.link()
            .open_channel(f.index, ChannelMode::message)
            .async_send(b, [this, &f, slot](std::error_code ec) {
                --in_flight_;
                if (ec) {
                    s_.fail("send", ec);
                    return;
                }
                ++f.completed;
                last_ = Clock::now();
                // Sends complete in order: this slot's buffer is free again.
                if (last_ < deadline_)
                    issue(f, slot);
            });
    }

    Session& s_;
    uint64_t phase_;
    std::vector<Flow> flows_;
    std::size_t in_flight_ = 0;
    Clock::time_point start_{};
    Clock::time_point deadline_{};
    Clock::time_point last_{};
};

}  // namespace

std::optional<ThroughputResult> measure_throughput(Session& s, ControlChannel& control,
                                                   uint32_t channels, std::size_t size,
                                                   std::size_t window, double seconds,
                                                   uint64_t phase)
{
    if (!control.ask({.cmd = Cmd::throughput, .channels = channels, .phase = phase, .size = size},
                     Cmd::ready))
        return std::nullopt;
    auto& run = s.keep(std::make_shared<ThroughputRun>(s, channels, size, window, phase));
    const auto secs = run.run(seconds);
    if (!secs)
        return std::nullopt;
    auto report = control.ask({.cmd = Cmd::stop}, Cmd::report);
    if (!report)
        return std::nullopt;
    const uint64_t sent = run.messages();
    if (report->bad != 0 || report->messages != sent || report->bytes != sent * size) {
        s.fail("verification failed: sent " + std::to_string(sent) + " messages, peer verified " +
               std::to_string(report->messages) + " (" + std::to_string(report->bytes) +
               " bytes), " + std::to_string(report->bad) + " bad");
        return std::nullopt;
    }
    return ThroughputResult{static_cast<double>(report->bytes) / *secs,
                            static_cast<double>(report->messages) / *secs};
}

// ---- latency ----

std::optional<PingPongResult> measure_ping_pong(Session& s, ControlChannel& control, int iterations)
{
    if (!control.ask({.cmd = Cmd::latency}, Cmd::ready))
        return std::nullopt;
    struct State {
        std::vector<std::byte> ping = std::vector<std::byte>(kLatencySize);
        std::array<std::byte, kLatencySize> pong{};
        bool sent = false;
        bool got = false;
        bool good = true;
        uint64_t t1 = 0;
    };
    auto st = std::make_shared<State>();
    s.keep(st);
    fill(st->ping);
    PingPongResult out;
    out.rounds.reserve(static_cast<std::size_t>(iterations));
    const link::EndpointStats before = s.endpoint().stats();
    const uint64_t switches = context_switches_self();
    Channel& ch = s.link().open_channel(0, ChannelMode::message);
    for (int i = 0; i < kLatencyWarmup + iterations; ++i) {
        State& x = *st;
        x.sent = x.got = false;
        const auto seq = static_cast<uint64_t>(i) + 1;
        const uint64_t t0 = now_ns();
        stamp(x.ping, tag(1, 0, seq));
        ch.async_receive(x.pong, [p = st, seq](std::error_code ec, std::size_t n) {
            p->t1 = now_ns();
            p->got = true;
            p->good = !ec && check(std::span(p->pong).first(std::min(n, kLatencySize)),
                                   kLatencySize, tag(1, 0, seq), seq);
        });
        ch.async_send(x.ping, [p = st](std::error_code ec) {
            p->sent = true;
            p->good = p->good && !ec;
        });
        if (!s.run_until([&x] { return x.sent && x.got; }, kStepTimeout))
            return std::nullopt;
        if (!x.good) {
            s.fail("bad echo");
            return std::nullopt;
        }
        if (i >= kLatencyWarmup)
            out.rounds.push_back(x.t1 - t0);
    }
    out.our_switches = context_switches_self() - switches;
    const auto& after = s.endpoint().stats();
    out.ours = {after.interrupts - before.interrupts,   after.poll_windows - before.poll_windows,
                after.sleeps - before.sleeps,           after.poll_passes - before.poll_passes,
                after.busy_passes - before.busy_passes, after.timer_runs - before.timer_runs};
    auto report = control.ask({.cmd = Cmd::stop}, Cmd::report);
    if (!report || report->messages !=
                       static_cast<uint64_t>(kLatencyWarmup) + static_cast<uint64_t>(iterations)) {
        s.fail("peer echoed a different number of pings");
        return std::nullopt;
    }
    out.peer = *report;
    return out;
}

// ---- the peer's receiver ----

Receiver::Receiver(Session& s)
    : s_(s),
      buffers_(s.data_channels()),
      current_(s.data_channels(), 0),
      expected_(s.data_channels(), 1)
{
    for (uint32_t c = 0; c < s_.data_channels(); ++c) {
        for (auto& b : buffers_[c])
            b = std::make_unique_for_overwrite<std::byte[]>(link::kMaxMessageSize);
        receive(c);
    }
}

bool Receiver::handle(const Control& c, ControlChannel& control)
{
    switch (c.cmd) {
        case Cmd::throughput:
            phase_ = c.phase;
            size_ = c.size;
            std::fill(expected_.begin(), expected_.end(), 1);
            messages_ = bytes_ = bad_ = 0;
            control.send({.cmd = Cmd::ready});
            return true;
        case Cmd::latency:
            echo_ = true;
            messages_ = bytes_ = bad_ = 0;
            echo_start_ = s_.endpoint().stats();
            echo_switches_ = context_switches_self();
            control.send({.cmd = Cmd::ready});
            return true;
        case Cmd::stop: {
            Control r{.cmd = Cmd::report, .messages = messages_, .bytes = bytes_, .bad = bad_};
            if (echo_) {
                const auto& now = s_.endpoint().stats();
                r.sleeps = now.sleeps - echo_start_.sleeps;
                r.interrupts = now.interrupts - echo_start_.interrupts;
                r.switches = context_switches_self() - echo_switches_;
            }
            control.send(r);
            phase_ = 0;
            echo_ = false;
            return true;
        }
        default:
            return false;
    }
}

void Receiver::receive(uint32_t c)
{
    std::byte* buffer = buffers_[c][current_[c]].get();
    s_.link()
        .open_channel(c, ChannelMode::message)
        .async_receive(std::span(buffer, link::kMaxMessageSize),
                       [this, c, buffer](std::error_code ec, std::size_t n) {
                           if (ec) {
                               s_.fail("receive", ec);
                               return;
                           }
                           on_message(c, std::span(buffer, n));
                           receive(c);
                       });
}

void Receiver::on_message(uint32_t c, std::span<std::byte> m)
{
    if (echo_ && c == 0) {
        ++messages_;
        bytes_ += m.size();
        // The echo goes out of this buffer; the next ping comes into the other one. The
        // echo is consumed before the ping after next can be sent, so this buffer is free
        // again by the time it receives.
        current_[c] ^= 1;
        s_.link().open_channel(0, ChannelMode::message).async_send(m, [this](std::error_code ec) {
            if (ec)
                s_.fail("send echo", ec);
        });
        return;
    }
    const uint64_t seq = expected_[c]++;
    if (phase_ != 0 && check(m, size_, tag(phase_, c, seq), seq)) {
        ++messages_;
        bytes_ += m.size();
    } else {
        ++bad_;
    }
}

}  // namespace ism::bench
