// SPDX-License-Identifier: MIT
// ism-link-peer: one end of a link on the emulated fabric, driven from outside.
//
//   ism-link-peer --fabric F --name lpar2 --peer lpar1 [--channels 16] [--dmb-size 1048576]
//                 [--mode interrupt|adaptive|polling] [--poll-window-us 50] [--polling]
//                 [--keepalive-ms 1000] [--dead-after-ms 3000] [--max-message 16777216]
//                 [--sink]
//                 [--stall CH]... [--log FILE] [--exit-with-parent]
//
// It opens every channel in message mode and keeps a receive pending on each (except the
// --stall ones, which it never reads). Every message must be one of link_peer_protocol.hpp:
// a wrong header or payload prints `error payload ch=C seq=S` and exits with status 3.
// Unless --sink, each message goes back unchanged on its channel. --log appends
// `recv ch=C seq=S len=L` per verified message with one write(2), before anything else is
// done with it, so that the line survives a kill -9 that follows. When the other side
// ends its stream on a channel (closes it), it prints `eof ch=C messages=N` (N: messages
// since the last end of stream), closes its own end and opens it again.
//
// stdout, one line per fact, flushed at once: `ready gid=0x...`, then per link event
// `up ups=N`, `down error=...`, `reset_sent reason=R channel=C error=...`,
// `reset_received reason=R`, `offer_refused reason=R error=...`. SIGTERM or SIGINT ends
// it cleanly with status 0. The integration tests (tests/integration/link_pair_test.cpp)
// run it as the other side of the link they test.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>

#include "ism/device/ism_device.hpp"
#include "ism/link/endpoint.hpp"
#include "ism/sim/fabric.hpp"
#include "ism/unique_fd.hpp"
#include "link_peer_protocol.hpp"

