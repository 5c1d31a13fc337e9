// SPDX-License-Identifier: MIT
// ism-bench-link: throughput, latency and idle CPU of one link (ism/link) between two
// processes on the emulated fabric, in each Endpoint mode, every figure measured between
// two figures of the yardsticks it is compared with (A B A), on the same two processes:
//  - throughput: a bare cross-core pipe with the link's rings and piece size, the device's
//    store rate into the peer process (IsmDevice::move: the ceiling), and for messages of
//    1 MiB and more memcpy from and to DRAM;
//  - latency: a bare two-process spin ping-pong (adaptive and polling modes) or eventfd
//    ping-pong (interrupt mode);
//  - idle CPU: what the two linked processes use while nothing is sent.
// Ratios are medians over the repetitions of the ratio of each link figure to the mean of
// the yardstick figures just before and just after it. The peer pauses (blocked on a pipe)
// while a yardstick runs. docs/benchmarks.md explains the figures.

#include <fcntl.h>
#include <malloc.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "ism/sim/fabric.hpp"
#include "link_options.hpp"
#include "link_peer.hpp"
#include "link_traffic.hpp"
#include "yardsticks.hpp"

namespace {

using namespace ism;
using namespace ism::bench;
using link::PollMode;

constexpr std::size_t kMaxWindow = 256;
// Yardstick figures before and after a link figure further apart than this: the machine
// changed under the measurement (vCPU placement, other load), and the row says so.
constexpr double kDisturbed = 1.5;

std::string size_name(std::size_t size)
{
    if (size >= (1 << 20) && size % (1 << 20) == 0)
        return std::to_string(size >> 20) + " MiB";
    if (size >= (1 << 10) && size % (1 << 10) == 0)
        return std::to_string(size >> 10) + " KiB";
    return std::to_string(size) + " B";
}

std::size_t window_for(const LinkBenchOptions& o, std::size_t size, std::size_t ring)
{
    if (o.window != 0)
        return o.window;
    // About two rings' worth in flight: the ring stays full while credit comes back.
    return std::clamp<std::size_t>(2 * ring / size, 2, kMaxWindow);
}

// The largest piece the link stores a message in (a quarter ring, link.cpp).
std::size_t link_piece(std::size_t ring)
{
    return std::max<std::size_t>(ring / 4 - link::kRecordHeaderSize,
                                 1024 - link::kRecordHeaderSize) &
           ~std::size_t{7};
}

// A yardstick figure before and after a link figure.
struct Bracket {
    double before = 0;
    double after = 0;
    [[nodiscard]] double mean() const { return (before + after) / 2; }
    [[nodiscard]] bool disturbed() const
    {
        const double lo = std::min(before, after);
        return lo <= 0 || std::max(before, after) / lo > kDisturbed;
    }
};

// A pair of linked processes in one mode, with what the benchmark needs around it.
class Pair {
public:
    Pair(const char* self, const LinkBenchOptions& o, const std::string& fabric, int index,
         PollMode mode, std::chrono::microseconds window)
        : o_(o),
          mode_(mode),
          s_(fabric, "a" + std::to_string(index), "b" + std::to_string(index),
             link::EndpointOptions{.mode = mode, .poll_window = window}, o.link_channels)
    {
        int fds[2];
        if (::pipe(fds) != 0) {
            s_.fail("pipe", std::error_code(errno, std::generic_category()));
            return;
        }
        pause_r_ = fds[0];
        pause_w_ = fds[1];
        ::fcntl(pause_w_, F_SETFD, FD_CLOEXEC);
        if (!s_.open())
            return;
        peer_.adopt(spawn_self(
            self, {"--peer", fabric, std::to_string(index), mode_name(mode),
                   std::to_string(window.count()), std::to_string(o.link_channels),
                   std::to_string(pause_r_), o.return_memory ? "return-memory" : "keep-memory"}));
        if (peer_.pid() < 0) {
            s_.fail("cannot start the peer");
            return;
        }
        if (!s_.wait_up())
            return;
        control_.emplace(s_);
        if (auto hello = control_->ask({.cmd = Cmd::hello}, Cmd::report); hello)
            yardstick_token_ = hello->bytes;
        if (yardstick_token_ == 0)
            s_.fail("the peer has no yardstick DMB");
    }
    Pair(const Pair&) = delete;
    Pair& operator=(const Pair&) = delete;
    ~Pair()
    {
        ::close(pause_r_);
        ::close(pause_w_);
    }

