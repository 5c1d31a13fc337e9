// SPDX-License-Identifier: MIT
// The NBD protocol as the local NBD endpoint speaks it (fixed newstyle handshake,
// simple and structured replies): constants, and encoders and decoders that never trust
// what a client sends. No I/O here: the endpoint feeds bytes in and writes bytes out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ismd::block::nbd {

inline constexpr uint64_t kNbdMagic = 0x4e42444d41474943ULL;  // "NBDMAGIC"
inline constexpr uint64_t kIHaveOpt = 0x49484156454F5054ULL;  // "IHAVEOPT"
inline constexpr uint64_t kOptReplyMagic = 0x3e889045565a9ULL;
inline constexpr uint32_t kRequestMagic = 0x25609513;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698;
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;

// Handshake flags (server) and client flags.
inline constexpr uint16_t kFlagFixedNewstyle = 1 << 0;
inline constexpr uint16_t kFlagNoZeroes = 1 << 1;

enum class Opt : uint32_t {
    export_name = 1,
    abort = 2,
    list = 3,
    starttls = 5,
    info = 6,
    go = 7,
    structured_reply = 8,
    list_meta_context = 9,
    set_meta_context = 10,
};

enum class Rep : uint32_t {
    ack = 1,
    server = 2,
    info = 3,
    meta_context = 4,
    err_unsup = (1U << 31) + 1,
    err_policy = (1U << 31) + 2,
    err_invalid = (1U << 31) + 3,
    err_platform = (1U << 31) + 4,
    err_tls_reqd = (1U << 31) + 5,
    err_unknown = (1U << 31) + 6,
    err_shutdown = (1U << 31) + 7,
    err_block_size_reqd = (1U << 31) + 8,
    err_too_big = (1U << 31) + 9,
};

enum class Info : uint16_t { export_ = 0, name = 1, description = 2, block_size = 3 };

// Transmission flags.
inline constexpr uint16_t kHasFlags = 1 << 0;
inline constexpr uint16_t kReadOnly = 1 << 1;
inline constexpr uint16_t kSendFlush = 1 << 2;
inline constexpr uint16_t kSendFua = 1 << 3;
inline constexpr uint16_t kSendTrim = 1 << 5;
inline constexpr uint16_t kSendWriteZeroes = 1 << 6;
inline constexpr uint16_t kSendDf = 1 << 7;
inline constexpr uint16_t kCanMultiConn = 1 << 8;
inline constexpr uint16_t kSendCache = 1 << 10;

enum class Cmd : uint16_t {
    read = 0,
    write = 1,
    disc = 2,
    flush = 3,
    trim = 4,
    cache = 5,
    write_zeroes = 6,
    block_status = 7,
};

// Command flags.
inline constexpr uint16_t kCmdFua = 1 << 0;
inline constexpr uint16_t kCmdNoHole = 1 << 1;
inline constexpr uint16_t kCmdDf = 1 << 2;
inline constexpr uint16_t kCmdReqOne = 1 << 3;

// Structured reply chunk types and flags.
inline constexpr uint16_t kReplyFlagDone = 1 << 0;
enum class Chunk : uint16_t {
    none = 0,
    offset_data = 1,
    offset_hole = 2,
    block_status = 5,
    error = (1 << 15) + 1,
    error_offset = (1 << 15) + 2,
};

/// The id this server gives the base:allocation meta context.
inline constexpr uint32_t kBaseAllocationId = 1;
// base:allocation flags.
inline constexpr uint32_t kStateHole = 1 << 0;
inline constexpr uint32_t kStateZero = 1 << 1;

// Errors on the wire (Linux values, as the protocol defines them).
inline constexpr uint32_t kEperm = 1;
inline constexpr uint32_t kEio = 5;
inline constexpr uint32_t kEnomem = 12;
inline constexpr uint32_t kEinval = 22;
inline constexpr uint32_t kEnospc = 28;
inline constexpr uint32_t kEoverflow = 75;
inline constexpr uint32_t kEnotsup = 95;
inline constexpr uint32_t kEshutdown = 108;

/// An errno as the error NBD carries: the protocol names a few (EPERM, EIO, ENOMEM,
/// EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN); the rest travel as EIO.
uint32_t from_errno(int err);

inline constexpr std::size_t kRequestSize = 28;
inline constexpr std::size_t kSimpleReplySize = 16;
inline constexpr std::size_t kChunkHeaderSize = 20;
inline constexpr std::size_t kOptionHeaderSize = 16;
/// Largest payload accepted (the protocol's recommended maximum).
inline constexpr uint32_t kMaxPayload = uint32_t{32} << 20;
/// Longest option data accepted during the handshake.
inline constexpr uint32_t kMaxOptionData = 64 << 10;
/// Options a client may send before it must choose an export.
inline constexpr unsigned kMaxOptions = 1024;

struct Request {
    uint16_t flags = 0;
    Cmd type = Cmd::read;
    uint64_t cookie = 0;
    uint64_t offset = 0;
    uint32_t length = 0;
};

/// Decodes a 28-byte request header; nullopt when the magic is wrong.
std::optional<Request> decode_request(std::span<const std::byte, kRequestSize> bytes);

struct OptionHeader {
    uint32_t option = 0;
    uint32_t length = 0;
};
/// Decodes a 16-byte option header; nullopt when the magic is wrong.
std::optional<OptionHeader> decode_option(std::span<const std::byte, kOptionHeaderSize> bytes);

/// The server's greeting: NBDMAGIC, IHAVEOPT, handshake flags.
std::vector<std::byte> greeting();
/// An option reply with its payload.
void append_option_reply(std::vector<std::byte>& out, uint32_t option, Rep type,
                         std::span<const std::byte> payload = {});
/// NBD_REP_SERVER for NBD_OPT_LIST: the name and a description.
void append_server_reply(std::vector<std::byte>& out, const std::string& name,
                         const std::string& description);
/// NBD_REP_INFO items.
void append_info_export(std::vector<std::byte>& out, uint32_t option, uint64_t size,
                        uint16_t flags);
void append_info_block_size(std::vector<std::byte>& out, uint32_t option, uint32_t minimum,
                            uint32_t preferred, uint32_t maximum);
void append_info_text(std::vector<std::byte>& out, uint32_t option, Info type,
                      const std::string& text);
/// The reply to NBD_OPT_EXPORT_NAME: size, flags, and 124 zero bytes unless NO_ZEROES.
void append_export_name_reply(std::vector<std::byte>& out, uint64_t size, uint16_t flags,
                              bool no_zeroes);

void append_simple_reply(std::vector<std::byte>& out, uint32_t error, uint64_t cookie);
/// A structured chunk header; the caller appends `length` bytes of payload.
void append_chunk_header(std::vector<std::byte>& out, uint16_t flags, Chunk type, uint64_t cookie,
                         uint32_t length);
/// A structured error chunk (DONE) with a message.
void append_error_chunk(std::vector<std::byte>& out, uint64_t cookie, uint32_t error,
                        const std::string& message);

void put_u16(std::vector<std::byte>& out, uint16_t v);
void put_u32(std::vector<std::byte>& out, uint32_t v);
void put_u64(std::vector<std::byte>& out, uint64_t v);
uint16_t get_u16(std::span<const std::byte> in);
uint32_t get_u32(std::span<const std::byte> in);
uint64_t get_u64(std::span<const std::byte> in);

}  // namespace ismd::block::nbd
