// SPDX-License-Identifier: MIT
// PtySession: the program a console serves, on a pseudo-terminal, with its scrollback.
//
// The program (by default a login prompt) runs as the session leader of a new session
// whose controlling terminal is the PTY; it is respawned by policy when it exits, with
// a back-off when it keeps dying at once. Output goes to the scrollback, to the optional
// transcript file and to whoever listens (on_output); reading pauses while the listener
// says it is full, which blocks the program as a slow serial line would.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "console/scrollback.hpp"
#include "ism/unique_fd.hpp"

namespace ismd::console {

enum class Respawn : uint8_t { always, never };

/// How the program is started. direct: ismd forks it, inside ismd's own sandbox.
/// systemd: as a transient unit of its own (systemd-run), outside ismd's sandbox, so a
/// login session is a normal one while ismd stays confined. auto: systemd when ismd
/// runs as a systemd service ($INVOCATION_ID), else direct.
enum class Launcher : uint8_t { automatic, direct, systemd };

struct ServeConfig {
    std::vector<std::string> program;
    bool unauthenticated = false;
    Respawn respawn = Respawn::always;
    std::size_t scrollback = std::size_t{256} << 10;
    std::string transcript;  // empty: none
    std::string term = "vt220";
    Launcher launcher = Launcher::automatic;
};

/// The command that starts `config.program` on the PTY `pts` for `peer`: the program
/// itself (direct), or systemd-run waiting for a transient unit that has the PTY as its
/// terminal.
std::vector<std::string> launch_command(const ServeConfig& config, Launcher launcher,
                                        const std::string& pts, const std::string& peer);

class PtySession {
public:
    using OutputHandler = std::function<void(uint64_t offset, std::span<const std::byte> bytes)>;
    using NoticeHandler = std::function<void(const std::string& text)>;

    PtySession(const boost::asio::any_io_executor& executor, std::string peer, ServeConfig config);
    ~PtySession();
    PtySession(const PtySession&) = delete;
    PtySession& operator=(const PtySession&) = delete;

    void set_output_handler(OutputHandler h) { on_output_ = std::move(h); }
    void set_notice_handler(NoticeHandler h) { on_notice_ = std::move(h); }

    /// Spawns the program (again, if it ended and the policy is never).
    void start();
    void input(std::span<const std::byte> bytes);
    void resize(uint16_t cols, uint16_t rows);
    /// A break: SIGINT to the foreground group when the terminal asks for it (BRKINT),
    /// a NUL byte when it reads breaks as data, nothing when it ignores them (IGNBRK).
    void send_break();
    /// SIGHUP to the program's session; respawned by policy.
    void hangup();
    /// Pauses or resumes reading the program's output.
    void pause(bool paused);

    [[nodiscard]] uint64_t session_id() const noexcept { return session_id_; }
    [[nodiscard]] const Scrollback& scrollback() const noexcept { return scrollback_; }
    [[nodiscard]] bool running() const noexcept { return pid_ > 0; }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] uint64_t spawns() const noexcept { return spawns_; }
    [[nodiscard]] const ServeConfig& config() const noexcept { return config_; }

private:
    bool spawn();
    void read_more();
    void wait_exit();
    void on_exit(int status);
    void emit(std::span<const std::byte> bytes);
    void write_transcript(std::span<const std::byte> bytes);
    void flush_input();

    boost::asio::any_io_executor executor_;
    std::string peer_;
    ServeConfig config_;
    Scrollback scrollback_;
    uint64_t session_id_;
    OutputHandler on_output_;
    NoticeHandler on_notice_;

    boost::asio::posix::stream_descriptor master_;
    boost::asio::posix::stream_descriptor pidfd_;
    boost::asio::steady_timer respawn_timer_;
    pid_t pid_ = -1;
    uint64_t spawns_ = 0;
    std::chrono::steady_clock::time_point started_{};
    std::chrono::milliseconds backoff_{0};
    uint16_t cols_ = 80;
    uint16_t rows_ = 24;
    bool paused_ = false;
    bool reading_ = false;
    bool writing_ = false;
    std::vector<std::byte> read_buf_;
    std::vector<std::byte> pending_input_;
    ism::UniqueFd transcript_;
    ism::UniqueFd slave_;  // held open while a unit owns the program: its exit is the unit's
    Launcher launcher_ = Launcher::direct;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ismd::console