    [[nodiscard]] bool ok() const { return !s_.failed(); }
    [[nodiscard]] std::string error() const
    {
        return std::string(mode_name(mode_)) + " mode: " + s_.error();
    }
    Session& session() { return s_; }
    ControlChannel& control() { return *control_; }
    [[nodiscard]] std::size_t ring() const
    {
        return link::ring_size_for(link::LinkOptions{}.dmb_size, o_.link_channels);
    }

    /// Runs `measure` while the peer is blocked (so that it uses no CPU at all).
    template <class F>
    bool paused(F measure)
    {
        if (!control_->ask({.cmd = Cmd::pause}, Cmd::ready))
            return false;
        measure();
        const char byte = 1;
        return ::write(pause_w_, &byte, 1) == 1;
    }

    struct Floors {
        double pipe = 0;
        double move = 0;
        double dram = 0;  // messages of 1 MiB and more
    };
    std::optional<Floors> floors(uint32_t channels, std::size_t size)
    {
        Floors f;
        const double secs = o_.floor_seconds;
        if (!paused([&] {
                f.pipe = pipe_rate(size, ring(), channels, link_piece(ring()), secs);
                f.move = s_.move_rate(yardstick_token_, size, link_piece(ring()), secs);
                if (size >= (std::size_t{1} << 20))
                    f.dram = dram_memcpy_rate(size, secs);
            }))
            return std::nullopt;
        return f;
    }

    /// Round trips of a bare ping-pong (the latency floor of this mode), in ns.
    std::optional<std::vector<uint64_t>> latency_floor(int iterations)
    {
        std::vector<uint64_t> rounds;
        if (!paused([&] {
                rounds = mode_ == PollMode::interrupt ? eventfd_ping_pong(iterations).round_ns
                                                      : spin_ping_pong(iterations);
            }))
            return std::nullopt;
        return rounds;
    }

    /// CPU the two processes use, idle and linked, for `seconds`: % of a core each.
    std::optional<std::pair<double, double>> idle_cpu(double seconds, link::EndpointStats& during)
    {
        if (!control_->ask({.cmd = Cmd::idle_begin}, Cmd::ready))
            return std::nullopt;
        const auto before = s_.endpoint().stats();
        const double cpu0 = cpu_seconds_self();
        const uint64_t t0 = now_ns();
        if (!s_.run_for(std::chrono::duration_cast<Clock::duration>(
                std::chrono::duration<double>(seconds))))
            return std::nullopt;
        const double ours = cpu_seconds_self() - cpu0;
        const double wall = static_cast<double>(now_ns() - t0) / 1e9;
        const auto& after = s_.endpoint().stats();
        during = {after.interrupts - before.interrupts,   after.poll_windows - before.poll_windows,
                  after.sleeps - before.sleeps,           after.poll_passes - before.poll_passes,
                  after.busy_passes - before.busy_passes, after.timer_runs - before.timer_runs};
        auto report = control_->ask({.cmd = Cmd::idle_end}, Cmd::report);
        if (!report)
            return std::nullopt;
        return std::pair{100 * ours / wall,
                         100 * (static_cast<double>(report->bytes) / 1e9) / wall};
    }

