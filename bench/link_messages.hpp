// SPDX-License-Identifier: MIT
// What ism-bench-link's two processes send each other: control messages on the link's
// last channel, and tagged data on the others. Every data message carries a phase-,
// channel- and sequence-tagged word at both ends and a pattern the receiver samples at a
// pseudo-random place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace ism::bench {

enum class Cmd : uint32_t {
    throughput = 1,  // -> ready; data follows on `channels` channels until stop
    latency,         // -> ready; echo channel 0 until stop
    stop,            // -> report
    ready,
    report,
    quit,        // -> ready, then the peer exits
    pause,       // -> ready, then the peer blocks until the benchmark writes its pause pipe
    idle_begin,  // -> ready; the peer notes its CPU time
    idle_end,    // -> report: bytes = the peer's CPU nanoseconds since idle_begin
    hello,       // -> report: bytes = the token of the peer's yardstick DMB
};

struct Control {
    Cmd cmd{};
    uint32_t channels = 0;
    uint64_t phase = 0;
    uint64_t size = 0;
    uint64_t messages = 0;  // report: messages verified
    uint64_t bytes = 0;     // report: their bytes
    uint64_t bad = 0;       // report: messages that failed a check
    // report after a ping-pong: what the peer's Endpoint and scheduler did meanwhile
    uint64_t sleeps = 0;      // poll windows that ended (the interrupt re-armed)
    uint64_t interrupts = 0;  // interrupt wake-ups
    uint64_t switches = 0;    // context switches, voluntary and not
};

inline uint64_t tag(uint64_t phase, uint32_t channel, uint64_t seq)
{
    return (phase << 48) | (uint64_t{channel} << 40) | seq;
}

inline std::byte pattern(std::size_t i)
{
    return static_cast<std::byte>((i * 131 + 7) & 0xFF);
}

// Where the receiver samples the pattern: 8 bytes between the two tags (size >= 24).
inline std::size_t sample_offset(uint64_t seq, std::size_t size)
{
    return 8 + static_cast<std::size_t>((seq * 0x9E37'79B9'7F4A'7C15ULL) >> 40) % (size - 23);
}

inline void fill(std::vector<std::byte>& b)
{
    for (std::size_t i = 0; i < b.size(); ++i)
        b[i] = pattern(i);
}

inline void stamp(std::vector<std::byte>& b, uint64_t t)
{
    const uint64_t end = ~t;
    std::memcpy(b.data(), &t, 8);
    std::memcpy(b.data() + b.size() - 8, &end, 8);
}

inline bool check(std::span<const std::byte> m, std::size_t size, uint64_t t, uint64_t seq)
{
    if (m.size() != size)
        return false;
    uint64_t first = 0;
    uint64_t last = 0;
    std::memcpy(&first, m.data(), 8);
    std::memcpy(&last, m.data() + size - 8, 8);
    if (first != t || last != ~t)
        return false;
    if (size < 24)
        return true;  // nothing between the tags
    const std::size_t at = sample_offset(seq, size);
    for (std::size_t i = at; i < at + 8; ++i) {
        if (m[i] != pattern(i))
            return false;
    }
    return true;
}

}  // namespace ism::bench
