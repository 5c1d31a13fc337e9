// SPDX-License-Identifier: MIT
// ism-bench-link: throughput and latency of one link (ism/link) between two processes on
// the emulated fabric, next to the machine's floors measured in the same run: warm
// single-thread memcpy of the same sizes, a bare two-process shared-memory pipe of the
// link's ring size (what moving bytes between two cores costs at all), a bare two-process
// eventfd ping-pong (the floor for a blocking wake-up) and a bare two-process
// shared-memory spin ping-pong (the floor for polling).
//
// The second process is this program exec'd again (--peer), joining the fabric by name.
// Each side runs an Endpoint on its own io_context with one link, by default the default
// link (16 channels, 1 MiB DMB). The link's last channel carries the benchmark's own
// control messages; the others carry data. Throughput counts only bytes the peer's application
// received through async_receive: each message carries a phase-, channel- and sequence-tagged word
// at both ends and a pattern the receiver samples at a pseudo-random place; the receiver reports
// what it verified and the sender checks it against what it sent. Latency is a 64-byte
// ping-pong on channel 0 (one way = round trip / 2).

#include <signal.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench_common.hpp"
#include "ism/device/ism_device.hpp"
#include "ism/link/endpoint.hpp"
#include "ism/link/link.hpp"
#include "ism/sim/fabric.hpp"

namespace {

using namespace ism;
using namespace ism::bench;
using link::Channel;
using link::ChannelMode;
using link::Clock;

// The last channel of the link carries the benchmark's control messages, the others data.
constexpr uint32_t kMaxDataChannels = link::kMaxChannels - 1;
constexpr uint32_t kDefaultLinkChannels = link::LinkOptions{}.channels;
constexpr std::size_t kLatencySize = 64;
constexpr std::size_t kMaxWindow = 256;
constexpr int kLatencyWarmup = 200;
// Every step of the conversation must finish within this, or the run fails.
constexpr auto kStepTimeout = std::chrono::seconds(30);
constexpr auto kUpTimeout = std::chrono::seconds(15);

// Set by SIGINT/SIGTERM: the run stops at the next step and still cleans up its fabric.
volatile std::sig_atomic_t g_interrupted = 0;

// ---- options ----

struct Options {
    std::vector<std::size_t> sizes{64,       256,      1 << 10,   4 << 10,
                                   16 << 10, 64 << 10, 256 << 10, 1 << 20};
    std::vector<uint32_t> channels{1, 8};
    uint32_t link_channels = kDefaultLinkChannels;  // the link's channel count: ring size
    double seconds = 1.0;                           // per throughput point
    int iterations = 20000;                         // latency samples per measurement
    std::size_t window = 0;                         // sends in flight per channel; 0: by size
    bool interrupt_mode = true;                     // run the interrupt-mode session
    bool polling_mode = true;                       // run the polling-mode session
    bool poll_throughput = false;                   // throughput in the polling session as well
    std::size_t memcpy_bytes = std::size_t{2} << 30;
};

bool parse_size(std::string_view s, std::size_t& out)
{
    if (s.empty())
        return false;
    std::size_t mult = 1;
    const char last = s.back();
    if (last == 'K' || last == 'k')
        mult = std::size_t{1} << 10;
    else if (last == 'M' || last == 'm')
        mult = std::size_t{1} << 20;
    if (mult != 1)
        s.remove_suffix(1);
    std::size_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + static_cast<std::size_t>(c - '0');
        if (v > link::kMaxMessageSize)
            return false;
    }
    out = v * mult;
    return true;
}

template <class T, class Parse>
bool parse_list(std::string_view s, std::vector<T>& out, Parse parse)
{
    out.clear();
    while (!s.empty()) {
        const auto comma = s.find(',');
        T v{};
        if (!parse(s.substr(0, comma), v))
            return false;
        out.push_back(v);
        s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
    }
    return !out.empty();
}