    bool finish()
    {
        if (!control_->ask({.cmd = Cmd::quit}, Cmd::ready) || !control_->flush())
            return false;
        if (const int status = peer_.wait(); status != 0) {
            s_.fail("the peer exited with status " + std::to_string(status));
            return false;
        }
        return true;
    }

private:
    const LinkBenchOptions& o_;
    PollMode mode_;
    // Declared before the session, so that on an error our function closes first: the
    // peer sees the link go down, says why and exits.
    ChildProcess peer_;
    Session s_;
    std::optional<ControlChannel> control_;
    int pause_r_ = -1;
    int pause_w_ = -1;
    uint64_t yardstick_token_ = 0;
};

struct Point {
    double link = 0;  // median link bytes/s
    double pipe = 0;  // median of the pipe's bracket means
    double move = 0;
    double dram = 0;
    double per_pipe = 0;  // median of link / pipe bracket mean
    double per_move = 0;
    double per_dram = 0;
    double msgs = 0;
    bool disturbed = false;
};

// A B A B A: the floors before the first repetition, then after each.
std::optional<Point> throughput_point(Pair& p, const LinkBenchOptions& o, uint32_t channels,
                                      std::size_t size, uint64_t& phase)
{
    const std::size_t window = window_for(o, size, p.ring());
    auto before = p.floors(channels, size);
    if (!before)
        return std::nullopt;
    std::vector<double> link, pipe, move, dram, per_pipe, per_move, per_dram, msgs;
    Point pt;
    for (int r = 0; r < o.repetitions; ++r) {
        auto t = measure_throughput(p.session(), p.control(), channels, size, window,
                                    o.seconds / o.repetitions, ++phase);
        if (!t)
            return std::nullopt;
        auto after = p.floors(channels, size);
        if (!after)
            return std::nullopt;
        const Bracket bp{before->pipe, after->pipe};
        const Bracket bm{before->move, after->move};
        link.push_back(t->bytes_per_s);
        msgs.push_back(t->messages_per_s);
        pipe.push_back(bp.mean());
        move.push_back(bm.mean());
        per_pipe.push_back(t->bytes_per_s / bp.mean());
        per_move.push_back(t->bytes_per_s / bm.mean());
        pt.disturbed = pt.disturbed || bp.disturbed() || bm.disturbed();
        if (size >= (std::size_t{1} << 20)) {
            const Bracket bd{before->dram, after->dram};
            dram.push_back(bd.mean());
            per_dram.push_back(t->bytes_per_s / bd.mean());
            pt.disturbed = pt.disturbed || bd.disturbed();
        }
        before = after;
    }
    pt.link = median(link);
    pt.msgs = median(msgs);
    pt.pipe = median(pipe);
    pt.move = median(move);
    pt.dram = median(dram);
    pt.per_pipe = median(per_pipe);
    pt.per_move = median(per_move);
    pt.per_dram = median(per_dram);
    return pt;
}

struct LatencyPoint {
    Percentiles link;   // over all repetitions' samples
    Percentiles floor;  // likewise
    double ratio = 0;   // median of p50 / mean(floor p50 before, after)
    bool disturbed = false;
    // Summed over the repetitions (warm-ups included): round trips, and what the two
    // Endpoints and schedulers did meanwhile.
    uint64_t round_trips = 0;
    uint64_t sleeps[2] = {0, 0};  // ours, the peer's
    uint64_t interrupts[2] = {0, 0};
    uint64_t switches[2] = {0, 0};
};

std::optional<LatencyPoint> latency_point(Pair& p, const LinkBenchOptions& o)
{
    const int per = std::max(o.iterations / o.repetitions, 10);
    auto before = p.latency_floor(per);
    if (!before)
        return std::nullopt;
    std::vector<uint64_t> all_link, all_floor = *before;
    std::vector<double> ratios;
    LatencyPoint lp;
    double floor_before = percentiles(*before, 2.0).p50_us;
    for (int r = 0; r < o.repetitions; ++r) {
        auto pp = measure_ping_pong(p.session(), p.control(), per);
        if (!pp)
            return std::nullopt;
        auto* rounds = &pp->rounds;
        lp.round_trips += static_cast<uint64_t>(kLatencyWarmup) + rounds->size();
        lp.sleeps[0] += pp->ours.sleeps;
        lp.sleeps[1] += pp->peer.sleeps;
        lp.interrupts[0] += pp->ours.interrupts;
        lp.interrupts[1] += pp->peer.interrupts;
        lp.switches[0] += pp->our_switches;
        lp.switches[1] += pp->peer.switches;
        auto after = p.latency_floor(per);
        if (!after)
            return std::nullopt;
        all_floor.insert(all_floor.end(), after->begin(), after->end());
        const double floor_after = percentiles(*after, 2.0).p50_us;
        const Bracket b{floor_before, floor_after};
        all_link.insert(all_link.end(), rounds->begin(), rounds->end());
        ratios.push_back(percentiles(*rounds, 2.0).p50_us / b.mean());
        lp.disturbed = lp.disturbed || b.disturbed();
        floor_before = floor_after;
    }
    lp.link = percentiles(all_link, 2.0);
    lp.floor = percentiles(all_floor, 2.0);
    lp.ratio = median(ratios);
    return lp;
}

struct ModeResult {
    std::vector<std::pair<std::pair<uint32_t, std::size_t>, Point>> rows;
    std::optional<LatencyPoint> latency;
    std::optional<std::pair<double, double>> idle;  // % of a core: ours, the peer's
    link::EndpointStats idle_stats;
    double other_cpus = 0;
};

const char* mark(bool disturbed)
{
    return disturbed ? " *" : "";
}

bool run_mode(const char* self, const LinkBenchOptions& o, const std::string& fabric, int index,
              PollMode mode, ModeResult& out)
{
    const OtherLoad load;
    Pair p(self, o, fabric, index, mode, o.poll_window);
    const auto failed = [&p] {
        std::fflush(stdout);
        std::fprintf(stderr, "%s\n", p.error().c_str());
        return false;
    };
    if (!p.ok())
        return failed();
    std::printf("\n== %s mode%s\n", mode_name(mode),
                mode == PollMode::adaptive
                    ? (", poll window " + std::to_string(o.poll_window.count()) + " us").c_str()
                    : "");
    if (o.throughput) {
        std::printf(
            "Throughput: bytes the peer received (async_receive into its buffer) and verified; %d "
            "x %.2g s "
            "per point, yardsticks before and after each (ratios: medians)\n",
            o.repetitions, o.seconds / o.repetitions);
        std::printf("%3s %8s %6s %10s %9s | %9s %6s | %9s %6s | %9s %6s\n", "ch", "size", "window",
                    "msg/s", "link MB/s", "pipe MB/s", "ratio", "move MB/s", "ratio", "DRAM MB/s",
                    "ratio");
        uint64_t phase = 0;
        for (uint32_t channels : o.channels) {
            for (std::size_t size : o.sizes) {
                auto pt = throughput_point(p, o, channels, size, phase);
                if (!pt)
                    return failed();
                std::printf("%3u %8s %6zu %10.0f %9.0f | %9.0f %5.2fx | %9.0f %5.2fx", channels,
                            size_name(size).c_str(), window_for(o, size, p.ring()), pt->msgs,
                            pt->link / 1e6, pt->pipe / 1e6, pt->per_pipe, pt->move / 1e6,
                            pt->per_move);
                if (pt->dram > 0)
                    std::printf(" | %9.0f %5.2fx", pt->dram / 1e6, pt->per_dram);
                else
                    std::printf(" | %9s %6s", "", "");
                std::printf("%s\n", mark(pt->disturbed));
                std::fflush(stdout);
                out.rows.push_back({{channels, size}, *pt});
            }
        }
    }
    if (o.latency) {
        out.latency = latency_point(p, o);
        if (!out.latency)
            return failed();
        const auto& l = *out.latency;
        std::printf(
            "Latency, %zu B one way (round trip / 2), %d samples: p50 %.2f us, p99 %.2f us; "
            "%s floor p50 %.2f us, p99 %.2f us; p50 / floor %.2fx%s\n",
            kLatencySize, o.iterations, l.link.p50_us, l.link.p99_us,
            mode == PollMode::interrupt ? "eventfd" : "spin", l.floor.p50_us, l.floor.p99_us,
            l.ratio, mark(l.disturbed));
        std::printf(
            "  over its %llu round trips, this process / the peer: %llu / %llu sleeps, %llu / "
            "%llu interrupts, %llu / %llu context switches\n",
            static_cast<unsigned long long>(l.round_trips),
            static_cast<unsigned long long>(l.sleeps[0]),
            static_cast<unsigned long long>(l.sleeps[1]),
            static_cast<unsigned long long>(l.interrupts[0]),
            static_cast<unsigned long long>(l.interrupts[1]),
            static_cast<unsigned long long>(l.switches[0]),
            static_cast<unsigned long long>(l.switches[1]));
    }
    if (o.idle_seconds > 0) {
        out.idle = p.idle_cpu(o.idle_seconds, out.idle_stats);
        if (!out.idle)
            return failed();
        const auto& st = out.idle_stats;
        std::printf(
            "Idle CPU over %.1f s, linked and idle: this process %.3f%%, the peer %.3f%% of "
            "a core (our Endpoint meanwhile: %llu interrupts, %llu poll windows, %llu "
            "sleeps, %llu polling passes, %llu timer runs)\n",
            o.idle_seconds, out.idle->first, out.idle->second,
            static_cast<unsigned long long>(st.interrupts),
            static_cast<unsigned long long>(st.poll_windows),
            static_cast<unsigned long long>(st.sleeps),
            static_cast<unsigned long long>(st.poll_passes),
            static_cast<unsigned long long>(st.timer_runs));
    }
    if (!p.finish())
        return failed();
    out.other_cpus = load.cpus();
    std::printf("Other processes kept %.2f CPUs busy meanwhile%s\n", out.other_cpus,
                out.other_cpus > 0.1 ? ": DISTURBED" : "");
    return true;
}

// Adaptive mode at each poll window: 64 KiB on one channel, latency, idle CPU.
bool run_sweep(const char* self, const LinkBenchOptions& o, const std::string& fabric, int index)
{
    std::printf("\n== poll window sweep (adaptive mode)\n");
    std::printf("%10s | %9s %6s | %8s %8s %6s | %9s %9s%s\n", "window us", "64K MB/s", "/pipe",
                "p50 us", "p99 us", "/spin", "idle CPU%", "(peer)", "");
    for (auto w : o.sweep) {
        LinkBenchOptions so = o;
        so.poll_window = w;
        const OtherLoad load;
        Pair p(self, so, fabric, index++, PollMode::adaptive, w);
        if (!p.ok()) {
            std::fprintf(stderr, "%s\n", p.error().c_str());
            return false;
        }
        uint64_t phase = 0;
        auto pt = throughput_point(p, so, 1, std::size_t{64} << 10, phase);
        auto lat = pt ? latency_point(p, so) : std::nullopt;
        link::EndpointStats st;
        auto idle = lat ? p.idle_cpu(so.idle_seconds, st) : std::nullopt;
        if (!idle || !p.finish()) {
            std::fprintf(stderr, "%s\n", p.error().c_str());
            return false;
        }
        const double other = load.cpus();
        std::printf("%10lld | %9.0f %5.2fx | %8.2f %8.2f %5.2fx | %8.3f%% %8.3f%%%s%s\n",
                    static_cast<long long>(w.count()), pt->link / 1e6, pt->per_pipe,
                    lat->link.p50_us, lat->link.p99_us, lat->ratio, idle->first, idle->second,
                    mark(pt->disturbed || lat->disturbed),
                    other > 0.1 ? "  (others busy: DISTURBED)" : "");
        std::fflush(stdout);
    }
    return true;
}

const char* verdict(bool met)
{
    return met ? "met" : "MISSED";
}

int run_benchmark(const char* self, const LinkBenchOptions& o)
{
    utsname u{};
    ::uname(&u);
    const std::size_t dmb = link::LinkOptions{}.dmb_size;
    const std::size_t ring = link::ring_size_for(dmb, o.link_channels);
    std::printf(
        "ism-bench-link: one link between two processes on the emulated fabric\n"
        "  link: %u channels, %zu KiB DMB, %zu-byte rings, %zu-byte pieces; machine: %ld CPUs, "
        "%s %s %s\n"
        "  yardsticks: pipe = bare cross-core pipe, same rings and pieces; move = the device's "
        "store rate into the peer process; DRAM = memcpy of a 512 MiB buffer (>= 1 MiB)\n"
        "  * = a yardstick differed by more than %.1fx before and after the link figure\n",
        o.link_channels, dmb >> 10, ring, link_piece(ring), ::sysconf(_SC_NPROCESSORS_ONLN),
        u.sysname, u.release, u.machine, kDisturbed);

    FabricGuard fabric("bench-link-" + std::to_string(::getpid()));
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_interrupted = 1; };
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);

    std::vector<std::pair<PollMode, ModeResult>> results;
    int index = 0;
    for (PollMode mode : o.modes) {
        ModeResult r;
        if (!run_mode(self, o, fabric.name(), index++, mode, r))
            return 1;
        results.emplace_back(mode, std::move(r));
    }
    if (!o.sweep.empty() && !run_sweep(self, o, fabric.name(), index))
        return 1;

    std::printf("\nTargets (adaptive mode)\n");
    for (const auto& [mode, r] : results) {
        if (mode != PollMode::adaptive)
            continue;
        for (const auto& [key, pt] : r.rows) {
            if (key.first != 1 || key.second != (std::size_t{64} << 10))
                continue;
            std::printf(
                "  1 channel, 64 KiB: %.2fx the pipe (>= 0.8x: %s), %.2f GB/s (>= 3: %s)%s\n",
                pt.per_pipe, verdict(pt.per_pipe >= 0.8), pt.link / 1e9, verdict(pt.link >= 3e9),
                mark(pt.disturbed));
        }
        if (r.latency)
            std::printf("  64 B one-way p50: %.2fx the spin floor (<= 3x: %s)%s\n",
                        r.latency->ratio, verdict(r.latency->ratio <= 3.0),
                        mark(r.latency->disturbed));
        if (r.idle) {
            const double both = r.idle->first + r.idle->second;
            std::printf("  idle CPU of the two linked processes: %.3f%% of a core (< 1%%: %s)\n",
                        both, verdict(both < 1.0));
        }
        if (r.other_cpus > 0.1)
            std::printf("  (other processes kept %.2f CPUs busy: DISTURBED)\n", r.other_cpus);
    }
    return 0;
}

}  // namespace

