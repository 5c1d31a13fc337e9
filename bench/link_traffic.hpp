// SPDX-License-Identifier: MIT
// Everything ism-bench-link does through the link's Channel API, in one place: the
// control channel, the throughput flows, the peer's receiver and echo, the ping-pong.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "link_messages.hpp"
#include "link_session.hpp"

namespace ism::bench {

inline constexpr std::size_t kLatencySize = 64;
inline constexpr int kLatencyWarmup = 200;

/// Control messages on the link's last channel.
class ControlChannel {
public:
    explicit ControlChannel(Session& s);
    ~ControlChannel() = default;
    ControlChannel(const ControlChannel&) = delete;
    ControlChannel& operator=(const ControlChannel&) = delete;

    void send(const Control& c);
    /// The next control message from the peer (waits up to `timeout`).
    std::optional<Control> next(Clock::duration timeout = kStepTimeout);
    /// Sends `c` and waits for the answer, which must be `answer`.
    std::optional<Control> ask(const Control& c, Cmd answer);
    /// Waits until every control message sent was consumed by the peer.
    bool flush();

private:
    void receive();

    Session& s_;
    link::Channel& ch_;
    std::deque<Control> received_;
    std::size_t in_flight_ = 0;
};

struct ThroughputResult {
    double bytes_per_s = 0;
    double messages_per_s = 0;
};

/// Keeps `window` sends of `size` bytes in flight on each of channels 0..`channels`-1
/// for `seconds`, and checks the peer verified exactly what was sent.
std::optional<ThroughputResult> measure_throughput(Session& s, ControlChannel& control,
                                                   uint32_t channels, std::size_t size,
                                                   std::size_t window, double seconds,
                                                   uint64_t phase);

struct PingPongResult {
    std::vector<uint64_t> rounds;  // ns each
    // What the two processes did meanwhile, warm-up included: a ping-pong that keeps
    // both ends polling has no sleeps, no interrupts and next to no context switches.
    link::EndpointStats ours;
    uint64_t our_switches = 0;
    Control peer;  // its report: sleeps, interrupts, switches
};

/// 64-byte ping-pong on channel 0: `iterations` round trips (after a warm-up).
std::optional<PingPongResult> measure_ping_pong(Session& s, ControlChannel& control,
                                                int iterations);

/// The peer's side of the data channels: verifies what arrives, echoes on request. It
/// receives as applications do, into its own buffers (of the largest message), copied
/// once out of the ring.
class Receiver {
public:
    explicit Receiver(Session& s);
    /// Handles the data-related commands (throughput, latency, stop); false for others.
    bool handle(const Control& c, ControlChannel& control);

private:
    void receive(uint32_t c);
    void on_message(uint32_t c, std::span<std::byte> m);

    Session& s_;
    // Per channel, two receive buffers: an echo goes out of one while the next ping
    // arrives in the other. Allocated, not zeroed: only the bytes received are touched.
    std::vector<std::array<std::unique_ptr<std::byte[]>, 2>> buffers_;
    std::vector<uint8_t> current_;  // which of a channel's buffers receives next
    link::EndpointStats echo_start_;
    uint64_t echo_switches_ = 0;
    uint64_t phase_ = 0;
    std::size_t size_ = 0;
    bool echo_ = false;
    std::vector<uint64_t> expected_;
    uint64_t messages_ = 0;
    uint64_t bytes_ = 0;
    uint64_t bad_ = 0;
};

}  // namespace ism::bench
