// SPDX-License-Identifier: MIT
// ism-exchange: two processes on one ISM fabric find each other by GID and move data
// into each other's DMBs with signals. The responder echoes what the initiator moves.
//
//   ism-exchange --name lpar2 --peer lpar1 --role responder &
//   ism-exchange --name lpar1 --peer lpar2 --role initiator --sizes 1,4096,1048576
//
// By default the function is an emulated one on the fabric --fabric; --device opens a
// real ISM function through VFIO instead (same code above the device file).
#include <poll.h>

#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "exchange_protocol.hpp"
#include "ism/device/ism_device.hpp"
#include "ism/sim/fabric.hpp"
#include "ism/vfio/vfio_device_file.hpp"

namespace {

using namespace ism;
using namespace ism::exchange;
using Clock = std::chrono::steady_clock;

struct Options {
    std::string fabric = "demo";
    std::string name;
    std::string peer;
    uint64_t peer_gid = 0;
    std::string device;
    std::string role = "initiator";
    std::vector<std::size_t> sizes{1, 64, 4096, 4097, 65536, 1 << 20};
    double timeout_s = 10;
    bool quiet = false;
};

class Side {
public:
    Side(const Options& opt, std::unique_ptr<device::IsmDevice> dev)
        : opt_(opt), dev_(std::move(dev))
    {
    }

    int run()
    {
        auto dmb = dev_->register_dmb(kDmbSize, peer_gid_);
        if (!dmb) {
            std::fprintf(stderr, "%s: register DMB: %s\n", opt_.name.c_str(),
                         dmb.error().message().c_str());
            return 1;
        }
        dmb_ = *dmb;
        say("gid %016" PRIx64 " on pchid %04x, DMB token %016" PRIx64
            " (SBA index %u) for "
            "peer %016" PRIx64,
            dev_->gid(), dev_->pchid(), dmb_.token, dmb_.sba_idx, peer_gid_);
        return opt_.role == "initiator" ? initiate() : respond();
    }

    void set_peer(uint64_t gid) { peer_gid_ = gid; }

private:
    __attribute__((format(printf, 2, 3))) void say(const char* fmt, ...)
    {
        if (opt_.quiet)
            return;
        std::printf("[%s] ", opt_.name.c_str());
        va_list ap;
        va_start(ap, fmt);
        std::vprintf(fmt, ap);
        va_end(ap);
        std::printf("\n");
        std::fflush(stdout);
    }

    // Waits for the interrupt fd and collects what the device reports.
    bool wait(std::chrono::milliseconds max)
    {
        pollfd pfd{dev_->irq_fd(), POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(max.count())) <= 0)
            return false;
        auto r = dev_->handle_interrupt();
        if (!r) {
            std::fprintf(stderr, "%s: interrupt: %s\n", opt_.name.c_str(),
                         r.error().message().c_str());
            return false;
        }
        for (const auto& s : r->dmbs) {
            if (s.sba_idx == dmb_.sba_idx)
                signalled_ = true;
        }
        events_.insert(events_.end(), r->events.begin(), r->events.end());
        return true;
    }

    bool take_event(uint32_t code, device::Event& out)
    {
        for (auto it = events_.begin(); it != events_.end(); ++it) {
            if (it->type == static_cast<uint32_t>(device::EventType::software) &&
                it->code == code && it->tok == peer_gid_) {
                out = *it;
                events_.erase(it);
                return true;
            }
        }
        return false;
    }

    int initiate()
    {
        // HELLO until answered: the peer may not be up yet, and events can be lost.
        device::Event ev;
        const auto deadline = Clock::now() + std::chrono::duration<double>(opt_.timeout_s);
        while (!take_event(kHelloAck, ev)) {
            if (Clock::now() > deadline) {
                std::fprintf(stderr, "%s: no answer from %016" PRIx64 "\n", opt_.name.c_str(),
                             peer_gid_);
                return 1;
            }
            if (auto r = dev_->signal_event(peer_gid_, kHello, dmb_.token);
                !r && r.error() != errc::hw_unknown_gid) {
                std::fprintf(stderr, "%s: hello: %s\n", opt_.name.c_str(),
                             r.error().message().c_str());
                return 1;
            }
            wait(std::chrono::milliseconds(100));
        }
        const uint64_t peer_token = ev.info;
        say("peer %016" PRIx64 " answered: its DMB token is %016" PRIx64, peer_gid_, peer_token);

        uint64_t seq = 0;
        for (std::size_t len : opt_.sizes) {
            if (len == 0 || len > kDmbSize) {
                std::fprintf(stderr, "%s: size %zu outside 1..%zu\n", opt_.name.c_str(), len,
                             kDmbSize);
                return 1;
            }
            ++seq;
            std::vector<std::byte> data(len);
            for (std::size_t i = 0; i < len; ++i)
                data[i] = static_cast<std::byte>((i * 131 + seq * 7) >> 3);
            signalled_ = false;
            const auto t0 = Clock::now();
            if (auto r = dev_->move(peer_token, 0, 0, data, true); !r) {
                std::fprintf(stderr, "%s: move: %s\n", opt_.name.c_str(),
                             r.error().message().c_str());
                return 1;
            }
            if (auto r = dev_->signal_event(peer_gid_, kEcho, pack(len, true, seq)); !r) {
                std::fprintf(stderr, "%s: echo: %s\n", opt_.name.c_str(),
                             r.error().message().c_str());
                return 1;
            }
            while (!(take_event(kEchoed, ev) && (ev.info >> kSequenceShift) == seq)) {
                if (!wait(std::chrono::milliseconds(static_cast<int>(opt_.timeout_s * 1000)))) {
                    std::fprintf(stderr, "%s: no echo for %zu bytes\n", opt_.name.c_str(), len);
                    return 1;
                }
            }
            while (!signalled_ && wait(std::chrono::milliseconds(1000))) {
            }
            const auto us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
            const bool same = std::memcmp(dmb_.memory.data(), data.data(), len) == 0;
            const bool peer_saw_signal = (ev.info & kSignalledBit) != 0;
            say("moved %7zu B into the peer's DMB and got them back: %s (peer saw signal: %s, "
                "our DMB signalled: %s, %.0f us)",
                len, same ? "identical" : "DIFFERENT", peer_saw_signal ? "yes" : "no",
                signalled_ ? "yes" : "no", us);
            if (!same || !peer_saw_signal || !signalled_)
                return 1;
        }
        (void)dev_->signal_event(peer_gid_, kBye, 0);
        say("done");
        return 0;
    }