// Each received message is a fresh std::vector of its size. With glibc's defaults, a
// freed buffer of 128 KiB and more (the threshold grows with what is freed, to 32 MiB)
// goes back to the kernel, and the top of the heap is trimmed once 2x that is free, so
// receiving faults in every page again: 8 channels of 1 MiB messages spent most of their
// time in page faults. Keep freed memory in the process instead.
static void keep_freed_memory()
{
    ::mallopt(M_MMAP_THRESHOLD, 64 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

int main(int argc, char** argv)
{
    if (argc == 9 && std::strcmp(argv[1], "--peer") == 0) {
        if (std::strcmp(argv[8], "return-memory") != 0)
            keep_freed_memory();
        PeerArgs a;
        a.fabric = argv[2];
        a.index = argv[3];
        const std::string mode = argv[4];
        a.mode = mode == "polling"    ? PollMode::polling
                 : mode == "adaptive" ? PollMode::adaptive
                                      : PollMode::interrupt;
        a.poll_window = std::chrono::microseconds(std::atoll(argv[5]));
        a.link_channels = static_cast<uint32_t>(std::atoi(argv[6]));
        a.pause_fd = std::atoi(argv[7]);
        if (a.link_channels < 2 || a.link_channels > link::kMaxChannels || a.pause_fd < 0)
            return 2;
        return run_peer(a);
    }
    int status = 0;
    const auto options = parse_link_bench_options(argc, argv, status);
    if (!options)
        return status;
    if (!options->return_memory)
        keep_freed_memory();
    try {
        return run_benchmark(argv[0], *options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ism-bench-link: %s\n", e.what());
        return 1;
    }
}