void usage(const char* self)
{
    std::fprintf(stderr,
                 "usage: %s [--quick] [--sizes=64,4K,1M] [--channels=1,8] [--seconds=S]\n"
                 "          [--iterations=N] [--window=N] [--modes=interrupt,polling]\n"
                 "          [--poll-throughput] [--link-channels=N]\n"
                 "  --quick            short runs (a smoke test): 0.05 s per point, 500 samples\n"
                 "  --sizes            message sizes, 16 B .. 16 MiB (K and M suffixes)\n"
                 "  --channels         channel counts sending at once, below --link-channels\n"
                 "  --seconds          seconds per throughput point (default 1)\n"
                 "  --iterations       latency samples per mode (default 20000)\n"
                 "  --window           sends in flight per channel (default: by size)\n"
                 "  --modes            Endpoint modes to run (default both)\n"
                 "  --poll-throughput  also measure throughput in polling mode\n"
                 "  --link-channels    channels of the link, 2..32 (default %u): each of the\n"
                 "                     DMB's rings is (1 MiB - 1 KiB) / N bytes\n",
                 self, kDefaultLinkChannels);
}

std::optional<Options> parse_options(int argc, char** argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto eq = arg.find('=');
        const std::string_view key = arg.substr(0, eq);
        const std::string_view value =
            eq == std::string_view::npos ? std::string_view{} : arg.substr(eq + 1);
        bool ok = true;
        if (key == "--quick") {
            o.seconds = 0.05;
            o.iterations = 500;
            o.memcpy_bytes = std::size_t{64} << 20;
        } else if (key == "--sizes") {
            ok = parse_list(value, o.sizes, [](std::string_view s, std::size_t& v) {
                return parse_size(s, v) && v >= 16;
            });
        } else if (key == "--channels") {
            ok = parse_list(value, o.channels, [](std::string_view s, uint32_t& v) {
                std::size_t n = 0;
                if (!parse_size(s, n) || n == 0 || n > kMaxDataChannels)
                    return false;
                v = static_cast<uint32_t>(n);
                return true;
            });
        } else if (key == "--seconds") {
            o.seconds = std::atof(std::string(value).c_str());
            ok = o.seconds > 0 && o.seconds <= 600;
        } else if (key == "--iterations") {
            o.iterations = std::atoi(std::string(value).c_str());
            ok = o.iterations > 0 && o.iterations <= 10'000'000;
        } else if (key == "--window") {
            ok = parse_size(value, o.window) && o.window > 0 && o.window <= 4096;
        } else if (key == "--modes") {
            o.interrupt_mode = value.find("interrupt") != std::string_view::npos;
            o.polling_mode = value.find("polling") != std::string_view::npos;
            ok = o.interrupt_mode || o.polling_mode;
        } else if (key == "--link-channels") {
            std::size_t n = 0;
            ok = parse_size(value, n) && n >= 2 && n <= link::kMaxChannels;
            o.link_channels = static_cast<uint32_t>(n);
        } else if (key == "--poll-throughput") {
            o.poll_throughput = true;
        } else {
            ok = false;
        }
        if (!ok) {
            usage(argv[0]);
            return std::nullopt;
        }
    }
    for (uint32_t c : o.channels) {
        if (c >= o.link_channels) {
            usage(argv[0]);
            return std::nullopt;
        }
    }
    return o;
}

// ---- what travels: control messages and tagged data ----

enum class Cmd : uint32_t { throughput = 1, latency, stop, ready, report, quit };

struct Control {
    Cmd cmd{};
    uint32_t channels = 0;
    uint64_t phase = 0;
    uint64_t size = 0;
    uint64_t messages = 0;  // report: messages verified
    uint64_t bytes = 0;     // report: their bytes
    uint64_t bad = 0;       // report: messages that failed a check
};

uint64_t tag(uint64_t phase, uint32_t channel, uint64_t seq)
{
    return (phase << 48) | (uint64_t{channel} << 40) | seq;
}

std::byte pattern(std::size_t i)
{
    return static_cast<std::byte>((i * 131 + 7) & 0xFF);
}

