// SPDX-License-Identifier: MIT
// The control socket's protocol, version 1 (docs/control.md): shared by ismd and its
// clients (ismctl, ism-console), which use nothing else to reach the daemon.
//
// A connection carries lines of JSON, one object per line, each with "v": 1. A request
// has "op" and optional arguments; its reply has "ok" and either "result" or "error".
// An operation that turns the connection into a stream (console.attach) answers with
// {"ok": true, ...} and then both sides exchange frames: a 1-byte type, a 4-byte
// big-endian payload length, the payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ismd::control {

inline constexpr int kVersion = 1;
/// Longest request or reply line accepted.
inline constexpr std::size_t kMaxLine = std::size_t{1} << 20;
/// Largest frame payload accepted.
inline constexpr std::size_t kMaxFrame = std::size_t{1} << 16;

enum class FrameType : uint8_t {
    data = 1,    // terminal bytes, either way
    resize = 2,  // client -> ismd: u16 cols, u16 rows (big-endian)
    brk = 3,     // client -> ismd: send a break
    detach = 4,  // client -> ismd: the client leaves; ismd closes the connection
    notice = 5,  // ismd -> client: one line of UTF-8 text for the person ("link down")
    state = 6,   // ismd -> client: u8 1 = the peer's console is reachable, 0 = not
    hangup = 7,  // client -> ismd: hang up the remote program (it is respawned by policy)
};

inline constexpr std::size_t kFrameHeader = 5;

/// Appends one frame to `out`.
void append_frame(std::vector<std::byte>& out, FrameType type, std::span<const std::byte> payload);

struct Frame {
    FrameType type;
    std::vector<std::byte> payload;
};

/// Splits a byte stream into frames.
class FrameReader {
public:
    /// Takes bytes; returns false on a frame that is too long or of an unknown type.
    bool feed(std::span<const std::byte> bytes);
    /// The next complete frame, if any.
    std::optional<Frame> next();

private:
    std::vector<std::byte> buffer_;
    std::size_t start_ = 0;
};

}  // namespace ismd::control
