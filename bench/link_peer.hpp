// SPDX-License-Identifier: MIT
// ism-bench-link's second process.
#pragma once

#include <chrono>
#include <string>

#include "ism/link/endpoint.hpp"

namespace ism::bench {

struct PeerArgs {
    std::string fabric;
    std::string index;  // names the pair: functions "a<index>" and "b<index>"
    link::PollMode mode = link::PollMode::interrupt;
    std::chrono::microseconds poll_window{};
    uint32_t link_channels = 0;
    int pause_fd = -1;  // read end of the pipe the peer blocks on while paused
};

int run_peer(const PeerArgs& args);

}  // namespace ism::bench