    int respond()
    {
        say("waiting for %016" PRIx64, peer_gid_);
        uint64_t peer_token = 0;
        auto last_activity = Clock::now();
        while (true) {
            wait(std::chrono::milliseconds(100));
            device::Event ev;
            if (take_event(kHello, ev)) {
                if (ev.info != peer_token)
                    say("hello from %016" PRIx64 ": its DMB token is %016" PRIx64, peer_gid_,
                        ev.info);
                peer_token = ev.info;
                (void)dev_->signal_event(peer_gid_, kHelloAck, dmb_.token);
                last_activity = Clock::now();
            }
            if (take_event(kEcho, ev)) {
                const uint64_t len = ev.info & kLengthMask;
                const uint64_t seq = ev.info >> kSequenceShift;
                if (len == 0 || len > kDmbSize || peer_token == 0) {
                    std::fprintf(stderr, "%s: bad echo request\n", opt_.name.c_str());
                    return 1;
                }
                if (auto r = dev_->move(peer_token, 0, 0, dmb_.memory.first(len), true); !r) {
                    std::fprintf(stderr, "%s: move back: %s\n", opt_.name.c_str(),
                                 r.error().message().c_str());
                    return 1;
                }
                (void)dev_->signal_event(peer_gid_, kEchoed, pack(len, signalled_, seq));
                say("echoed %" PRIu64 " B (DMB signalled: %s)", len, signalled_ ? "yes" : "no");
                signalled_ = false;
                last_activity = Clock::now();
            }
            if (take_event(kBye, ev)) {
                say("peer said bye");
                return 0;
            }
            for (const auto& e : events_) {
                if (e.type == static_cast<uint32_t>(device::EventType::device) &&
                    e.code == device::kEventGidDisabled && e.tok == peer_gid_) {
                    say("peer %016" PRIx64 " disappeared; waiting for it to come back", peer_gid_);
                    peer_token = 0;
                }
            }
            events_.clear();
            if (Clock::now() - last_activity > std::chrono::duration<double>(opt_.timeout_s)) {
                say("idle for %.0f s, exiting", opt_.timeout_s);
                return 0;
            }
        }
    }

    const Options& opt_;
    std::unique_ptr<device::IsmDevice> dev_;
    device::Dmb dmb_;
    uint64_t peer_gid_ = 0;
    bool signalled_ = false;
    std::vector<device::Event> events_;
};

int run(const Options& opt)
{
    Result<std::unique_ptr<vfio::DeviceFile>> file = fail(errc::no_such_device);
    if (!opt.device.empty()) {
        auto real = vfio::open_vfio_device(opt.device);
        if (real)
            file = std::unique_ptr<vfio::DeviceFile>(std::move(*real));
        else
            file = tl::unexpected(real.error());
    } else {
        file = sim::open_function({.fabric = opt.fabric, .name = opt.name});
    }
    if (!file) {
        std::fprintf(stderr, "%s: open %s: %s\n", opt.name.c_str(),
                     opt.device.empty() ? ("fabric " + opt.fabric).c_str() : opt.device.c_str(),
                     file.error().message().c_str());
        return 1;
    }
    auto dev = device::IsmDevice::open(std::move(*file));
    if (!dev) {
        std::fprintf(stderr, "%s: ISM device: %s\n", opt.name.c_str(),
                     dev.error().message().c_str());
        return 1;
    }
    Side side(opt, std::move(*dev));
    side.set_peer(opt.peer_gid != 0 ? opt.peer_gid : sim::gid_for_name(opt.peer));
    return side.run();
}

int run_cli(int argc, char** argv)
{
    CLI::App app{"Move data between two ISM functions by DMB stores and events"};
    Options opt;
    app.add_option("--fabric", opt.fabric, "emulated fabric name");
    app.add_option("--device", opt.device, "real ISM function (PCI address or fid:N) via VFIO");
    app.add_option("--name", opt.name, "this function's name (its GID derives from it)")
        ->required();
    auto* peer = app.add_option("--peer", opt.peer, "peer function's name");
    auto* peer_gid = app.add_option("--peer-gid", opt.peer_gid, "peer GID (instead of --peer)");
    peer->excludes(peer_gid);
    app.add_option("--role", opt.role, "initiator or responder")
        ->check(CLI::IsMember({"initiator", "responder"}));
    app.add_option("--sizes", opt.sizes, "bytes per move (initiator)")->delimiter(',');
    app.add_option("--timeout", opt.timeout_s, "seconds to wait for the peer");
    app.add_flag("--quiet", opt.quiet, "print errors only");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (opt.peer.empty() && opt.peer_gid == 0) {
        std::fprintf(stderr, "--peer or --peer-gid is required\n");
        return 2;
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
        std::fprintf(stderr, "%s: %s\n", "ism-exchange", e.what());
    } catch (...) {
        std::fprintf(stderr, "%s: unknown exception\n", "ism-exchange");
    }
    return 1;
}
