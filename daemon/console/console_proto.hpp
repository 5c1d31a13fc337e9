// SPDX-License-Identifier: MIT
// The console's messages on its link channel (docs/protocol.md, "Console").
//
// One message-mode channel carries both roles: the side that attaches (the client) sends
// OPEN, CLOSE, INPUT, RESIZE, BREAK and HANGUP; the side that runs the program on a PTY
// (the server) sends REPLAY, OUTPUT, NOTICE and REFUSED. The first byte is the type;
// integers are big-endian. A message that does not decode is dropped and counted, never
// trusted: the peer is another machine.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace ismd::console {

enum class MsgType : uint8_t {
    open = 1,      // u32 attach, u64 session seen, u64 offset seen, u16 cols, u16 rows, TERM
    close = 2,     // u32 attach
    input = 3,     // bytes for the PTY
    resize = 4,    // u16 cols, u16 rows
    brk = 5,       // a break
    hangup = 6,    // hang up the program (respawned by policy)
    replay = 16,   // u32 attach, u64 session, u64 first offset, bytes
    output = 17,   // u64 offset of the first byte, bytes
    notice = 18,   // UTF-8 text for the person
    refused = 19,  // u32 attach, UTF-8 reason
};

struct Open {
    uint32_t attach = 0;
    uint64_t session_seen = 0;  // 0: never attached to this server's session
    uint64_t offset_seen = 0;   // output offset the client has up to
    uint16_t cols = 80;
    uint16_t rows = 24;
    std::string term;
};
struct Close {
    uint32_t attach = 0;
};
struct Input {
    std::vector<std::byte> bytes;
};
struct Resize {
    uint16_t cols = 0;
    uint16_t rows = 0;
};
struct Break {};
struct Hangup {};
struct Replay {
    uint32_t attach = 0;
    uint64_t session = 0;
    uint64_t offset = 0;
    std::vector<std::byte> bytes;
};
struct Output {
    uint64_t offset = 0;
    std::vector<std::byte> bytes;
};
struct Notice {
    std::string text;
};
struct Refused {
    uint32_t attach = 0;
    std::string reason;
};

using Message =
    std::variant<Open, Close, Input, Resize, Break, Hangup, Replay, Output, Notice, Refused>;

/// Longest TERM value carried.
inline constexpr std::size_t kMaxTerm = 64;

std::vector<std::byte> encode(const Message& message);
/// Null for anything malformed (unknown type, short, trailing bytes, bad TERM).
std::optional<Message> decode(std::span<const std::byte> bytes);

}  // namespace ismd::console
