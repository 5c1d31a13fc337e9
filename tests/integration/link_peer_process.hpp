// SPDX-License-Identifier: MIT
// LinkPeerProcess: runs ism-link-peer (examples/ism_link_peer.cpp) as a separate process
// for the link integration tests, with its stdout on a pipe that the test reads line by
// line. The program is exec'd, not forked from the test, so that the two ends of the link
// share nothing but the emulated fabric.
//
// Cross builds: the peer binaries are then foreign (s390x) and are started through the
// emulator the build runs its tests with (ISM_PEER_EMULATOR, qemu-user), never through a
// binfmt_misc registration the machine may not have.
//
// Ownership: the object owns the child; destroying it kills (SIGKILL) and reaps a child
// that is still running, so a failing test never leaves a peer behind.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace ism::test {

/// What runs a program built by this build: nothing on a native build, the emulator (with
/// its absolute path) on a cross build.
inline std::vector<std::string> peer_launcher()
{
#ifdef ISM_PEER_EMULATOR
    return {ISM_PEER_EMULATOR};
#else
    return {};
#endif
}

/// The argument vector that runs `program` with `args` through `launcher`.
inline std::vector<std::string> peer_command(const std::string& program,
                                             const std::vector<std::string>& args,
                                             const std::vector<std::string>& launcher)
{
    std::vector<std::string> all = launcher;
    all.push_back(program);
    all.insert(all.end(), args.begin(), args.end());
    return all;
}

class LinkPeerProcess {
public:
    using Clock = std::chrono::steady_clock;

    /// Starts `program` with `args` (through `launcher`, if any: an emulator for a foreign
    /// binary); stdout goes to a pipe, stderr stays the test's.
    LinkPeerProcess(const std::string& program, const std::vector<std::string>& args,
                    const std::vector<std::string>& launcher = peer_launcher())
    {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            error_ = errno;
            return;
        }
        out_ = fds[0];
        std::vector<std::string> all = peer_command(program, args, launcher);
        std::vector<char*> argv;
        argv.reserve(all.size() + 1);
        for (auto& a : all)
            argv.push_back(a.data());
        argv.push_back(nullptr);

        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
        // The peer sets up its own signal handling: start it from a clean slate, whatever
        // the test runner blocked or ignored.
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t none;
        sigset_t defaults;
        sigemptyset(&none);
        sigemptyset(&defaults);
        for (int sig : {SIGTERM, SIGINT, SIGPIPE, SIGCHLD})
            sigaddset(&defaults, sig);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        error_ = ::posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), environ);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        if (error_ != 0)
            pid_ = -1;
    }

    ~LinkPeerProcess()
    {
        if (pid_ > 0 && !status_) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
        }
        if (out_ >= 0)
            ::close(out_);
    }

    LinkPeerProcess(const LinkPeerProcess&) = delete;
    LinkPeerProcess& operator=(const LinkPeerProcess&) = delete;

    /// 0 when the process was started, else the posix_spawn error.
    [[nodiscard]] int spawn_error() const noexcept { return error_; }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    /// Everything the peer printed so far, one entry per complete line.
    [[nodiscard]] const std::vector<std::string>& lines() const noexcept { return lines_; }
    /// When line i was read, counted from the start.
    [[nodiscard]] std::chrono::milliseconds when(std::size_t i) const
    {
        return std::chrono::duration_cast<std::chrono::milliseconds>(times_.at(i) - started_);
    }
    /// The pipe to poll for output; -1 once the peer closed its stdout.
    [[nodiscard]] int output_fd() const noexcept { return out_; }
    [[nodiscard]] std::string transcript() const
    {
        std::string all;
        for (const auto& l : lines_)
            all += "  | " + l + "\n";
        return all;
    }

    /// Reads what the peer printed, waiting at most `max` for the first bytes.
    void read_lines(std::chrono::milliseconds max = std::chrono::milliseconds(0))
    {
        if (out_ < 0)
            return;
        pollfd pfd{out_, POLLIN, 0};
        int wait_ms = static_cast<int>(max.count());
        while (::poll(&pfd, 1, wait_ms) > 0) {
            char buf[4096];
            const ssize_t n = ::read(out_, buf, sizeof buf);
            if (n <= 0) {
                ::close(out_);  // the peer closed its stdout: it is gone
                out_ = -1;
                break;
            }
            partial_.append(buf, static_cast<std::size_t>(n));
            for (std::size_t nl = partial_.find('\n'); nl != std::string::npos;
                 nl = partial_.find('\n')) {
                lines_.push_back(partial_.substr(0, nl));
                times_.push_back(Clock::now());
                taken_.push_back(false);
                partial_.erase(0, nl + 1);
            }
            wait_ms = 0;
        }
    }

    /// The first line starting with `prefix` that no earlier call returned, if it was
    /// printed already.
    std::optional<std::string> take_line(std::string_view prefix)
    {
        read_lines();
        for (std::size_t i = 0; i < lines_.size(); ++i) {
            if (!taken_[i] && lines_[i].starts_with(prefix)) {
                taken_[i] = true;
                return lines_[i];
            }
        }
        return std::nullopt;
    }

    /// Like take_line(), but waits up to `timeout` for the line. With `pump`, the wait
    /// calls it over and over instead of sleeping (the test drives its own end of the
    /// link meanwhile); without, it blocks on the pipe.
    std::optional<std::string> wait_line(std::string_view prefix, std::chrono::milliseconds timeout,
                                         const std::function<void()>& pump = {})
    {
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            if (auto line = take_line(prefix))
                return line;
            const auto now = Clock::now();
            if (now >= deadline || out_ < 0)
                return std::nullopt;
            if (pump) {
                pump();
            } else {
                const auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
                read_lines(std::min(left, std::chrono::milliseconds(50)) +
                           std::chrono::milliseconds(1));
            }
        }
    }

    /// True when any line printed so far starts with `prefix`, taken or not.
    [[nodiscard]] bool printed(std::string_view prefix)
    {
        read_lines();
        for (const auto& l : lines_) {
            if (l.starts_with(prefix))
                return true;
        }
        return false;
    }

    bool signal(int sig) { return pid_ > 0 && !status_ && ::kill(pid_, sig) == 0; }

    /// The wait status once the process has ended (it is reaped then); nullopt while it
    /// runs.
    std::optional<int> poll_exit()
    {
        if (pid_ > 0 && !status_) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_)
                status_ = status;
        }
        return status_;
    }

    /// Waits up to `timeout` for the process to end; its wait status, or nullopt.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout)
    {
        const auto deadline = Clock::now() + timeout;
        while (!poll_exit() && Clock::now() < deadline) {
            // Keep its stdout drained, so that it never blocks on a full pipe.
            read_lines(std::chrono::milliseconds(2));
            if (out_ < 0)
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        read_lines();
        return status_;
    }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    int error_ = 0;
    std::string partial_;
    std::vector<std::string> lines_;
    std::vector<bool> taken_;
    std::vector<Clock::time_point> times_;
    Clock::time_point started_ = Clock::now();
    std::optional<int> status_;
};

/// "exited with 3", "killed by signal 9": for assertion messages.
inline std::string describe_status(std::optional<int> status)
{
    if (!status)
        return "still running";
    if (WIFEXITED(*status))
        return "exited with " + std::to_string(WEXITSTATUS(*status));
    if (WIFSIGNALED(*status))
        return "killed by signal " + std::to_string(WTERMSIG(*status));
    return "wait status " + std::to_string(*status);
}

}  // namespace ism::test