namespace {

using namespace ism;
using namespace ism::link;

constexpr int kExitPayloadError = 3;

struct Options {
    std::string fabric = "demo";
    std::string name;
    std::string peer;
    uint32_t channels = 16;
    std::size_t dmb_size = std::size_t{1} << 20;
    PollMode mode = EndpointOptions{}.mode;
    int64_t poll_window_us = EndpointOptions{}.poll_window.count();
    bool polling = false;
    int64_t keepalive_ms = 1000;
    int64_t dead_after_ms = 3000;
    std::size_t max_message = ism::link::kMaxMessageSize;
    bool sink = false;
    std::vector<uint32_t> stall;
    std::string log;
    bool exit_with_parent = false;
};

__attribute__((format(printf, 1, 2))) void say(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    std::vprintf(fmt, ap);
    va_end(ap);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

unsigned reason_number(ResetReason r)
{
    return static_cast<unsigned>(r);
}

// Receives, verifies, logs and echoes on every channel of one link.
class Peer {
public:
    Peer(const Options& opt, boost::asio::io_context& io, Link& link, int log_fd)
        : opt_(opt), io_(io), link_(link), log_fd_(log_fd)
    {
    }

    void start()
    {
        const std::set<uint32_t> stalled(opt_.stall.begin(), opt_.stall.end());
        for (uint32_t c = 0; c < opt_.channels; ++c) {
            Channel& ch = link_.open_channel(c, ChannelMode::message);
            // A channel the peer opened in the other mode is parked until the link's
            // next epoch.
            ch.set_state_handler([this, &ch](bool up) {
                if (up && parked_.erase(ch.index()) != 0)
                    arm(ch);
            });
            if (!stalled.contains(c))
                arm(ch);
        }
    }

    [[nodiscard]] int exit_code() const noexcept { return exit_code_; }

private:
    void arm(Channel& ch)
    {
        ch.async_receive([this, &ch](std::error_code ec, std::vector<std::byte> message) {
            on_message(ch, ec, std::move(message));
        });
    }

    void on_message(Channel& ch, std::error_code ec, std::vector<std::byte> message)
    {
        if (exit_code_ != 0)
            return;
        if (ec) {
            // The link went down: the receive is failed, the channel stays ours. Waiting
            // again queues it for the next epoch.
            if (ec == errc::peer_gone || ec == errc::link_reset) {
                arm(ch);
                return;
            }
            if (ec == std::errc::operation_canceled)
                return;  // the endpoint is stopping
            if (ec == errc::mode_mismatch) {
                parked_.insert(ch.index());
                return;
            }
            if (ec == errc::end_of_stream) {
                // The other side ended its stream (it closed or half-closed the channel):
                // like a server whose client detached, close ours and wait for the next.
                say("eof ch=%u messages=%" PRIu64, ch.index(), received_[ch.index()]);
                received_[ch.index()] = 0;
                ch.close();
                (void)link_.open_channel(ch.index(), ChannelMode::message);
                arm(ch);
                return;
            }
            say("error receive ch=%u error=%s", ch.index(), ec.message().c_str());
            fail(1);
            return;
        }
        if (!message.empty()) {
            const auto h = link_peer::parse_header(message);
            if (!h || h->channel != ch.index() || !link_peer::payload_ok(message, *h)) {
                say("error payload ch=%u seq=%" PRIu64, ch.index(), h ? h->seq : uint64_t{0});
                fail(kExitPayloadError);
                return;
            }
            if (log_fd_ >= 0)
                log(*h, message.size());
        }
        ++received_[ch.index()];
        if (!opt_.sink) {
            auto copy = std::make_shared<std::vector<std::byte>>(std::move(message));
            // An echo that fails (the link went down) is simply lost: the other side
            // sees its own send fail or its receive come up short.
            ch.async_send(*copy, [copy](std::error_code) {});
        }
        arm(ch);
    }

    void log(const link_peer::Header& h, std::size_t len)
    {
        char line[96];
        const int n = std::snprintf(line, sizeof line, "recv ch=%u seq=%" PRIu64 " len=%zu\n",
                                    h.channel, h.seq, len);
        const auto want = static_cast<std::size_t>(n);
        if (::write(log_fd_, line, want) != static_cast<ssize_t>(want)) {
            say("error log write");
            fail(1);
        }
    }

    void fail(int code)
    {
        exit_code_ = code;
        io_.stop();
    }

    const Options& opt_;
    boost::asio::io_context& io_;
    Link& link_;
    int log_fd_;
    int exit_code_ = 0;
    std::set<uint32_t> parked_;
    std::map<uint32_t, uint64_t> received_;  // messages since the last end of stream
};

void print_event(const LinkEvent& ev, const Link& link)
{
    switch (ev.kind) {
        case LinkEvent::Kind::up:
            say("up ups=%" PRIu64, link.ups());
            break;
        case LinkEvent::Kind::down:
            say("down error=%s", ev.error.message().c_str());
            break;
        case LinkEvent::Kind::reset_sent:
            say("reset_sent reason=%u channel=%u error=%s", reason_number(ev.reason), ev.channel,
                ev.error.message().c_str());
            break;
        case LinkEvent::Kind::reset_received:
            say("reset_received reason=%u", reason_number(ev.reason));
            break;
        case LinkEvent::Kind::offer_refused:
            say("offer_refused reason=%u error=%s", reason_number(ev.reason),
                ev.error.message().c_str());
            break;
        case LinkEvent::Kind::channel_error:
            say("channel_error channel=%u error=%s", ev.channel, ev.error.message().c_str());
            break;
    }
}

int run(const Options& opt)
{
    auto file = sim::open_function({.fabric = opt.fabric, .name = opt.name});
    if (!file) {
        std::fprintf(stderr, "%s: open function: %s\n", opt.name.c_str(),
                     file.error().message().c_str());
        return 1;
    }
    auto dev = device::IsmDevice::open(std::move(*file));
    if (!dev) {
        std::fprintf(stderr, "%s: open device: %s\n", opt.name.c_str(),
                     dev.error().message().c_str());
        return 1;
    }
    UniqueFd log_fd;
    if (!opt.log.empty()) {
        log_fd = UniqueFd(::open(opt.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
        if (!log_fd) {
            std::perror(opt.log.c_str());
            return 1;
        }
    }

    boost::asio::io_context io;
    Endpoint endpoint(
        io, **dev,
        EndpointOptions{.mode = opt.mode,
                        .poll_window = std::chrono::microseconds(opt.poll_window_us)});
    LinkOptions lo;
    lo.peer_gid = sim::gid_for_name(opt.peer);
    lo.dmb_size = opt.dmb_size;
    lo.channels = opt.channels;
    lo.keepalive_interval = std::chrono::milliseconds(opt.keepalive_ms);
    lo.dead_after = std::chrono::milliseconds(opt.dead_after_ms);
    lo.max_message = opt.max_message;
    auto link = endpoint.add_link(lo);
    if (!link) {
        std::fprintf(stderr, "%s: link: %s\n", opt.name.c_str(), link.error().message().c_str());
        return 1;
    }
    Link& l = **link;
    l.set_event_handler([&l](const LinkEvent& ev) { print_event(ev, l); });
    Peer peer(opt, io, l, log_fd.get());
    peer.start();

    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec)
            return;
        endpoint.stop();
        io.stop();
    });
    say("ready gid=0x%016" PRIx64, (*dev)->gid());
    io.run();
    return peer.exit_code();
}

int run_cli(int argc, char** argv)
{
    Options opt;
    CLI::App app{"One end of an ISM link on the emulated fabric: verifies, logs, echoes"};
    app.add_option("--fabric", opt.fabric, "Emulated fabric name")->capture_default_str();
    app.add_option("--name", opt.name, "This function's name")->required();
    app.add_option("--peer", opt.peer, "The peer function's name")->required();
    app.add_option("--channels", opt.channels, "Channels (1..32)")
        ->check(CLI::Range(1U, kMaxChannels))
        ->capture_default_str();
    app.add_option("--dmb-size", opt.dmb_size, "Our DMB size (power of two, 16 KiB..1 MiB)")
        ->capture_default_str();
    std::string mode = "adaptive";
    app.add_option("--mode", mode, "How the Endpoint notices work")
        ->check(CLI::IsMember({"interrupt", "adaptive", "polling"}))
        ->capture_default_str();
    app.add_option("--poll-window-us", opt.poll_window_us,
                   "Adaptive mode: poll this long after activity before sleeping")
        ->check(CLI::Range(int64_t{0}, int64_t{1'000'000}))
        ->capture_default_str();
    app.add_flag("--polling", opt.polling, "Same as --mode polling");
    app.add_option("--keepalive-ms", opt.keepalive_ms, "Keepalive interval")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--dead-after-ms", opt.dead_after_ms, "Peer dead after this much silence")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--max-message", opt.max_message, "Largest message taken, in bytes")
        ->check(CLI::Range(std::size_t{1}, ism::link::kMaxMessageSize))
        ->capture_default_str();
    app.add_flag("--sink", opt.sink, "Verify and log, but do not echo");
    app.add_option("--stall", opt.stall, "Never read this channel (repeatable)")
        ->check(CLI::Range(0U, kMaxChannels - 1));
    app.add_option("--log", opt.log, "Append one line per verified message to this file");
    app.add_flag("--exit-with-parent", opt.exit_with_parent,
                 "Be killed when the process that started us dies (tests)");
    CLI11_PARSE(app, argc, argv);
    opt.mode = mode == "interrupt" ? PollMode::interrupt
               : mode == "polling" ? PollMode::polling
                                   : PollMode::adaptive;
    if (opt.polling)
        opt.mode = PollMode::polling;

    if (opt.exit_with_parent) {
        const pid_t parent = ::getppid();
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)
            return 1;
    }
    for (uint32_t c : opt.stall) {
        if (c >= opt.channels) {
            std::fprintf(stderr, "--stall %u: only %u channels\n", c, opt.channels);
            return 1;
        }
    }
    return run(opt);
}

}  // namespace

// The CLI edge, the one place that catches: an exception (out of memory, a CLI11 bug)
// ends the program with a message instead of std::terminate.
int main(int argc, char** argv)
{
    try {
        return run_cli(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", "ism-link-peer", e.what());
    } catch (...) {
        std::fprintf(stderr, "%s: unknown exception\n", "ism-link-peer");
    }
    return 1;
}
