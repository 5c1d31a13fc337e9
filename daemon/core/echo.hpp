// SPDX-License-Identifier: MIT
// EchoResponder: the core's own channel (0) on every link, for `ismctl check`.
//
// Messages start with one type byte: PING is sent back as PONG with the same payload,
// SINK is counted and dropped (throughput), PONG goes to the local check that waits for
// it. Both sides run one, so either can check the other.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <nlohmann/json.hpp>

#include "ism/link/link.hpp"

namespace ismd {

inline constexpr uint32_t kCoreChannel = 0;

struct CheckOptions {
    uint32_t count = 1000;           // round trips
    uint32_t size = 64;              // bytes per round trip
    uint32_t bulk_bytes = 64 << 20;  // bytes sent for the throughput figure
    uint32_t bulk_message = 64 << 10;
};

class EchoResponder {
public:
    /// The link is going away: a running check fails at its next step.
    void detach() noexcept { *alive_ = false; }

    EchoResponder(ism::link::Link& link, boost::asio::any_io_executor executor);
    ~EchoResponder();
    EchoResponder(const EchoResponder&) = delete;
    EchoResponder& operator=(const EchoResponder&) = delete;

    /// Measures round trips and throughput to the peer: {"rtt_us": {p50, p90, p99, max},
    /// "throughput_mbps": N, ...}. Throws ControlError when the link is down or fails.
    boost::asio::awaitable<nlohmann::json> check(const CheckOptions& options);

private:
    void arm();

    ism::link::Link& link_;
    ism::link::Channel& channel_;
    boost::asio::any_io_executor executor_;
    std::function<void(std::vector<std::byte>)> pong_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    bool checking_ = false;
};

}  // namespace ismd
