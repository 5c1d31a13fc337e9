// SPDX-License-Identifier: MIT
// Everything ism-bench-link does through the link's Channel API, in one place: the
// control channel, the throughput flows, the peer's receiver and echo, the ping-pong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
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

/// 64-byte ping-pong on channel 0: `iterations` round trips (after a warm-up), in ns.
std::optional<std::vector<uint64_t>> measure_ping_pong(Session& s, ControlChannel& control,
                                                       int iterations);

/// The peer's side of the data channels: verifies what arrives, echoes on request.
class Receiver {
public:
    explicit Receiver(Session& s);
    /// Handles the data-related commands (throughput, latency, stop); false for others.
    bool handle(const Control& c, ControlChannel& control);

private:
    void receive(uint32_t c);
    void on_message(uint32_t c, std::vector<std::byte>&& m);

    Session& s_;
    uint64_t phase_ = 0;
    std::size_t size_ = 0;
    bool echo_ = false;
    std::vector<uint64_t> expected_;
    uint64_t messages_ = 0;
    uint64_t bytes_ = 0;
    uint64_t bad_ = 0;
};

}  // namespace ism::bench
