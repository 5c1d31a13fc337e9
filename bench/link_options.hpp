// SPDX-License-Identifier: MIT
// ism-bench-link's command line.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ism/link/endpoint.hpp"

namespace ism::bench {

struct LinkBenchOptions {
    std::vector<std::size_t> sizes{64,       256,      1 << 10,   4 << 10,
                                   16 << 10, 64 << 10, 256 << 10, 1 << 20};
    std::vector<uint32_t> channels{1, 8};
    std::vector<link::PollMode> modes{link::PollMode::interrupt, link::PollMode::adaptive,
                                      link::PollMode::polling};
    uint32_t link_channels = link::LinkOptions{}.channels;  // the link's: sets the ring size
    double seconds = 1.0;        // link time per throughput point, over all repetitions
    int repetitions = 3;         // link figures per point, each between two floor figures
    double floor_seconds = 0.1;  // per floor figure
    int iterations = 20000;      // latency samples per mode, over all repetitions
    std::size_t window = 0;      // sends in flight per channel; 0: by size
    std::chrono::microseconds poll_window = link::kDefaultPollWindow;
    double idle_seconds = 2.0;                     // idle CPU: how long the linked pair idles
    std::vector<std::chrono::microseconds> sweep;  // poll windows to sweep (adaptive mode)
    bool throughput = true;
    bool latency = true;
    // glibc's default: freed message buffers go back to the kernel, and every received
    // message faults its pages in again (the 8-channel 1 MiB drop, docs/benchmarks.md).
    bool return_memory = false;
};

/// Parses argv; prints help or what was wrong and returns the exit status to use when it
/// did not yield options.
std::optional<LinkBenchOptions> parse_link_bench_options(int argc, char** argv, int& status);

[[nodiscard]] const char* mode_name(link::PollMode mode) noexcept;

}  // namespace ism::bench
