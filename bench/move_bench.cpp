// SPDX-License-Identifier: MIT
// ism-bench-move: move throughput and signal-to-wake-up latency between two processes on
// the emulated fabric, next to the machine's own floors measured in the same run:
// single-thread memcpy of the same sizes (warm) and a bare two-process eventfd ping-pong.
//
// The second process is this program exec'd again (--receiver), joining the fabric by
// name. Throughput counts only bytes the receiver saw arrive in its DMB: every message
// carries its sequence number in its first and last 8 bytes, the receiver checks both
// and returns the count of whole messages as credit.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "exchange_protocol.hpp"
#include "ism/device/ism_device.hpp"
#include "ism/sim/fabric.hpp"

namespace {

using namespace ism;
using namespace ism::bench;
using namespace ism::exchange;

constexpr uint32_t kPhaseThroughput = 0x49530101;  // info: message size
constexpr uint32_t kPhaseLatency = 0x49530102;     // info: iterations
constexpr uint32_t kPhaseDone = 0x49530103;        // info: p50 ns << 32 | p99 ns (latency)
constexpr uint32_t kQuit = 0x49530104;
constexpr std::size_t kMaxWindow = 16;
constexpr int kLatencyIterations = 20000;
// Marks a latency ping (a timestamp) apart from the throughput tags left in the DMB.
constexpr uint64_t kPingMark = uint64_t{1} << 63;

uint64_t load64(const std::byte* p)
{
    return std::atomic_ref<const uint64_t>(*reinterpret_cast<const uint64_t*>(p))
        .load(std::memory_order_acquire);
}

// One side of the benchmark: an emulated ISM function, its DMB and its peer's GID. Not an
// ism::link::Endpoint: this benchmark measures raw moves, below the link.
class BenchFunction {
public:
    BenchFunction(std::string fabric, std::string name, const std::string& peer)
        : fabric_(std::move(fabric)), name_(std::move(name)), peer_gid_(sim::gid_for_name(peer))
    {
    }

    bool open()
    {
        auto file = sim::open_function({.fabric = fabric_, .name = name_});
        if (!file)
            return fail_with("open function", file.error());
        auto dev = device::IsmDevice::open(std::move(*file));
        if (!dev)
            return fail_with("open device", dev.error());
        dev_ = std::move(*dev);
        auto dmb = dev_->register_dmb(kDmbSize, peer_gid_);
        if (!dmb)
            return fail_with("register DMB", dmb.error());
        dmb_ = *dmb;
        return true;
    }

    bool fail_with(const char* what, std::error_code ec)
    {
        std::fprintf(stderr, "%s: %s: %s\n", name_.c_str(), what, ec.message().c_str());
        return false;
    }

    // Blocks until an interrupt, then records DMB signals and events.
    void wait(int timeout_ms = -1)
    {
        pollfd pfd{dev_->irq_fd(), POLLIN, 0};
        if (::poll(&pfd, 1, timeout_ms) <= 0)
            return;
        auto r = dev_->handle_interrupt();
        if (!r)
            return;
        signalled_ += r->dmbs.size();
        events_.insert(events_.end(), r->events.begin(), r->events.end());
    }

    bool take(uint32_t code, device::Event& out)
    {
        for (auto it = events_.begin(); it != events_.end(); ++it) {
            if (it->code == code) {
                out = *it;
                events_.erase(it);
                return true;
            }
        }
        return false;
    }

    device::Event wait_event(uint32_t code)
    {
        device::Event ev;
        while (!take(code, ev))
            wait();
        return ev;
    }

