// SPDX-License-Identifier: MIT
#include "block/nbd_proto.hpp"

#include <algorithm>
#include <cerrno>

#include "ism/byte_order.hpp"

namespace ismd::block::nbd {

namespace {

void append_be(std::vector<std::byte>& out, std::size_t width, uint64_t v)
{
    const std::size_t at = out.size();
    out.resize(at + width);
    ism::store_be(std::span(out).subspan(at, width), v);
}

}  // namespace

void put_u16(std::vector<std::byte>& out, uint16_t v)
{
    append_be(out, 2, v);
}

void put_u32(std::vector<std::byte>& out, uint32_t v)
{
    append_be(out, 4, v);
}

void put_u64(std::vector<std::byte>& out, uint64_t v)
{
    append_be(out, 8, v);
}

uint16_t get_u16(std::span<const std::byte> in)
{
    return ism::load_be16(in, 0);
}

uint32_t get_u32(std::span<const std::byte> in)
{
    return ism::load_be32(in, 0);
}

uint64_t get_u64(std::span<const std::byte> in)
{
    return ism::load_be64(in, 0);
}

std::optional<Request> decode_request(std::span<const std::byte, kRequestSize> b)
{
    if (get_u32(b) != kRequestMagic)
        return std::nullopt;
    Request r;
    r.flags = get_u16(b.subspan(4));
    r.type = static_cast<Cmd>(get_u16(b.subspan(6)));
    r.cookie = get_u64(b.subspan(8));
    r.offset = get_u64(b.subspan(16));
    r.length = get_u32(b.subspan(24));
    return r;
}

std::optional<OptionHeader> decode_option(std::span<const std::byte, kOptionHeaderSize> b)
{
    if (get_u64(b) != kIHaveOpt)
        return std::nullopt;
    return OptionHeader{get_u32(b.subspan(8)), get_u32(b.subspan(12))};
}

std::vector<std::byte> greeting()
{
    std::vector<std::byte> out;
    put_u64(out, kNbdMagic);
    put_u64(out, kIHaveOpt);
    put_u16(out, kFlagFixedNewstyle | kFlagNoZeroes);
    return out;
}

void append_option_reply(std::vector<std::byte>& out, uint32_t option, Rep type,
                         std::span<const std::byte> payload)
{
    put_u64(out, kOptReplyMagic);
    put_u32(out, option);
    put_u32(out, static_cast<uint32_t>(type));
    put_u32(out, static_cast<uint32_t>(payload.size()));
    out.insert(out.end(), payload.begin(), payload.end());
}

void append_server_reply(std::vector<std::byte>& out, const std::string& name,
                         const std::string& description)
{
    std::vector<std::byte> p;
    put_u32(p, static_cast<uint32_t>(name.size()));
    for (char c : name)
        p.push_back(static_cast<std::byte>(c));
    for (char c : description)
        p.push_back(static_cast<std::byte>(c));
    append_option_reply(out, static_cast<uint32_t>(Opt::list), Rep::server, p);
}

void append_info_export(std::vector<std::byte>& out, uint32_t option, uint64_t size, uint16_t flags)
{
    std::vector<std::byte> p;
    put_u16(p, static_cast<uint16_t>(Info::export_));
    put_u64(p, size);
    put_u16(p, flags);
    append_option_reply(out, option, Rep::info, p);
}

void append_info_block_size(std::vector<std::byte>& out, uint32_t option, uint32_t minimum,
                            uint32_t preferred, uint32_t maximum)
{
    std::vector<std::byte> p;
    put_u16(p, static_cast<uint16_t>(Info::block_size));
    put_u32(p, minimum);
    put_u32(p, preferred);
    put_u32(p, maximum);
    append_option_reply(out, option, Rep::info, p);
}

void append_info_text(std::vector<std::byte>& out, uint32_t option, Info type,
                      const std::string& text)
{
    std::vector<std::byte> p;
    put_u16(p, static_cast<uint16_t>(type));
    for (char c : text)
        p.push_back(static_cast<std::byte>(c));
    append_option_reply(out, option, Rep::info, p);
}

void append_export_name_reply(std::vector<std::byte>& out, uint64_t size, uint16_t flags,
                              bool no_zeroes)
{
    put_u64(out, size);
    put_u16(out, flags);
    if (!no_zeroes)
        out.insert(out.end(), 124, std::byte{0});
}

void append_simple_reply(std::vector<std::byte>& out, uint32_t error, uint64_t cookie)
{
    put_u32(out, kSimpleReplyMagic);
    put_u32(out, error);
    put_u64(out, cookie);
}

void append_chunk_header(std::vector<std::byte>& out, uint16_t flags, Chunk type, uint64_t cookie,
                         uint32_t length)
{
    put_u32(out, kStructuredReplyMagic);
    put_u16(out, flags);
    put_u16(out, static_cast<uint16_t>(type));
    put_u64(out, cookie);
    put_u32(out, length);
}

void append_error_chunk(std::vector<std::byte>& out, uint64_t cookie, uint32_t error,
                        const std::string& message)
{
    const std::string msg = message.substr(0, 4096);
    append_chunk_header(out, kReplyFlagDone, Chunk::error, cookie,
                        static_cast<uint32_t>(6 + msg.size()));
    put_u32(out, error);
    put_u16(out, static_cast<uint16_t>(msg.size()));
    for (char c : msg)
        out.push_back(static_cast<std::byte>(c));
}

uint32_t from_errno(int err)
{
    switch (err) {
        case 0:
            return 0;
        case EPERM:
        case EROFS:
            return kEperm;
        case ENOMEM:
            return kEnomem;
        case EINVAL:
            return kEinval;
        case ENOSPC:
        case EDQUOT:
        case EFBIG:
            return kEnospc;
        case EOVERFLOW:
            return kEoverflow;
        case EOPNOTSUPP:
            return kEnotsup;
        case ESHUTDOWN:
            return kEshutdown;
        default:
            return kEio;
    }
}

}  // namespace ismd::block::nbd
