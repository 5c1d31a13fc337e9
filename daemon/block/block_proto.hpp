// SPDX-License-Identifier: MIT
// The block protocol on the link (docs/protocol.md section 11): the frame header, the
// EXPORTS payload, BLOCK_STATUS extents. Encoders and decoders only, no I/O; decoders
// never trust the bytes (every length is checked against the span before it is used).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "block/export.hpp"

namespace ismd::block::wire {

inline constexpr uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;

enum class Type : uint8_t {
    hello = 1,       // importer -> exporter: send me your exports
    exports = 2,     // exporter -> importer: limits and the exports offered
    request = 3,     // importer -> exporter: one NBD command
    write_data = 4,  // importer -> exporter: a piece of a WRITE's payload
    read_data = 5,   // exporter -> importer: a piece of a READ's data
    reply = 6,       // exporter -> importer: the end of a request
};

/// Longest payload of HELLO, EXPORTS and REPLY (the frames read into a buffer of their own).
inline constexpr uint32_t kMaxControlPayload = 64 << 10;
/// Longest export name and description in EXPORTS.
inline constexpr std::size_t kMaxName = 256;
inline constexpr std::size_t kMaxDescription = 1024;
/// Most exports one EXPORTS frame carries.
inline constexpr std::size_t kMaxExports = 64;
/// Most extents in a BLOCK_STATUS reply, and the longest error message in a REPLY.
inline constexpr std::size_t kMaxExtents = 4096;
inline constexpr std::size_t kMaxMessage = 1024;
/// Largest data piece either side sends or accepts.
inline constexpr uint32_t kMaxPiece = 1 << 20;

struct Header {
    Type type = Type::hello;
    uint8_t version = kVersion;
    uint16_t cmd = 0;
    uint16_t flags = 0;
    uint16_t export_id = 0;
    uint64_t tag = 0;
    uint64_t offset = 0;
    uint32_t length = 0;  // REQUEST: the NBD length; REPLY: the NBD error
    uint32_t payload = 0;
};

using HeaderBytes = std::array<std::byte, kHeaderSize>;

HeaderBytes encode(const Header& h);
/// The header's fields as they are; the caller checks version and type.
Header decode(std::span<const std::byte, kHeaderSize> bytes);
/// True for a type this version knows.
bool known_type(uint8_t type);
const char* type_name(Type type);

/// What an exporter lets one importer have outstanding.
struct Limits {
    uint32_t window_bytes = 64 << 20;  // data bytes (READ and WRITE lengths) outstanding
    uint32_t max_requests = 128;       // requests outstanding
    uint32_t max_payload = 32 << 20;   // largest READ or WRITE length
    uint32_t piece = 128 << 10;        // largest WRITE_DATA payload it accepts
};

struct ExportEntry {
    uint16_t id = 0;
    nbd::ExportInfo info;
};

struct ExportsPayload {
    Limits limits;
    std::vector<ExportEntry> exports;
};

/// EXPORTS' payload. Names and descriptions longer than the bounds are cut; exports
/// beyond kMaxExports are left out (the caller keeps to the bounds).
std::vector<std::byte> encode_exports(const ExportsPayload& p);
/// nullopt with `why` set when the payload is malformed or breaks the bounds.
std::optional<ExportsPayload> decode_exports(std::span<const std::byte> bytes, std::string& why);

/// BLOCK_STATUS reply payload: (u32 length, u32 flags) per extent.
std::vector<std::byte> encode_extents(const std::vector<StatusExtent>& extents);
std::optional<std::vector<StatusExtent>> decode_extents(std::span<const std::byte> bytes);

}  // namespace ismd::block::wire
