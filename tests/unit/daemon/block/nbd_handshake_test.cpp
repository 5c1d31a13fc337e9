// SPDX-License-Identifier: MIT
// The NBD handshake as clients drive it: what nbd-client, qemu and libnbd send, and what
// a broken or hostile client sends.
#include "block/nbd_handshake.hpp"

#include <map>

#include <gtest/gtest.h>

namespace ismd::block::nbd {
namespace {

class TwoExports : public Catalog {
public:
    std::vector<ExportInfo> list() const override { return {data_, logs_}; }
    std::optional<ExportInfo> find(const std::string& name) const override
    {
        if (name == "data" || name.empty())
            return data_;
        if (name == "logs")
            return logs_;
        return std::nullopt;
    }
    ExportInfo data_{"data", "lpar2: /dev/dasdb1", 1 << 20, kHasFlags | kSendFlush | kSendFua, 1,
                     4096,   kMaxPayload};
    ExportInfo logs_{
        "logs", "lpar2: logs.img (read-only)", 4096, kHasFlags | kReadOnly, 1, 4096, kMaxPayload};
};

std::vector<std::byte> client_flags(uint32_t flags)
{
    std::vector<std::byte> v;
    put_u32(v, flags);
    return v;
}

std::vector<std::byte> opt(Opt o, const std::vector<std::byte>& data = {})
{
    std::vector<std::byte> v;
    put_u64(v, kIHaveOpt);
    put_u32(v, static_cast<uint32_t>(o));
    put_u32(v, static_cast<uint32_t>(data.size()));
    v.insert(v.end(), data.begin(), data.end());
    return v;
}

std::vector<std::byte> str(const std::string& s)
{
    std::vector<std::byte> v;
    for (char c : s)
        v.push_back(static_cast<std::byte>(c));
    return v;
}

std::vector<std::byte> go_data(const std::string& name, const std::vector<Info>& infos = {})
{
    std::vector<std::byte> v;
    put_u32(v, static_cast<uint32_t>(name.size()));
    auto n = str(name);
    v.insert(v.end(), n.begin(), n.end());
    put_u16(v, static_cast<uint16_t>(infos.size()));
    for (auto i : infos)
        put_u16(v, static_cast<uint16_t>(i));
    return v;
}

struct Reply {
    uint32_t option;
    uint32_t type;
    std::vector<std::byte> data;
};

std::vector<Reply> replies(std::span<const std::byte> out)
{
    std::vector<Reply> r;
    while (out.size() >= 20) {
        EXPECT_EQ(get_u64(out), kOptReplyMagic);
        const uint32_t len = get_u32(out.subspan(16));
        r.push_back({get_u32(out.subspan(8)), get_u32(out.subspan(12)),
                     std::vector<std::byte>(out.begin() + 20, out.begin() + 20 + len)});
        out = out.subspan(20 + len);
    }
    EXPECT_TRUE(out.empty());
    return r;
}

TEST(NbdHandshake, GreetingIsFixedNewstyleWithNoZeroes)
{
    const auto g = Handshake::greeting();
    ASSERT_EQ(g.size(), 18U);
    EXPECT_EQ(get_u64(g), kNbdMagic);
    EXPECT_EQ(get_u64(std::span(g).subspan(8)), kIHaveOpt);
    EXPECT_EQ(get_u16(std::span(g).subspan(16)), 3);
}

TEST(NbdHandshake, GoWithInfoRequestsAsLibnbdSendsIt)
{
    TwoExports cat;
    Handshake h(cat);
    std::vector<std::byte> in = client_flags(kFlagFixedNewstyle | kFlagNoZeroes);
    for (auto& part : {opt(Opt::structured_reply),
                       opt(Opt::go, go_data("data", {Info::name, Info::description}))})
        in.insert(in.end(), part.begin(), part.end());
    std::vector<std::byte> out;
    // Byte by byte: a client may send in any pieces.
    Handshake::State s = Handshake::State::more;
    for (std::size_t i = 0; i < in.size() && s == Handshake::State::more; ++i)
        s = h.feed(std::span(in).subspan(i, 1), out);
    ASSERT_EQ(s, Handshake::State::transmission) << h.error();
    EXPECT_TRUE(h.structured_replies());
    EXPECT_EQ(h.chosen().name, "data");
    auto r = replies(out);
    ASSERT_EQ(r.size(), 6U);
    EXPECT_EQ(r[0].type, static_cast<uint32_t>(Rep::ack));  // structured replies
    EXPECT_EQ(r[1].type, static_cast<uint32_t>(Rep::info));
    EXPECT_EQ(get_u16(r[1].data), static_cast<uint16_t>(Info::export_));
    EXPECT_EQ(get_u64(std::span(r[1].data).subspan(2)), uint64_t{1} << 20);
    EXPECT_EQ(get_u16(std::span(r[2].data)), static_cast<uint16_t>(Info::block_size));
    EXPECT_EQ(get_u32(std::span(r[2].data).subspan(2 + 4)), 4096U);
    EXPECT_EQ(get_u16(std::span(r[3].data)), static_cast<uint16_t>(Info::name));
    EXPECT_EQ(get_u16(std::span(r[4].data)), static_cast<uint16_t>(Info::description));
    EXPECT_EQ(r[5].type, static_cast<uint32_t>(Rep::ack));
}

TEST(NbdHandshake, ListThenExportNameAsNbdClientDoes)
{
    TwoExports cat;
    Handshake h(cat);
    std::vector<std::byte> in = client_flags(kFlagFixedNewstyle);
    for (auto& part : {opt(Opt::list), opt(Opt::export_name, str("logs"))})
        in.insert(in.end(), part.begin(), part.end());
    std::vector<std::byte> out;
    ASSERT_EQ(h.feed(in, out), Handshake::State::transmission) << h.error();
    // Two SERVER replies, an ACK, then size, flags and 124 zero bytes (no NO_ZEROES).
    const std::size_t tail = 8 + 2 + 124;
    ASSERT_GT(out.size(), tail);
    auto r = replies(std::span(out).first(out.size() - tail));
    ASSERT_EQ(r.size(), 3U);
    EXPECT_EQ(r[0].type, static_cast<uint32_t>(Rep::server));
    EXPECT_EQ(get_u32(r[0].data), 4U);
    EXPECT_EQ(r[2].type, static_cast<uint32_t>(Rep::ack));
    EXPECT_EQ(get_u64(std::span(out).last(tail)), 4096U);
    EXPECT_EQ(get_u16(std::span(out).last(tail).subspan(8)), kHasFlags | kReadOnly);
}

TEST(NbdHandshake, UnknownOptionsAndErrorsLetTheHandshakeGoOn)
{
    TwoExports cat;
    Handshake h(cat);
    std::vector<std::byte> in = client_flags(kFlagFixedNewstyle | kFlagNoZeroes);
    for (auto& part :
         {opt(static_cast<Opt>(4242)), opt(Opt::starttls), opt(Opt::info, go_data("nope")),
          opt(Opt::go, str("xx")), opt(Opt::list, str("x")), opt(Opt::abort)})
        in.insert(in.end(), part.begin(), part.end());
    std::vector<std::byte> out;
    ASSERT_EQ(h.feed(in, out), Handshake::State::abort);
    auto r = replies(out);
    ASSERT_EQ(r.size(), 6U);
    EXPECT_EQ(r[0].type, static_cast<uint32_t>(Rep::err_unsup));
    EXPECT_EQ(r[1].type, static_cast<uint32_t>(Rep::err_unsup));
    EXPECT_EQ(r[2].type, static_cast<uint32_t>(Rep::err_unknown));
    EXPECT_EQ(r[3].type, static_cast<uint32_t>(Rep::err_invalid));
    EXPECT_EQ(r[4].type, static_cast<uint32_t>(Rep::err_invalid));
    EXPECT_EQ(r[5].type, static_cast<uint32_t>(Rep::ack));
}

TEST(NbdHandshake, MetaContextBaseAllocation)
{
    TwoExports cat;
    Handshake h(cat);
    std::vector<std::byte> q;
    put_u32(q, 4);
    auto n = str("data");
    q.insert(q.end(), n.begin(), n.end());
    put_u32(q, 1);
    put_u32(q, 15);
    auto b = str("base:allocation");
    q.insert(q.end(), b.begin(), b.end());
    std::vector<std::byte> in = client_flags(kFlagFixedNewstyle | kFlagNoZeroes);
    for (auto& part : {opt(Opt::set_meta_context, q), opt(Opt::structured_reply),
                       opt(Opt::set_meta_context, q), opt(Opt::go, go_data("data"))})
        in.insert(in.end(), part.begin(), part.end());
    std::vector<std::byte> out;
    ASSERT_EQ(h.feed(in, out), Handshake::State::transmission);
    auto r = replies(out);
    EXPECT_EQ(r[0].type, static_cast<uint32_t>(Rep::err_invalid));  // before structured replies
    EXPECT_EQ(r[2].type, static_cast<uint32_t>(Rep::meta_context));
    EXPECT_EQ(get_u32(r[2].data), 1U);
    EXPECT_TRUE(h.base_allocation());
}

TEST(NbdHandshake, HostileClientsAreCutOff)
{
    TwoExports cat;
    {
        Handshake h(cat);
        std::vector<std::byte> out;
        EXPECT_EQ(h.feed(client_flags(0), out), Handshake::State::error);  // oldstyle
    }
    {
        Handshake h(cat);
        std::vector<std::byte> out;
        EXPECT_EQ(h.feed(client_flags(kFlagFixedNewstyle | 0x80), out), Handshake::State::error);
    }
    {
        Handshake h(cat);
        auto in = client_flags(kFlagFixedNewstyle);
        std::vector<std::byte> bad(16, std::byte{0x11});
        in.insert(in.end(), bad.begin(), bad.end());
        std::vector<std::byte> out;
        EXPECT_EQ(h.feed(in, out), Handshake::State::error);
        EXPECT_EQ(h.error(), "bad option magic");
    }
    {
        // An option haggling loop.
        Handshake h(cat);
        auto in = client_flags(kFlagFixedNewstyle);
        for (int i = 0; i < 1100; ++i) {
            auto o = opt(Opt::structured_reply);
            in.insert(in.end(), o.begin(), o.end());
        }
        std::vector<std::byte> out;
        EXPECT_EQ(h.feed(in, out), Handshake::State::error);
        EXPECT_EQ(h.error(), "more than 1024 options without choosing an export");
    }
    {
        // An over-long option is skipped and refused; the handshake goes on after it.
        Handshake h(cat);
        auto in = client_flags(kFlagFixedNewstyle | kFlagNoZeroes);
        std::vector<std::byte> header;
        put_u64(header, kIHaveOpt);
        put_u32(header, static_cast<uint32_t>(Opt::info));
        put_u32(header, 1 << 20);
        in.insert(in.end(), header.begin(), header.end());
        std::vector<std::byte> out;
        EXPECT_EQ(h.feed(in, out), Handshake::State::more);
        std::vector<std::byte> junk(1 << 20, std::byte{7});
        EXPECT_EQ(h.feed(junk, out), Handshake::State::more);
        EXPECT_EQ(h.feed(opt(Opt::go, go_data("data")), out), Handshake::State::transmission);
        EXPECT_EQ(replies(out)[0].type, static_cast<uint32_t>(Rep::err_too_big));
    }
    {
        Handshake h(cat);
        auto in = client_flags(kFlagFixedNewstyle);
        auto o = opt(Opt::export_name, str("missing"));
        in.insert(in.end(), o.begin(), o.end());
        std::vector<std::byte> out;
        EXPECT_EQ(h.feed(in, out), Handshake::State::error);
        EXPECT_EQ(h.error(), "NBD_OPT_EXPORT_NAME: no export named \"missing\"");
    }
}

TEST(NbdProto, RequestHeaderDecodes)
{
    std::vector<std::byte> b;
    put_u32(b, kRequestMagic);
    put_u16(b, kCmdFua);
    put_u16(b, static_cast<uint16_t>(Cmd::write));
    put_u64(b, 0x1122334455667788ULL);
    put_u64(b, 4096);
    put_u32(b, 512);
    auto r = decode_request(std::span(b).first<kRequestSize>());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->flags, kCmdFua);
    EXPECT_EQ(r->type, Cmd::write);
    EXPECT_EQ(r->cookie, 0x1122334455667788ULL);
    EXPECT_EQ(r->offset, 4096U);
    EXPECT_EQ(r->length, 512U);
    b[0] = std::byte{0};
    EXPECT_FALSE(decode_request(std::span(b).first<kRequestSize>()));
}

}  // namespace
}  // namespace ismd::block::nbd
