// SPDX-License-Identifier: MIT
#include "link_session.hpp"

#include <algorithm>
#include <cstdio>

#include "ism/sim/fabric.hpp"

namespace ism::bench {

volatile std::sig_atomic_t g_interrupted = 0;

Session::Session(std::string fabric, std::string name, std::string peer,
                 link::EndpointOptions endpoint_options, uint32_t link_channels)
    : fabric_(std::move(fabric)),
      name_(std::move(name)),
      peer_(std::move(peer)),
      endpoint_options_(endpoint_options),
      link_channels_(link_channels)
{
}

Session::~Session()
{
    // The link (inside the Endpoint) before the device it stores through.
    endpoint_.reset();
    device_.reset();
}

bool Session::open()
{
    auto file = sim::open_function({.fabric = fabric_, .name = name_});
    if (!file)
        return fail("open function", file.error());
    auto dev = device::IsmDevice::open(std::move(*file));
    if (!dev)
        return fail("open device", dev.error());
    device_ = std::move(*dev);
    endpoint_ = std::make_unique<link::Endpoint>(io_, *device_, endpoint_options_);
    // The peer pauses (blocked, no keepalive) while yardsticks run, which on a loaded
    // machine can take seconds: only a long silence means it is gone.
    auto l = endpoint_->add_link({.peer_gid = sim::gid_for_name(peer_),
                                  .channels = link_channels_,
                                  .dead_after = std::chrono::seconds(120)});
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
    return true;
}

bool Session::fail(const char* what, std::error_code ec)
{
    // The endpoint's shutdown completes what is pending with operation_canceled.
    if (error_.empty() && ec != std::errc::operation_canceled)
        error_ = std::string(what) + ": " + ec.message();
    return false;
}

void Session::fail(std::string what)
{
    if (error_.empty())
        error_ = std::move(what);
}

std::string Session::error() const
{
    return link_events_.empty() ? error_ : error_ + " [" + link_events_ + "]";
}

bool Session::run_for(Clock::duration d)
{
    const auto end = Clock::now() + d;
    for (auto now = Clock::now(); now < end && error_.empty(); now = Clock::now()) {
        if (g_interrupted != 0)
            fail("interrupted");
        io_.run_one_for(end - now);
    }
    return error_.empty();
}

bool Session::wait_up()
{
    return run_until([this] { return link_->up(); }, kUpTimeout);
}

uint64_t Session::register_yardstick_dmb()
{
    auto dmb = device_->register_dmb(kYardstickDmbSize, sim::gid_for_name(peer_));
    return dmb ? dmb->token : 0;
}

double Session::move_rate(uint64_t token, std::size_t size, std::size_t piece, double seconds)
{
    std::vector<std::byte> msg(size, std::byte{5});
    piece = std::max<std::size_t>(std::min(piece, kYardstickDmbSize), 8);
    const auto t0 = Clock::now();
    const auto end =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    std::size_t moved = 0;
    std::size_t at = 0;  // offset in the DMB
    while (Clock::now() < end) {
        for (std::size_t done = 0; done < size;) {
            const std::size_t n = std::min({piece, size - done, kYardstickDmbSize - at});
            if (auto r = device_->move(token, 0, at, std::span(msg).subspan(done, n), false); !r) {
                fail("yardstick move", r.error());
                return 0;
            }
            done += n;
            at = (at + n) % kYardstickDmbSize;
        }
        moved += size;
    }
    return static_cast<double>(moved) / std::chrono::duration<double>(Clock::now() - t0).count();
}

FabricGuard::~FabricGuard()
{
    if (auto r = sim::remove_fabric(name_); !r && r.error() != std::errc::no_such_file_or_directory)
        std::fprintf(stderr, "remove fabric %s: %s\n", name_.c_str(), r.error().message().c_str());
}

}  // namespace ism::bench