// Where the receiver samples the pattern: 8 bytes between the two tags (size >= 24).
std::size_t sample_offset(uint64_t seq, std::size_t size)
{
    return 8 + static_cast<std::size_t>((seq * 0x9E37'79B9'7F4A'7C15ULL) >> 40) % (size - 23);
}

void fill(std::vector<std::byte>& b)
{
    for (std::size_t i = 0; i < b.size(); ++i)
        b[i] = pattern(i);
}

void stamp(std::vector<std::byte>& b, uint64_t t)
{
    const uint64_t end = ~t;
    std::memcpy(b.data(), &t, 8);
    std::memcpy(b.data() + b.size() - 8, &end, 8);
}

bool check(const std::vector<std::byte>& m, std::size_t size, uint64_t t, uint64_t seq)
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

// ---- one side: device, Endpoint, link, channels ----

class Session {
public:
    Session(std::string fabric, std::string name, std::string peer, bool polling,
            uint32_t link_channels)
        : fabric_(std::move(fabric)),
          name_(std::move(name)),
          peer_(std::move(peer)),
          polling_(polling),
          link_channels_(link_channels)
    {
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session()
    {
        // The link (inside the Endpoint) before the device it stores through.
        endpoint_.reset();
        device_.reset();
    }

    bool open()
    {
        auto file = sim::open_function({.fabric = fabric_, .name = name_});
        if (!file)
            return fail("open function", file.error());
        auto dev = device::IsmDevice::open(std::move(*file));
        if (!dev)
            return fail("open device", dev.error());
        device_ = std::move(*dev);
        endpoint_ = std::make_unique<link::Endpoint>(io_, *device_,
                                                     link::EndpointOptions{.polling = polling_});
        auto l =
            endpoint_->add_link({.peer_gid = sim::gid_for_name(peer_), .channels = link_channels_});
        if (!l)
            return fail("add link", l.error());
        link_ = *l;
        link_->set_event_handler([this](const link::LinkEvent& ev) {
            // Waiters only learn that the peer is gone; the event says why.
            using Kind = link::LinkEvent::Kind;
            const char* what = ev.kind == Kind::down             ? "link down"
                               : ev.kind == Kind::reset_sent     ? "we reset the link"
                               : ev.kind == Kind::reset_received ? "the peer reset the link"
                               : ev.kind == Kind::offer_refused  ? "offer refused"
                                                                 : nullptr;
            if (what != nullptr)
                link_events_ += std::string(link_events_.empty() ? "" : "; ") + what + " (" +
                                ev.error.message() + ", reason " +
                                std::to_string(static_cast<int>(ev.reason)) + ", channel " +
                                std::to_string(ev.channel) + ")";
            if (ev.kind == Kind::down)
                fail("link down");
        });
        for (uint32_t c = 0; c < data_channels(); ++c)
            data_[c] = &link_->open_channel(c, ChannelMode::message);
        control_ = &link_->open_channel(data_channels(), ChannelMode::message);
        receive_control();
        return true;
    }

    bool fail(const char* what, std::error_code ec)
    {
        // The endpoint's shutdown completes what is pending with operation_canceled.
        if (error_.empty() && ec != std::errc::operation_canceled)
            error_ = std::string(what) + ": " + ec.message();
        return false;
    }
    void fail(std::string what)
    {
        if (error_.empty())
            error_ = std::move(what);
    }
    /// The first error, and what the link reported about it.
    [[nodiscard]] std::string error() const
    {
        return link_events_.empty() ? error_ : error_ + " [" + link_events_ + "]";
    }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    /// Runs the event loop until `done()` holds; false on an error or after `timeout`.
    template <class Pred>
    bool run_until(Pred done, Clock::duration timeout)
    {
        const auto deadline = Clock::now() + timeout;
        while (!done()) {
            if (g_interrupted != 0)
                fail("interrupted");
            if (!error_.empty())
                return false;
            if (Clock::now() > deadline) {
                fail("timed out");
                return false;
            }
            io_.run_one();
        }
        return error_.empty();
    }

    bool wait_up()
    {
        return run_until([this] { return link_->up(); }, kUpTimeout);
    }

    void send_control(const Control& c)
    {
        auto buf = std::make_shared<std::array<std::byte, sizeof(Control)>>();
        std::memcpy(buf->data(), &c, sizeof(c));
        ++controls_in_flight_;
        control_->async_send(*buf, [this, buf](std::error_code ec) {
            --controls_in_flight_;
            if (ec)
                fail("send control", ec);
        });
    }

    /// The next control message from the peer (waits up to `timeout`).
    std::optional<Control> next_control(Clock::duration timeout = kStepTimeout)
    {
        if (!run_until([this] { return !controls_.empty(); }, timeout))
            return std::nullopt;
        const Control c = controls_.front();
        controls_.pop_front();
        return c;
    }

    /// Waits until every control message sent was consumed by the peer.
    bool flush_controls()
    {
        return run_until([this] { return controls_in_flight_ == 0; }, kStepTimeout);
    }

    /// Keeps `obj` alive as long as the link, which may hold handlers that point into it.
    template <class T>
    T& keep(std::shared_ptr<T> obj)
    {
        T& ref = *obj;
        kept_.push_back(std::move(obj));
        return ref;
    }

    [[nodiscard]] Channel& data(uint32_t c) noexcept { return *data_[c]; }
    [[nodiscard]] uint32_t data_channels() const noexcept { return link_channels_ - 1; }
    [[nodiscard]] const link::Link& link() const noexcept { return *link_; }

private:
    void receive_control()
    {
        control_->async_receive([this](std::error_code ec, std::vector<std::byte> m) {
            if (ec) {
                fail("receive control", ec);
                return;
            }
            Control c;
            if (m.size() != sizeof(c)) {
                fail("malformed control message");
                return;
            }
            std::memcpy(&c, m.data(), sizeof(c));
            controls_.push_back(c);
            receive_control();
        });
    }

    std::string fabric_;
    std::string name_;
    std::string peer_;
    bool polling_;
    uint32_t link_channels_;
    boost::asio::io_context io_;
    std::vector<std::shared_ptr<void>> kept_;
    std::unique_ptr<device::IsmDevice> device_;
    std::unique_ptr<link::Endpoint> endpoint_;
    link::Link* link_ = nullptr;
    std::array<Channel*, kMaxDataChannels> data_{};
    Channel* control_ = nullptr;
    std::deque<Control> controls_;
    std::size_t controls_in_flight_ = 0;
    std::string error_;
    std::string link_events_;
};

// ---- the peer (the exec'd process): receives, verifies, echoes ----

class Receiver {
public:
    explicit Receiver(Session& s) : s_(s)
    {
        for (uint32_t c = 0; c < s_.data_channels(); ++c)
            receive(c);
    }

    void handle(const Control& c)
    {
        switch (c.cmd) {
            case Cmd::throughput:
                phase_ = c.phase;
                size_ = c.size;
                expected_.fill(1);
                reset_counts();
                s_.send_control({.cmd = Cmd::ready});
                break;
            case Cmd::latency:
                echo_ = true;
                reset_counts();
                s_.send_control({.cmd = Cmd::ready});
                break;
            case Cmd::stop:
                s_.send_control(
                    {.cmd = Cmd::report, .messages = messages_, .bytes = bytes_, .bad = bad_});
                phase_ = 0;
                echo_ = false;
                break;
            default:
                s_.fail("unexpected control message");
                break;
        }
    }

private:
    void reset_counts() { messages_ = bytes_ = bad_ = 0; }

    void receive(uint32_t c)
    {
        s_.data(c).async_receive([this, c](std::error_code ec, std::vector<std::byte> m) {
            if (ec) {
                s_.fail("receive", ec);
                return;
            }
            on_message(c, std::move(m));
            receive(c);
        });
    }

    void on_message(uint32_t c, std::vector<std::byte>&& m)
    {
        if (echo_ && c == 0) {
            ++messages_;
            bytes_ += m.size();
            auto pong = std::make_shared<std::vector<std::byte>>(std::move(m));
            s_.data(0).async_send(*pong, [this, pong](std::error_code ec) {
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

    Session& s_;
    uint64_t phase_ = 0;
    std::size_t size_ = 0;
    bool echo_ = false;
    std::array<uint64_t, kMaxDataChannels> expected_{};
    uint64_t messages_ = 0;
    uint64_t bytes_ = 0;
    uint64_t bad_ = 0;
};

int run_peer(const std::string& fabric, const std::string& index, bool polling,
             uint32_t link_channels)
{
    // The benchmark owns this process: end with it.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() == 1)
        return 1;
    Session s(fabric, "b" + index, "a" + index, polling, link_channels);
    if (!s.open()) {
        std::fprintf(stderr, "peer: %s\n", s.error().c_str());
        return 1;
    }
    Receiver r(s);
    while (true) {
        // The benchmark side times out and ends this process if the conversation stalls.
        auto c = s.next_control(std::chrono::hours(1));
        if (!c) {
            std::fprintf(stderr, "peer: %s\n", s.error().c_str());
            return 1;
        }
        if (c->cmd == Cmd::quit) {
            // Acknowledge, and leave only once the benchmark has the acknowledgement: had
            // we gone at once, our departure could overtake the receipt for its QUIT.
            s.send_control({.cmd = Cmd::ready});
            return s.flush_controls() ? 0 : 1;
        }
        r.handle(*c);
    }
}

// ---- the benchmark side ----

std::size_t window_for(const Options& o, std::size_t size, std::size_t ring)
{
    if (o.window != 0)
        return o.window;
    // About two rings' worth in flight: the ring stays full while credit comes back.
    return std::clamp<std::size_t>(2 * ring / size, 2, kMaxWindow);
}

struct ThroughputResult {
    double bytes_per_s = 0;
    double messages_per_s = 0;
    std::size_t window = 0;
};

// Keeps `window` sends in flight on each of `channels` channels for `seconds`; every new
// send is issued from a completion handler, so that sends completed by one credit update
// go out together under one signal.
class ThroughputRun {
public:
    ThroughputRun(Session& s, uint32_t channels, std::size_t size, std::size_t window,
                  uint64_t phase)
        : s_(s), size_(size), phase_(phase)
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
        s_.data(f.index).async_send(b, [this, &f, slot](std::error_code ec) {
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
    std::size_t size_;
    uint64_t phase_;
    std::vector<Flow> flows_;
    std::size_t in_flight_ = 0;
    Clock::time_point start_{};
    Clock::time_point deadline_{};
    Clock::time_point last_{};
};

std::optional<ThroughputResult> measure_throughput(Session& s, const Options& o, uint32_t channels,
                                                   std::size_t size, uint64_t phase)
{
    const std::size_t ring =
        link::ring_size_for(s.link().options().dmb_size, s.link().options().channels);
    const std::size_t window = window_for(o, size, ring);
    s.send_control({.cmd = Cmd::throughput, .channels = channels, .phase = phase, .size = size});
    auto ready = s.next_control();
    if (!ready || ready->cmd != Cmd::ready) {
        s.fail("peer not ready for throughput");
        return std::nullopt;
    }
    auto& run = s.keep(std::make_shared<ThroughputRun>(s, channels, size, window, phase));
    const auto secs = run.run(o.seconds);
    if (!secs)
        return std::nullopt;
    s.send_control({.cmd = Cmd::stop});
    auto report = s.next_control();
    if (!report || report->cmd != Cmd::report) {
        s.fail("no report from the peer");
        return std::nullopt;
    }
    const uint64_t sent = run.messages();
    if (report->bad != 0 || report->messages != sent || report->bytes != sent * size) {
        s.fail("verification failed: sent " + std::to_string(sent) + " messages, peer verified " +
               std::to_string(report->messages) + " (" + std::to_string(report->bytes) +
               " bytes), " + std::to_string(report->bad) + " bad");
        return std::nullopt;
    }
    return ThroughputResult{static_cast<double>(report->bytes) / *secs,
                            static_cast<double>(report->messages) / *secs, window};
}

// 64-byte ping-pong on channel 0: round trips, in nanoseconds.
std::optional<std::vector<uint64_t>> measure_latency(Session& s, int iterations)
{
    s.send_control({.cmd = Cmd::latency});
    auto ready = s.next_control();
    if (!ready || ready->cmd != Cmd::ready) {
        s.fail("peer not ready for latency");
        return std::nullopt;
    }
    struct State {
        std::vector<std::byte> ping = std::vector<std::byte>(kLatencySize);
        bool sent = false;
        bool got = false;
        bool good = true;
        uint64_t t1 = 0;
    };
    auto st = std::make_shared<State>();
    s.keep(st);
    fill(st->ping);
    std::vector<uint64_t> rounds;
    rounds.reserve(static_cast<std::size_t>(iterations));
    Channel& ch = s.data(0);
    for (int i = 0; i < kLatencyWarmup + iterations; ++i) {
        State& x = *st;
        x.sent = x.got = false;
        const auto seq = static_cast<uint64_t>(i) + 1;
        const uint64_t t0 = now_ns();
        stamp(x.ping, tag(1, 0, seq));
        ch.async_receive([p = st, seq](std::error_code ec, std::vector<std::byte> m) {
            p->t1 = now_ns();
            p->got = true;
            p->good = !ec && check(m, kLatencySize, tag(1, 0, seq), seq);
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
            rounds.push_back(x.t1 - t0);
    }
    s.send_control({.cmd = Cmd::stop});
    auto report = s.next_control();
    if (!report || report->cmd != Cmd::report ||
        report->messages != static_cast<uint64_t>(kLatencyWarmup + iterations)) {
        s.fail("peer echoed a different number of pings");
        return std::nullopt;
    }
    return rounds;
}

struct Row {
    uint32_t channels = 0;
    std::size_t size = 0;
    ThroughputResult r;
};

struct SessionResult {
    std::vector<Row> rows;
    std::optional<Percentiles> latency;
    double other_cpus = 0;  // CPUs other processes kept busy meanwhile
};

std::string size_name(std::size_t size)
{
    if (size >= (1 << 20) && size % (1 << 20) == 0)
        return std::to_string(size >> 20) + " MiB";
    if (size >= (1 << 10) && size % (1 << 10) == 0)
        return std::to_string(size >> 10) + " KiB";
    return std::to_string(size) + " B";
}

// What throughput is set against, per message size: single-thread memcpy (the issue's
// yardstick) and a bare two-process shared-memory pipe (what crossing cores costs here).
struct Floors {
    std::map<std::size_t, double> memcpy;
    std::map<std::size_t, double> pipe;
};

// One pair of processes, both Endpoints in interrupt or in polling mode.
bool run_session(const char* self, const Options& o, const std::string& fabric, int index,
                 bool polling, bool throughput, const Floors& floors, SessionResult& out)
{
    const std::string idx = std::to_string(index);
    // Declared first, so that on an error our function closes first: the peer sees the
    // link go down, says why and exits.
    ChildProcess peer;
    Session s(fabric, "a" + idx, "b" + idx, polling, o.link_channels);
    const char* mode = polling ? "polling" : "interrupt";
    if (!s.open()) {
        std::fprintf(stderr, "%s\n", s.error().c_str());
        return false;
    }
    peer.adopt(spawn_self(
        self, {"--peer", fabric, idx, polling ? "1" : "0", std::to_string(o.link_channels)}));
    if (peer.pid() < 0)
        return false;
    const auto report_error = [&s, mode] {
        std::fflush(stdout);
        std::fprintf(stderr, "%s mode: %s\n", mode, s.error().c_str());
        return false;
    };
    if (!s.wait_up())
        return report_error();

    if (throughput) {
        std::printf(
            "\nThroughput, %s mode: bytes the peer received through async_receive and "
            "verified, %.2g s per point\n",
            mode, o.seconds);
        std::printf("%8s %9s %7s %12s %11s %12s %7s %12s %7s\n", "channels", "size", "window",
                    "msg/s", "link MB/s", "memcpy MB/s", "ratio", "shm pipe MB/s", "ratio");
        uint64_t phase = 0;
        for (uint32_t channels : o.channels) {
            for (std::size_t size : o.sizes) {
                auto r = measure_throughput(s, o, channels, size, ++phase);
                if (!r)
                    return report_error();
                const double mc = floors.memcpy.at(size);
                const double pipe = floors.pipe.at(size);
                std::printf("%8u %9s %7zu %12.0f %11.0f %12.0f %6.1f%% %12.0f %6.1f%%\n", channels,
                            size_name(size).c_str(), r->window, r->messages_per_s,
                            r->bytes_per_s / 1e6, mc / 1e6, 100 * r->bytes_per_s / mc, pipe / 1e6,
                            100 * r->bytes_per_s / pipe);
                std::fflush(stdout);
                out.rows.push_back({channels, size, *r});
            }
        }
    }

    auto rounds = measure_latency(s, o.iterations);
    if (!rounds)
        return report_error();
    out.latency = percentiles(*rounds, 2.0);

    s.send_control({.cmd = Cmd::quit});
    auto bye = s.next_control();
    if (!bye || bye->cmd != Cmd::ready || !s.flush_controls())
        return report_error();
    if (const int status = peer.wait(); status != 0) {
        std::fprintf(stderr, "%s mode: the peer exited with status %d\n", mode, status);
        return false;
    }
    return true;
}

// Removes the fabric however the run ends (after every function on it is closed).
class FabricGuard {
public:
    explicit FabricGuard(std::string name) : name_(std::move(name)) {}
    FabricGuard(const FabricGuard&) = delete;
    FabricGuard& operator=(const FabricGuard&) = delete;
    ~FabricGuard()
    {
        if (auto r = sim::remove_fabric(name_);
            !r && r.error() != std::errc::no_such_file_or_directory)
            std::fprintf(stderr, "remove fabric %s: %s\n", name_.c_str(),
                         r.error().message().c_str());
    }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

private:
    std::string name_;
};

const char* verdict(bool met)
{
    return met ? "met" : "MISSED";
}

int run_benchmark(const char* self, const Options& o)
{
    utsname u{};
    ::uname(&u);
    const std::size_t dmb = link::LinkOptions{}.dmb_size;
    const std::size_t ring = link::ring_size_for(dmb, o.link_channels);
    std::printf(
        "ism-bench-link: one link between two processes on the emulated fabric\n"
        "  link: %u channels, %zu KiB DMB, %zu-byte rings; machine: %ld CPUs, %s %s %s\n",
        o.link_channels, dmb >> 10, ring, ::sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release,
        u.machine);

    Floors floors;
    for (std::size_t size : o.sizes) {
        floors.memcpy[size] = memcpy_rate(size, o.memcpy_bytes);
        floors.pipe[size] = shm_pipe_rate(size, ring, std::min(o.seconds, 0.5));
    }
    const auto& memcpy_rates = floors.memcpy;

    FabricGuard fabric("bench-link-" + std::to_string(::getpid()));
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_interrupted = 1; };
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    SessionResult irq;
    SessionResult poll;
    std::vector<uint64_t> eventfd_rounds;
    std::vector<uint64_t> spin_rounds;
    if (o.interrupt_mode) {
        const OtherLoad load;
        if (!run_session(self, o, fabric.name(), 0, false, true, floors, irq))
            return 1;
        eventfd_rounds = eventfd_ping_pong(o.iterations).round_ns;
        irq.other_cpus = load.cpus();
    }
    if (o.polling_mode) {
        const OtherLoad load;
        if (!run_session(self, o, fabric.name(), 1, true, o.poll_throughput, floors, poll))
            return 1;
        spin_rounds = spin_ping_pong(o.iterations);
        poll.other_cpus = load.cpus();
    }

    std::printf("\nLatency, %zu B one way (round trip / 2), %d samples after %d warm-up\n",
                kLatencySize, o.iterations, kLatencyWarmup);
    std::printf("%-34s %9s %9s %14s\n", "", "p50 us", "p99 us", "p50 / floor");
    const auto line = [](const char* what, const Percentiles& p, const Percentiles* floor) {
        if (floor != nullptr && floor->p50_us > 0)
            std::printf("%-34s %9.2f %9.2f %13.2fx\n", what, p.p50_us, p.p99_us,
                        p.p50_us / floor->p50_us);
        else
            std::printf("%-34s %9.2f %9.2f\n", what, p.p50_us, p.p99_us);
    };
    std::optional<double> irq_ratio;
    std::optional<double> poll_ratio;
    if (irq.latency) {
        const Percentiles floor = percentiles(eventfd_rounds, 2.0);
        line("link, interrupt mode", *irq.latency, &floor);
        line("eventfd ping-pong (floor)", floor, nullptr);
        if (floor.p50_us > 0)
            irq_ratio = irq.latency->p50_us / floor.p50_us;
    }
    if (poll.latency) {
        const Percentiles floor = percentiles(spin_rounds, 2.0);
        line("link, polling mode", *poll.latency, &floor);
        line("shared-memory spin ping-pong (floor)", floor, nullptr);
        if (floor.p50_us > 0)
            poll_ratio = poll.latency->p50_us / floor.p50_us;
    }

    // What else ran: figures taken while other processes were busy are not comparable.
    std::printf("\nOther processes kept busy, on average:");
    if (o.interrupt_mode)
        std::printf(" %.2f CPUs during the interrupt-mode session", irq.other_cpus);
    if (o.polling_mode)
        std::printf("%s %.2f CPUs during the polling-mode session", o.interrupt_mode ? "," : "",
                    poll.other_cpus);
    std::printf("%s\n", std::max(irq.other_cpus, poll.other_cpus) > 0.1
                            ? "\n  DISTURBED: polling in particular needs both cores to itself"
                            : "");

    std::printf("\nTargets\n");
    bool any_64k = false;
    for (const auto& row : irq.rows) {
        if (row.size != std::size_t{64} << 10)
            continue;
        const double ratio = row.r.bytes_per_s / memcpy_rates.at(row.size);
        std::printf(
            "  64 KiB throughput >= 60%% of memcpy, %u channel(s): %5.1f%%  %s"
            "  (%.0f%% of the two-process shm pipe)\n",
            row.channels, 100 * ratio, verdict(ratio >= 0.6),
            100 * row.r.bytes_per_s / floors.pipe.at(row.size));
        any_64k = true;
    }
    if (!any_64k && o.interrupt_mode)
        std::printf("  64 KiB throughput >= 60%% of memcpy: not measured (--sizes)\n");
    if (irq_ratio)
        std::printf("  interrupt p50 <= 1.3x eventfd floor: %.2fx  %s\n", *irq_ratio,
                    verdict(*irq_ratio <= 1.3));
    if (poll_ratio)
        std::printf("  polling p50 <= 3x spin floor: %.2fx  %s\n", *poll_ratio,
                    verdict(*poll_ratio <= 3.0));
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc == 6 && std::strcmp(argv[1], "--peer") == 0) {
        const auto link_channels = static_cast<uint32_t>(std::atoi(argv[5]));
        if (link_channels < 2 || link_channels > link::kMaxChannels)
            return 2;
        return run_peer(argv[2], argv[3], std::strcmp(argv[4], "1") == 0, link_channels);
    }
    const auto options = parse_options(argc, argv);
    if (!options)
        return 2;
    try {
        return run_benchmark(argv[0], *options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ism-bench-link: %s\n", e.what());
        return 1;
    }
}
