// SPDX-License-Identifier: MIT
// ism-bench-link's second process (this program exec'd with --peer): it joins the fabric,
// answers the benchmark's control messages, receives and verifies data, echoes pings,
// reports its CPU time, and pauses (blocked on a pipe, so that it uses no CPU) while the
// benchmark measures its floors.
#include "link_peer.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>

#include "bench_common.hpp"
#include "link_traffic.hpp"

namespace ism::bench {

int run_peer(const PeerArgs& a)
{
    // The benchmark owns this process: end with it.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() == 1)
        return 1;
    Session s(a.fabric, "b" + a.index, "a" + a.index,
              link::EndpointOptions{.mode = a.mode, .poll_window = a.poll_window}, a.link_channels);
    if (!s.open()) {
        std::fprintf(stderr, "peer: %s\n", s.error().c_str());
        return 1;
    }
    ControlChannel control(s);
    Receiver receiver(s);
    const uint64_t yardstick = s.register_yardstick_dmb();
    double cpu_at_idle = 0;
    while (true) {
        // The benchmark side times out and ends this process if the conversation stalls.
        auto c = control.next(std::chrono::hours(1));
        if (!c) {
            std::fprintf(stderr, "peer: %s\n", s.error().c_str());
            return 1;
        }
        switch (c->cmd) {
            case Cmd::quit:
                // Acknowledge, and leave only once the benchmark has the acknowledgement:
                // had we gone at once, our departure could overtake the receipt for QUIT.
                control.send({.cmd = Cmd::ready});
                return control.flush() ? 0 : 1;
            case Cmd::hello:
                control.send({.cmd = Cmd::report, .bytes = yardstick});
                break;
            case Cmd::pause: {
                // The answer is in the peer's DMB once send() returns: block right away.
                control.send({.cmd = Cmd::ready});
                char byte = 0;
                if (::read(a.pause_fd, &byte, 1) != 1) {
                    std::fprintf(stderr, "peer: pause pipe closed\n");
                    return 1;
                }
                break;
            }
            case Cmd::idle_begin:
                cpu_at_idle = cpu_seconds_self();
                control.send({.cmd = Cmd::ready});
                break;
            case Cmd::idle_end:
                control.send(
                    {.cmd = Cmd::report,
                     .bytes = static_cast<uint64_t>((cpu_seconds_self() - cpu_at_idle) * 1e9)});
                break;
            default:
                if (!receiver.handle(*c, control)) {
                    std::fprintf(stderr, "peer: unexpected control message %u\n",
                                 static_cast<unsigned>(c->cmd));
                    return 1;
                }
                break;
        }
    }
}

}  // namespace ism::bench
