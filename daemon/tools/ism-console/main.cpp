// SPDX-License-Identifier: MIT
// ism-console: attach the terminal to a peer's console through ismd (man ism-console(1)).
//
//   ism-console attach PEER [-e ^]] [--read-only] [--force] [--no-wait]
//   ism-console break PEER      ism-console hangup PEER
//
// Raw mode, both ways; the window size follows SIGWINCH; the escape character (Ctrl-]
// by default, as virsh console) detaches. The terminal settings are restored on every
// way out: detach, error, SIGTERM, SIGHUP, SIGINT, the peer lost (--no-wait), ismd gone.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/control_proto.hpp"
#include "tools/common/control_client.hpp"
#include "tools/ism-console/terminal.hpp"

namespace {

using ismd::control::FrameType;
using ismd::tools::ControlClient;

enum Exit { kDetached = 0, kError = 1, kPeerLost = 2, kSignal = 3 };

/// "^]" or "^X" -> the control character; a single character -> itself; "none" -> -1.
int parse_escape(const std::string& s)
{
    if (s == "none")
        return -1;
    if (s.size() == 2 && s[0] == '^') {
        const char c = s[1];
        if (c == '?')
            return 0x7F;
        if ((c >= '@' && c <= '_') || (c >= 'a' && c <= 'z'))
            return (c & 0x1F);
    }
    if (s.size() == 1)
        return static_cast<unsigned char>(s[0]);
    return -2;
}

bool write_all(int fd, const void* data, std::size_t n)
{
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            pollfd pfd{fd, POLLOUT, 0};
            ::poll(&pfd, 1, -1);
            continue;
        }
        if (w <= 0)
            return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

bool send_frame(int fd, FrameType type, std::span<const std::byte> payload = {})
{
    std::vector<std::byte> frame;
    ismd::control::append_frame(frame, type, payload);
    return write_all(fd, frame.data(), frame.size());
}

void say(bool raw, const std::string& text)
{
    const std::string line =
        (raw ? "\r\n[ism-console] " : "[ism-console] ") + text + (raw ? "\r\n" : "\n");
    write_all(STDERR_FILENO, line.data(), line.size());
}

struct AttachOptions {
    std::string peer;
    std::string escape = "^]";
    bool read_only = false;
    bool force = false;
    bool no_wait = false;
};

int attach(const std::string& socket, const AttachOptions& o)
{
    const int esc = parse_escape(o.escape);
    if (esc == -2) {
        std::fprintf(
            stderr,
            "ism-console: -e %s: expected ^X (a control character), one character, or none\n",
            o.escape.c_str());
        return kError;
    }
    auto client = ControlClient::connect(socket);
    if (!client) {
        std::fprintf(stderr, "ism-console: %s\n", client.error().c_str());
        return kError;
    }
    // Signals arrive through a descriptor, so the loop below handles them like input
    // and leaves through the same door that restores the terminal.
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGWINCH, SIGTERM, SIGHUP, SIGINT, SIGQUIT})
        sigaddset(&mask, s);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    const int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC);

    ismd::tools::RawTerminal term(STDIN_FILENO);
    nlohmann::json request = {{"v", ismd::control::kVersion},
                              {"op", "console.attach"},
                              {"peer", o.peer},
                              {"mode", o.read_only ? "ro" : "rw"},
                              {"force", o.force}};
    if (auto size = term.size()) {
        request["cols"] = size->first;
        request["rows"] = size->second;
    }
    if (const char* t = std::getenv("TERM"))
        request["term"] = t;
    if (!client->send(request)) {
        term.restore();
        std::fprintf(stderr, "ism-console: writing to ismd: %s\n", std::strerror(errno));
        return kError;
    }
    auto reply = client->read_reply();
    if (!reply || !reply->value("ok", false)) {
        term.restore();
        std::fprintf(stderr, "ism-console: %s\n",
                     reply ? reply->value("error", std::string("ismd refused")).c_str()
                           : reply.error().c_str());
        return kError;
    }
    const bool raw = term.is_tty();
    {
        std::string hello = "attached to " + o.peer + (o.read_only ? " (read-only)" : "");
        if (esc >= 0)
            hello += "; detach with " +
                     (esc < 0x20 ? "Ctrl-" + std::string(1, static_cast<char>(esc + '@'))
                                 : std::string(1, static_cast<char>(esc)));
        say(raw, hello);
    }

    const int cfd = client->fd();
    ismd::control::FrameReader reader;
    if (!reader.feed(std::as_bytes(std::span(client->leftover())))) {
        term.restore();
        say(false, "ismd sent a malformed frame");
        return kError;
    }
    bool stdin_open = true;
    std::vector<char> buf(65536);
    int result = kDetached;
    std::string why;
    for (;;) {
        while (auto f = reader.next()) {
            if (f->type == FrameType::data) {
                if (!write_all(STDOUT_FILENO, f->payload.data(), f->payload.size())) {
                    why = "cannot write to the terminal";
                    result = kError;
                    goto out;
                }
            } else if (f->type == FrameType::notice) {
                say(raw, std::string(reinterpret_cast<const char*>(f->payload.data()),
                                     f->payload.size()));
            } else if (f->type == FrameType::state && f->payload.size() == 1 &&
                       f->payload[0] == std::byte{0} && o.no_wait) {
                why = "the peer's console is not reachable (--no-wait)";
                result = kPeerLost;
                goto out;
            }
        }
        pollfd fds[3] = {
            {cfd, POLLIN, 0}, {sfd, POLLIN, 0}, {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
        if (::poll(fds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            why = std::string("poll: ") + std::strerror(errno);
            result = kError;
            break;
        }
        if ((fds[1].revents & POLLIN) != 0) {
            signalfd_siginfo si{};
            if (::read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGWINCH) {
                    if (auto size = term.size()) {
                        const uint8_t p[4] = {static_cast<uint8_t>(size->first >> 8),
                                              static_cast<uint8_t>(size->first),
                                              static_cast<uint8_t>(size->second >> 8),
                                              static_cast<uint8_t>(size->second)};
                        send_frame(cfd, FrameType::resize, std::as_bytes(std::span(p)));
                    }
                } else {
                    send_frame(cfd, FrameType::detach);
                    why = std::string("detached on ") + strsignal(static_cast<int>(si.ssi_signo));
                    result = kSignal;
                    break;
                }
            }
        }
        if ((fds[2].revents & (POLLIN | POLLHUP)) != 0) {
            const ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
            if (n <= 0) {
                // End of scripted input: keep showing output until ismd or a signal ends it.
                stdin_open = false;
            } else {
                const auto len = static_cast<std::size_t>(n);
                std::size_t cut = len;
                if (esc >= 0) {
                    for (std::size_t i = 0; i < len; ++i)
                        if (static_cast<unsigned char>(buf[i]) == esc) {
                            cut = i;
                            break;
                        }
                }
                if (cut > 0)
                    send_frame(cfd, FrameType::data, std::as_bytes(std::span(buf.data(), cut)));
                if (cut < len) {
                    send_frame(cfd, FrameType::detach);
                    why = "detached from " + o.peer;
                    break;
                }
            }
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            const ssize_t n = ::read(cfd, buf.data(), buf.size());
            if (n <= 0) {
                why = "ismd closed the connection (stopped or restarted?)";
                result = kError;
                break;
            }
            if (!reader.feed(std::as_bytes(std::span(buf.data(), static_cast<std::size_t>(n))))) {
                why = "ismd sent a malformed frame";
                result = kError;
                break;
            }
        }
    }
out:
    term.restore();
    say(false, why);
    return result;
}

int simple_op(const std::string& socket, const std::string& op, const std::string& peer)
{
    auto client = ControlClient::connect(socket);
    if (!client) {
        std::fprintf(stderr, "ism-console: %s\n", client.error().c_str());
        return kError;
    }
    auto r = client->call(op, {{"peer", peer}});
    if (!r) {
        std::fprintf(stderr, "ism-console: %s\n", r.error().c_str());
        return kError;
    }
    return 0;
}

int run_cli(int argc, char** argv)
{
    // A write to a connection ismd closed must be an error we report, not a silent death.
    ::signal(SIGPIPE, SIG_IGN);
    CLI::App app{"ism-console: the console of a peer LPAR, over ISM, through ismd"};
    app.require_subcommand(1);
    std::string socket = ismd::tools::default_control_socket();
    app.add_option("-s,--socket", socket, "ismd's control socket")->capture_default_str();
    AttachOptions o;
    auto* attach_cmd = app.add_subcommand("attach", "Attach this terminal to PEER's console");
    attach_cmd->add_option("peer", o.peer, "The peer's name (ismctl peers)")->required();
    attach_cmd->add_option("-e,--escape", o.escape, "Detach character: ^X, one character, or none")
        ->capture_default_str();
    attach_cmd->add_flag("-r,--read-only", o.read_only, "Watch only; keys are not sent");
    attach_cmd->add_flag("-f,--force", o.force, "Take the writer's seat from whoever has it");
    attach_cmd->add_flag("--no-wait", o.no_wait,
                         "Exit (status 2) when the peer is lost instead of waiting");
    std::string peer;
    auto* brk = app.add_subcommand(
        "break", "Send a break to PEER's console (as the writer's terminal would)");
    brk->add_option("peer", peer, "The peer's name")->required();
    auto* hup =
        app.add_subcommand("hangup", "Hang up PEER's console program (respawned by its policy)");
    hup->add_option("peer", peer, "The peer's name")->required();
    CLI11_PARSE(app, argc, argv);

    if (attach_cmd->parsed())
        return attach(socket, o);
    if (brk->parsed())
        return simple_op(socket, "console.break", peer);
    return simple_op(socket, "console.hangup", peer);
}

}  // namespace

// The CLI edge, the one place that catches: an exception (out of memory, a CLI11 bug)
// ends the program with a message instead of std::terminate.
int main(int argc, char** argv)
{
    try {
        return run_cli(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ism-console: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "ism-console: %s\n", "unknown exception");
    }
    return 1;
}