    std::string fabric_;
    std::string name_;
    uint64_t peer_gid_;
    std::unique_ptr<device::IsmDevice> dev_;
    device::Dmb dmb_;
    uint64_t peer_token_ = 0;
    std::size_t signalled_ = 0;
    std::vector<device::Event> events_;
};

// ---- receiver (the exec'd process) ----

// Each phase tags its messages with its own number, so bytes left in the DMB by an
// earlier phase can never be counted again.
uint64_t tag(uint64_t phase, uint64_t seq)
{
    return (phase << 40) | seq;
}

void receive_throughput(BenchFunction& ep, uint64_t info)
{
    const std::size_t size = info & 0xFFFF'FFFF;
    const uint64_t phase = info >> 32;
    const std::size_t window = std::min(kMaxWindow, kDmbSize / size);
    uint64_t expected = 1;
    std::byte credit[8];
    // Messages may have arrived with the interrupt that announced the phase: look first,
    // wait afterwards.
    while (true) {
        bool progressed = false;
        while (true) {
            const std::byte* slot = ep.dmb_.memory.data() + ((expected - 1) % window) * size;
            const uint64_t want = tag(phase, expected);
            if (load64(slot) != want || load64(slot + size - 8) != want)
                break;
            ++expected;
            progressed = true;
        }
        if (progressed) {
            const uint64_t done = expected - 1;
            std::memcpy(credit, &done, sizeof(done));
            (void)ep.dev_->move(ep.peer_token_, 0, 0, credit, true);
        }
        device::Event ev;
        if (ep.take(kPhaseDone, ev))
            return;
        ep.wait();
    }
}

void receive_latency(BenchFunction& ep, int iterations)
{
    std::vector<uint64_t> samples;
    samples.reserve(static_cast<std::size_t>(iterations));
    uint64_t last = 0;
    std::byte pong[8];
    while (samples.size() < static_cast<std::size_t>(iterations)) {
        const uint64_t sent = load64(ep.dmb_.memory.data());
        if (sent == last || (sent & kPingMark) == 0) {  // not a ping, or one already seen
            ep.wait();
            continue;
        }
        samples.push_back(now_ns() - (sent & ~kPingMark));
        last = sent;
        std::memcpy(pong, &sent, sizeof(sent));
        (void)ep.dev_->move(ep.peer_token_, 0, 0, pong, true);
    }
    const auto p = percentiles(samples);
    const auto p50 = static_cast<uint64_t>(p.p50_us * 1000);
    const auto p99 = static_cast<uint64_t>(p.p99_us * 1000);
    (void)ep.dev_->signal_event(ep.peer_gid_, kPhaseDone, (p50 << 32) | p99);
}

int run_receiver(const std::string& fabric)
{
    BenchFunction ep(fabric, "bench-rx", "bench-tx");
    if (!ep.open())
        return 1;
    const device::Event hello = ep.wait_event(kHello);
    ep.peer_token_ = hello.info;
    (void)ep.dev_->signal_event(ep.peer_gid_, kHelloAck, ep.dmb_.token);
    while (true) {
        device::Event ev;
        if (ep.take(kHello, ev))
            (void)ep.dev_->signal_event(ep.peer_gid_, kHelloAck, ep.dmb_.token);
        else if (ep.take(kPhaseThroughput, ev))
            receive_throughput(ep, ev.info);
        else if (ep.take(kPhaseLatency, ev))
            receive_latency(ep, static_cast<int>(ev.info));
        else if (ep.take(kQuit, ev))
            return 0;
        else
            ep.wait();
    }
}

// ---- sender (the process the user starts) ----

double send_throughput(BenchFunction& ep, std::size_t size, std::size_t total, uint64_t phase)
{
    const std::size_t window = std::min(kMaxWindow, kDmbSize / size);
    const uint64_t messages = std::max<uint64_t>(total / size, 2 * window);
    std::vector<std::byte> msg(size, std::byte{0x5A});
    std::memset(ep.dmb_.memory.data(), 0, 8);
    (void)ep.dev_->signal_event(ep.peer_gid_, kPhaseThroughput, (phase << 32) | size);
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t acked = 0;
    for (uint64_t seq = 1; seq <= messages; ++seq) {
        while (seq - acked > window) {
            ep.wait();
            acked = load64(ep.dmb_.memory.data());
        }
        const uint64_t t = tag(phase, seq);
        std::memcpy(msg.data(), &t, 8);
        std::memcpy(msg.data() + size - 8, &t, 8);
        (void)ep.dev_->move(ep.peer_token_, 0, ((seq - 1) % window) * size, msg, true);
    }
    while (acked < messages) {
        ep.wait();
        acked = load64(ep.dmb_.memory.data());
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    (void)ep.dev_->signal_event(ep.peer_gid_, kPhaseDone, 0);
    return static_cast<double>(acked * size) / secs;
}

Percentiles send_latency(BenchFunction& ep, int iterations)
{
    (void)ep.dev_->signal_event(ep.peer_gid_, kPhaseLatency, static_cast<uint64_t>(iterations));
    std::byte ping[8];
    for (int i = 0; i < iterations; ++i) {
        const uint64_t t = now_ns() | kPingMark;
        std::memcpy(ping, &t, sizeof(t));
        (void)ep.dev_->move(ep.peer_token_, 0, 0, ping, true);
        while (load64(ep.dmb_.memory.data()) != t)
            ep.wait(1000);
    }
    const device::Event done = ep.wait_event(kPhaseDone);
    return {static_cast<double>(done.info >> 32) / 1000.0,
            static_cast<double>(done.info & 0xFFFF'FFFF) / 1000.0};
}

int run_sender(const char* self)
{
    const std::string fabric = "bench-" + std::to_string(::getpid());
    BenchFunction ep(fabric, "bench-tx", "bench-rx");
    if (!ep.open())
        return 1;
    const pid_t rx = spawn_self(self, {"--receiver", fabric});
    if (rx < 0)
        return 1;
    device::Event ack;
    while (!ep.take(kHelloAck, ack)) {
        (void)ep.dev_->signal_event(ep.peer_gid_, kHello, ep.dmb_.token);
        ep.wait(50);
    }
    ep.peer_token_ = ack.info;

    std::printf(
        "Move throughput, two processes on the emulated fabric (bytes verified in the "
        "receiver's DMB)\n");
    std::printf("%10s %14s %14s %8s\n", "size", "ISM MB/s", "memcpy MB/s", "ratio");
    uint64_t phase = 0;
    for (std::size_t size : {4096UL, 16384UL, 65536UL, 262144UL, 1048576UL}) {
        const double ism = send_throughput(ep, size, std::size_t{512} << 20, ++phase);
        const double mc = memcpy_rate(size, std::size_t{4} << 30);
        std::printf("%10zu %14.0f %14.0f %7.1f%%\n", size, ism / 1e6, mc / 1e6, 100 * ism / mc);
    }

    const Percentiles ism = send_latency(ep, kLatencyIterations);
    auto floor_samples = eventfd_ping_pong(kLatencyIterations);
    const Percentiles floor = percentiles(floor_samples.wake_ns);
    std::printf(
        "\nSignal-to-wake-up latency (8-byte move with signal flag -> receiver's "
        "event loop), one way\n");
    std::printf("%-28s %10s %10s\n", "", "p50 us", "p99 us");
    std::printf("%-28s %10.2f %10.2f\n", "ISM move + interrupt", ism.p50_us, ism.p99_us);
    std::printf("%-28s %10.2f %10.2f\n", "eventfd ping-pong (floor)", floor.p50_us, floor.p99_us);
    std::printf("%-28s %9.2fx %9.2fx\n", "ratio to floor", ism.p50_us / floor.p50_us,
                ism.p99_us / floor.p99_us);

    (void)ep.dev_->signal_event(ep.peer_gid_, kQuit, 0);
    ::waitpid(rx, nullptr, 0);
    ep.dev_.reset();
    (void)sim::remove_fabric(fabric);
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc == 3 && std::strcmp(argv[1], "--receiver") == 0)
        return run_receiver(argv[2]);
    if (argc != 1) {
        std::fprintf(stderr, "usage: %s\n", argv[0]);
        return 2;
    }
    return run_sender(argv[0]);
}
