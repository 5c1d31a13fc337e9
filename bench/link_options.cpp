// SPDX-License-Identifier: MIT
#include "link_options.hpp"

#include <string>

#include <CLI/CLI.hpp>

namespace ism::bench {

const char* mode_name(link::PollMode mode) noexcept
{
    switch (mode) {
        case link::PollMode::interrupt:
            return "interrupt";
        case link::PollMode::adaptive:
            return "adaptive";
        case link::PollMode::polling:
            return "polling";
    }
    return "?";
}

std::optional<LinkBenchOptions> parse_link_bench_options(int argc, char** argv, int& status)
{
    LinkBenchOptions o;
    bool quick = false;
    std::vector<std::size_t> sizes;
    int64_t poll_window_us = o.poll_window.count();
    std::vector<int64_t> sweep_us;
    CLI::App app{
        "ism-bench-link: one link between two processes on the emulated fabric, each figure "
        "measured between two figures of its yardsticks (docs/benchmarks.md)"};
    app.add_flag("--quick", quick, "Short runs (a smoke test): a few seconds in all");
    app.add_option("--sizes", sizes, "Message sizes, 16 B .. 16 MiB (suffixes K, M)")
        ->delimiter(',')
        ->transform(CLI::AsSizeValue(false))
        ->check(CLI::Range(std::size_t{16}, link::kMaxMessageSize));
    app.add_option("--channels", o.channels, "Channels sending at once (below --link-channels)")
        ->delimiter(',')
        ->check(CLI::Range(1U, link::kMaxChannels - 1));
    std::vector<std::string> modes;
    app.add_option("--modes", modes, "Endpoint modes to run (default: all three)")
        ->delimiter(',')
        ->check(CLI::IsMember({"interrupt", "adaptive", "polling"}));
    app.add_option("--link-channels", o.link_channels,
                   "Channels of the link; each of the DMB's rings is (1 MiB - 1 KiB) / N bytes")
        ->check(CLI::Range(2U, link::kMaxChannels))
        ->capture_default_str();
    app.add_option("--seconds", o.seconds, "Link seconds per throughput point")
        ->check(CLI::Range(0.001, 600.0))
        ->capture_default_str();
    app.add_option("--repetitions", o.repetitions,
                   "Link figures per point, interleaved with the floors (A B A B A)")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    app.add_option("--floor-seconds", o.floor_seconds, "Seconds per floor figure")
        ->check(CLI::Range(0.001, 10.0))
        ->capture_default_str();
    app.add_option("--iterations", o.iterations, "Latency samples per mode")
        ->check(CLI::Range(10, 10'000'000))
        ->capture_default_str();
    app.add_option("--window", o.window, "Sends in flight per channel (default: by size)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{4096}));
    app.add_option("--poll-window-us", poll_window_us, "Adaptive mode's poll window")
        ->check(CLI::Range(int64_t{0}, int64_t{1'000'000}))
        ->capture_default_str();
    app.add_option("--idle-seconds", o.idle_seconds,
                   "Idle CPU: seconds the linked pair idles per mode (0: skip)")
        ->check(CLI::Range(0.0, 600.0))
        ->capture_default_str();
    app.add_option("--sweep-us", sweep_us,
                   "Poll windows to sweep in adaptive mode (64 KiB throughput, latency, idle CPU)")
        ->delimiter(',')
        ->check(CLI::Range(int64_t{0}, int64_t{1'000'000}));
    app.add_flag("--return-memory", o.return_memory,
                 "Leave glibc's malloc returning freed buffers to the kernel (shows the cost)");
    app.add_flag("!--no-throughput", o.throughput, "Skip the throughput points");
    app.add_flag("!--no-latency", o.latency, "Skip the latency points");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        status = app.exit(e);
        return std::nullopt;
    }
    if (quick) {
        o.seconds = 0.05;
        o.floor_seconds = 0.02;
        o.iterations = 600;
        o.idle_seconds = 0.2;
        o.repetitions = std::min(o.repetitions, 2);
    }
    if (!sizes.empty())
        o.sizes = sizes;
    if (!modes.empty()) {
        o.modes.clear();
        for (const auto& m : modes)
            o.modes.push_back(m == "interrupt"  ? link::PollMode::interrupt
                              : m == "adaptive" ? link::PollMode::adaptive
                                                : link::PollMode::polling);
    }
    o.poll_window = std::chrono::microseconds(poll_window_us);
    for (int64_t us : sweep_us)
        o.sweep.emplace_back(us);
    for (uint32_t c : o.channels) {
        if (c >= o.link_channels) {
            std::fprintf(stderr, "--channels %u: the link has %u channels, one for control\n", c,
                         o.link_channels);
            status = 2;
            return std::nullopt;
        }
    }
    return o;
}

}  // namespace ism::bench
