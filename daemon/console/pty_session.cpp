// SPDX-License-Identifier: MIT
#include "console/pty_session.hpp"

#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include "core/log.hpp"

namespace ismd::console {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kReadChunk = 16384;
constexpr auto kQuickDeath = std::chrono::seconds(2);
constexpr auto kMaxBackoff = std::chrono::milliseconds(30000);
constexpr std::size_t kMaxPendingInput = std::size_t{1} << 20;

uint64_t new_session_id()
{
    std::random_device rd;
    uint64_t id = 0;
    while (id == 0)
        id = (uint64_t{rd()} << 32) ^ rd();
    return id;
}

int pidfd_open(pid_t pid)
{
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

}  // namespace

std::vector<std::string> launch_command(const ServeConfig& config, Launcher launcher,
                                        const std::string& pts, const std::string& peer)
{
    if (launcher != Launcher::systemd)
        return config.program;
    std::vector<std::string> cmd = {"/usr/bin/systemd-run",
                                    "--wait",
                                    "--quiet",
                                    "--collect",
                                    "--unit=ismd-console-" + peer,
                                    "--description=ismd console for " + peer,
                                    "--property=StandardInput=tty",
                                    "--property=StandardOutput=tty",
                                    "--property=StandardError=tty",
                                    "--property=TTYPath=" + pts,
                                    "--property=TTYReset=yes",
                                    "--property=TTYVHangup=yes",
                                    "--property=KillMode=process",
                                    "--setenv=TERM=" + config.term,
                                    "--"};
    cmd.insert(cmd.end(), config.program.begin(), config.program.end());
    return cmd;
}

PtySession::PtySession(const asio::any_io_executor& executor, std::string peer, ServeConfig config)
    : executor_(executor),
      peer_(std::move(peer)),
      config_(std::move(config)),
      scrollback_(config_.scrollback),
      session_id_(new_session_id()),
      master_(executor),
      pidfd_(executor),
      respawn_timer_(executor),
      read_buf_(kReadChunk)
{
    launcher_ = config_.launcher;
    if (launcher_ == Launcher::automatic)
        launcher_ =
            std::getenv("INVOCATION_ID") != nullptr && ::access("/usr/bin/systemd-run", X_OK) == 0
                ? Launcher::systemd
                : Launcher::direct;
    if (!config_.transcript.empty()) {
        transcript_ = ism::UniqueFd(
            ::open(config_.transcript.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
        if (!transcript_)
            log(LogLevel::err, "%s: console transcript %s: %s", peer_.c_str(),
                config_.transcript.c_str(), std::strerror(errno));
    }
}

PtySession::~PtySession()
{
    *alive_ = false;
    // respawn_timer_'s own destructor cancels its wait (and, unlike cancel(), cannot throw).
    boost::system::error_code ec;
    master_.close(ec);
    pidfd_.close(ec);
    if (pid_ > 0 && launcher_ == Launcher::systemd) {
        const std::string unit = "ismd-console-" + peer_ + ".service";
        const pid_t stopper = ::fork();
        if (stopper == 0) {
            ::execl("/usr/bin/systemctl", "systemctl", "stop", "--no-block", unit.c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        if (stopper > 0)
            ::waitpid(stopper, nullptr, 0);
    }
    if (pid_ > 0) {
        // The program's whole session goes with us; reap it so no zombie is left.
        ::kill(-pid_, SIGHUP);
        ::kill(pid_, SIGHUP);
        for (int i = 0; i < 50; ++i) {
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_)
                return;
            ::usleep(10000);
        }
        ::kill(-pid_, SIGKILL);
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
}

void PtySession::start()
{
    if (pid_ > 0)
        return;
    respawn_timer_.cancel();
    if (!spawn())
        on_exit(127 << 8);
}

bool PtySession::spawn()
{
    int master = -1;
    int slave = -1;
    winsize ws{};
    ws.ws_col = cols_;
    ws.ws_row = rows_;
    if (::openpty(&master, &slave, nullptr, nullptr, &ws) != 0) {
        log(LogLevel::err, "%s: console: openpty: %s", peer_.c_str(), std::strerror(errno));
        return false;
    }
    ::fcntl(master, F_SETFD, FD_CLOEXEC);

    // Everything the child needs is built before fork: after it, only exec.
    std::vector<std::string> env_strings = {
        "TERM=" + config_.term, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ISMD_CONSOLE_PEER=" + peer_};
    if (const char* lang = std::getenv("LANG"))
        env_strings.push_back(std::string("LANG=") + lang);
    const char* pts = ::ptsname(master);
    std::vector<std::string> command =
        launch_command(config_, launcher_, pts != nullptr ? pts : "", peer_);
    const bool own_tty = launcher_ == Launcher::direct;
    std::vector<char*> argv;
    argv.reserve(command.size() + 1);
    for (auto& a : command)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    envp.reserve(env_strings.size() + 1);
    for (auto& e : env_strings)
        envp.push_back(e.data());
    envp.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) {
        log(LogLevel::err, "%s: console: fork: %s", peer_.c_str(), std::strerror(errno));
        ::close(master);
        ::close(slave);
        return false;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int s = 1; s < NSIG; ++s)
            ::signal(s, SIG_DFL);
        ::setsid();
        if (own_tty) {
            ::ioctl(slave, TIOCSCTTY, 0);
            ::dup2(slave, 0);
            ::dup2(slave, 1);
            ::dup2(slave, 2);
        } else {
            // systemd-run only waits: the unit it starts opens the PTY.
            const int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::dup2(slave, 2);
        }
        ::close_range(3, ~0U, 0);
        ::execve(argv[0], argv.data(), envp.data());
        const char msg[] = "ismd: cannot run the console program\r\n";
        [[maybe_unused]] ssize_t w = ::write(2, msg, sizeof msg - 1);
        ::_exit(127);
    }
    if (own_tty)
        ::close(slave);
    else
        slave_.reset(slave);
    pid_ = pid;
    ++spawns_;
    started_ = std::chrono::steady_clock::now();
    boost::system::error_code ec;
    master_.close(ec);
    master_.assign(master, ec);
    master_.non_blocking(true, ec);
    const int pfd = pidfd_open(pid);
    pidfd_.close(ec);
    if (pfd >= 0)
        pidfd_.assign(pfd, ec);
    log(LogLevel::info, "%s: console: started %s (pid %d)", peer_.c_str(), argv[0],
        static_cast<int>(pid));
    reading_ = false;
    writing_ = false;
    read_more();
    wait_exit();
    flush_input();
    return true;
}

void PtySession::read_more()
{
    if (reading_ || paused_ || !master_.is_open())
        return;
    reading_ = true;
    master_.async_read_some(asio::buffer(read_buf_),
                            [this, alive = std::weak_ptr<bool>(alive_)](
                                const boost::system::error_code& ec, std::size_t n) {
                                if (!alive.lock())
                                    return;
                                reading_ = false;
                                if (ec) {
                                    // EIO: every writer of the slave is gone (the program ended).
                                    // The exit is handled through the pidfd.
                                    return;
                                }
                                emit(std::span(read_buf_).first(n));
                                read_more();
                            });
}

void PtySession::emit(std::span<const std::byte> bytes)
{
    const uint64_t offset = scrollback_.end();
    scrollback_.append(bytes);
    write_transcript(bytes);
    if (on_output_)
        on_output_(offset, bytes);
}

void PtySession::write_transcript(std::span<const std::byte> bytes)
{
    if (!transcript_)
        return;
    // Local file in append mode: the page cache takes it without waiting for the disk.
    while (!bytes.empty()) {
        const ssize_t n = ::write(transcript_.get(), bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log(LogLevel::err, "%s: console transcript: %s; transcript stopped", peer_.c_str(),
                std::strerror(errno));
            transcript_.reset();
            return;
        }
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
}

void PtySession::wait_exit()
{
    if (!pidfd_.is_open())
        return;
    pidfd_.async_wait(
        asio::posix::stream_descriptor::wait_read,
        [this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
            if (!alive.lock() || ec)
                return;
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_)
                on_exit(status);
            else
                wait_exit();
        });
}

void PtySession::on_exit(int status)
{
    // Whatever the program wrote last is still in the PTY: take it before closing.
    if (master_.is_open()) {
        for (;;) {
            const ssize_t n = ::read(master_.native_handle(), read_buf_.data(), read_buf_.size());
            if (n <= 0)
                break;
            emit(std::span(read_buf_).first(static_cast<std::size_t>(n)));
        }
    }
    boost::system::error_code ec;
    master_.close(ec);
    pidfd_.close(ec);
    slave_.reset();
    const pid_t pid = pid_;
    pid_ = -1;
    pending_input_.clear();
    std::string how =
        WIFEXITED(status)     ? "exited with status " + std::to_string(WEXITSTATUS(status))
        : WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                              : "ended";
    const auto ran = std::chrono::steady_clock::now() - started_;
    if (config_.respawn == Respawn::never) {
        log(LogLevel::notice, "%s: console: program (pid %d) %s", peer_.c_str(),
            static_cast<int>(pid), how.c_str());
        if (on_notice_)
            on_notice_("console program " + how + "; it starts again at the next attach");
        return;
    }
    backoff_ = ran < kQuickDeath
                   ? std::min(kMaxBackoff, std::max(std::chrono::milliseconds(1000), 2 * backoff_))
                   : std::chrono::milliseconds(100);
    log(LogLevel::notice, "%s: console: program (pid %d) %s; respawning in %lld ms", peer_.c_str(),
        static_cast<int>(pid), how.c_str(), static_cast<long long>(backoff_.count()));
    if (on_notice_)
        on_notice_("console program " + how + "; respawning");
    respawn_timer_.expires_after(backoff_);
    respawn_timer_.async_wait(
        [this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& e) {
            if (!e && alive.lock())
                start();
        });
}

void PtySession::input(std::span<const std::byte> bytes)
{
    if (pid_ <= 0)
        return;
    if (pending_input_.size() + bytes.size() > kMaxPendingInput)
        return;  // the program reads nothing: typing into the void is dropped
    pending_input_.insert(pending_input_.end(), bytes.begin(), bytes.end());
    flush_input();
}

void PtySession::flush_input()
{
    if (writing_ || pending_input_.empty() || !master_.is_open())
        return;
    writing_ = true;
    auto chunk = std::make_shared<std::vector<std::byte>>(std::move(pending_input_));
    pending_input_.clear();
    asio::async_write(master_, asio::buffer(*chunk),
                      [this, chunk, alive = std::weak_ptr<bool>(alive_)](
                          const boost::system::error_code&, std::size_t) {
                          if (!alive.lock())
                              return;
                          writing_ = false;
                          flush_input();
                      });
}

void PtySession::resize(uint16_t cols, uint16_t rows)
{
    if (cols == 0 || rows == 0)
        return;
    cols_ = cols;
    rows_ = rows;
    if (!master_.is_open())
        return;
    winsize ws{};
    ws.ws_col = cols;
    ws.ws_row = rows;
    ::ioctl(master_.native_handle(), TIOCSWINSZ, &ws);  // the kernel sends SIGWINCH
}

void PtySession::send_break()
{
    if (!master_.is_open())
        return;
    // The line discipline's settings are the slave's: the master has its own.
    const char* pts = ::ptsname(master_.native_handle());
    ism::UniqueFd slave(pts == nullptr ? -1 : ::open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC));
    termios t{};
    if (!slave || ::tcgetattr(slave.get(), &t) != 0)
        return;
    if ((t.c_iflag & IGNBRK) != 0)
        return;
    if ((t.c_iflag & BRKINT) != 0) {
        const pid_t fg = ::tcgetpgrp(master_.native_handle());
        if (fg > 0)
            ::kill(-fg, SIGINT);
        return;
    }
    const std::byte nul{0};
    input(std::span(&nul, 1));
}

void PtySession::hangup()
{
    if (pid_ > 0 && launcher_ == Launcher::systemd) {
        const std::string unit = "ismd-console-" + peer_ + ".service";
        const pid_t p = ::fork();
        if (p == 0) {
            ::execl("/usr/bin/systemctl", "systemctl", "kill", "--signal=SIGHUP", unit.c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        if (p > 0)
            ::waitpid(p, nullptr, 0);
        return;
    }
    if (pid_ > 0) {
        ::kill(-pid_, SIGHUP);
        ::kill(pid_, SIGHUP);
    }
}

void PtySession::pause(bool paused)
{
    paused_ = paused;
    if (!paused_)
        read_more();
}

}  // namespace ismd::console
