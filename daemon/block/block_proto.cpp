// SPDX-License-Identifier: MIT
#include "block/block_proto.hpp"

#include <algorithm>

#include "ism/byte_order.hpp"

namespace ismd::block::wire {

namespace {

constexpr std::size_t kLimitsSize = 20;      // four u32, u16 count, u16 reserved
constexpr std::size_t kEntryFixedSize = 28;  // id, flags, size, 3 block sizes, 2 lengths

void put(std::vector<std::byte>& out, uint64_t v, std::size_t width)
{
    const std::size_t at = out.size();
    out.resize(at + width);
    ism::store_be(std::span(out).subspan(at, width), v);
}

void put_text(std::vector<std::byte>& out, const std::string& s)
{
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
}

}  // namespace

HeaderBytes encode(const Header& h)
{
    HeaderBytes b{};
    b[0] = static_cast<std::byte>(h.type);
    b[1] = static_cast<std::byte>(h.version);
    ism::store_be16(b, 2, h.cmd);
    ism::store_be16(b, 4, h.flags);
    ism::store_be16(b, 6, h.export_id);
    ism::store_be64(b, 8, h.tag);
    ism::store_be64(b, 16, h.offset);
    ism::store_be32(b, 24, h.length);
    ism::store_be32(b, 28, h.payload);
    return b;
}

Header decode(std::span<const std::byte, kHeaderSize> b)
{
    Header h;
    h.type = static_cast<Type>(b[0]);
    h.version = std::to_integer<uint8_t>(b[1]);
    h.cmd = ism::load_be16(b, 2);
    h.flags = ism::load_be16(b, 4);
    h.export_id = ism::load_be16(b, 6);
    h.tag = ism::load_be64(b, 8);
    h.offset = ism::load_be64(b, 16);
    h.length = ism::load_be32(b, 24);
    h.payload = ism::load_be32(b, 28);
    return h;
}

bool known_type(uint8_t type)
{
    return type >= static_cast<uint8_t>(Type::hello) && type <= static_cast<uint8_t>(Type::reply);
}

const char* type_name(Type type)
{
    switch (type) {
        case Type::hello:
            return "HELLO";
        case Type::exports:
            return "EXPORTS";
        case Type::request:
            return "REQUEST";
        case Type::write_data:
            return "WRITE_DATA";
        case Type::read_data:
            return "READ_DATA";
        case Type::reply:
            return "REPLY";
    }
    return "unknown";
}

std::vector<std::byte> encode_exports(const ExportsPayload& p)
{
    std::vector<std::byte> out;
    const std::size_t n = std::min(p.exports.size(), kMaxExports);
    put(out, p.limits.window_bytes, 4);
    put(out, p.limits.max_requests, 4);
    put(out, p.limits.max_payload, 4);
    put(out, p.limits.piece, 4);
    put(out, n, 2);
    put(out, 0, 2);
    for (std::size_t i = 0; i < n; ++i) {
        const auto& e = p.exports[i];
        const std::string name = e.info.name.substr(0, kMaxName);
        const std::string desc = e.info.description.substr(0, kMaxDescription);
        put(out, e.id, 2);
        put(out, e.info.flags, 2);
        put(out, e.info.size, 8);
        put(out, e.info.min_block, 4);
        put(out, e.info.preferred_block, 4);
        put(out, e.info.max_block, 4);
        put(out, name.size(), 2);
        put(out, desc.size(), 2);
        put_text(out, name);
        put_text(out, desc);
    }
    return out;
}

std::optional<ExportsPayload> decode_exports(std::span<const std::byte> b, std::string& why)
{
    if (b.size() < kLimitsSize) {
        why = "EXPORTS shorter than its limits";
        return std::nullopt;
    }
    ExportsPayload p;
    p.limits.window_bytes = ism::load_be32(b, 0);
    p.limits.max_requests = ism::load_be32(b, 4);
    p.limits.max_payload = ism::load_be32(b, 8);
    p.limits.piece = ism::load_be32(b, 12);
    const std::size_t n = ism::load_be16(b, 16);
    if (ism::load_be16(b, 18) != 0) {
        why = "EXPORTS reserved field not zero";
        return std::nullopt;
    }
    if (p.limits.window_bytes == 0 || p.limits.max_requests == 0 || p.limits.max_payload == 0 ||
        p.limits.max_payload > nbd::kMaxPayload || p.limits.piece == 0 ||
        p.limits.piece > kMaxPiece) {
        why = "EXPORTS limits out of range";
        return std::nullopt;
    }
    if (n > kMaxExports) {
        why = "EXPORTS lists more than " + std::to_string(kMaxExports) + " exports";
        return std::nullopt;
    }
    std::size_t at = kLimitsSize;
    for (std::size_t i = 0; i < n; ++i) {
        if (b.size() - at < kEntryFixedSize) {
            why = "EXPORTS entry " + std::to_string(i) + " truncated";
            return std::nullopt;
        }
        ExportEntry e;
        e.id = ism::load_be16(b, at);
        e.info.flags = ism::load_be16(b, at + 2);
        e.info.size = ism::load_be64(b, at + 4);
        e.info.min_block = ism::load_be32(b, at + 12);
        e.info.preferred_block = ism::load_be32(b, at + 16);
        e.info.max_block = ism::load_be32(b, at + 20);
        const std::size_t name_len = ism::load_be16(b, at + 24);
        const std::size_t desc_len = ism::load_be16(b, at + 26);
        at += kEntryFixedSize;
        if (name_len == 0 || name_len > kMaxName || desc_len > kMaxDescription ||
            b.size() - at < name_len + desc_len) {
            why = "EXPORTS entry " + std::to_string(i) + ": bad name or description length";
            return std::nullopt;
        }
        e.info.name.assign(reinterpret_cast<const char*>(b.data() + at), name_len);
        at += name_len;
        e.info.description.assign(reinterpret_cast<const char*>(b.data() + at), desc_len);
        at += desc_len;
        const bool dup = std::any_of(p.exports.begin(), p.exports.end(), [&](const auto& x) {
            return x.id == e.id || x.info.name == e.info.name;
        });
        if (dup) {
            why =
                "EXPORTS names export " + e.info.name + " or id " + std::to_string(e.id) + " twice";
            return std::nullopt;
        }
        p.exports.push_back(std::move(e));
    }
    if (at != b.size()) {
        why = "EXPORTS has trailing bytes";
        return std::nullopt;
    }
    return p;
}

std::vector<std::byte> encode_extents(const std::vector<StatusExtent>& extents)
{
    std::vector<std::byte> out;
    out.reserve(extents.size() * 8);
    for (const auto& e : extents) {
        put(out, e.length, 4);
        put(out, e.flags, 4);
    }
    return out;
}

std::optional<std::vector<StatusExtent>> decode_extents(std::span<const std::byte> b)
{
    if (b.empty() || b.size() % 8 != 0 || b.size() / 8 > kMaxExtents)
        return std::nullopt;
    std::vector<StatusExtent> out(b.size() / 8);
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i].length = ism::load_be32(b, i * 8);
        out[i].flags = ism::load_be32(b, i * 8 + 4);
        if (out[i].length == 0)
            return std::nullopt;
    }
    return out;
}

}  // namespace ismd::block::wire
