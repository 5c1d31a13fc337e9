// SPDX-License-Identifier: MIT
// Suite BlockProto.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// The block protocol's encoders and decoders on bytes: the header's big-endian layout, and
// EXPORTS and extent payloads that are cut short, overlong or inconsistent are refused.
#include "block/block_proto.hpp"

#include <gtest/gtest.h>

namespace ismd::block::wire {
namespace {

ExportsPayload two_exports()
{
    ExportsPayload p;
    p.limits.window_bytes = 1 << 20;
    p.limits.max_requests = 7;
    p.limits.max_payload = 1 << 20;
    p.limits.piece = 4096;
    ExportEntry a;
    a.id = 1;
    a.info.name = "data";
    a.info.description = "the data disk";
    a.info.size = 123456789;
    a.info.flags = nbd::kHasFlags | nbd::kReadOnly;
    a.info.min_block = 512;
    ExportEntry b;
    b.id = 9;
    b.info.name = "scratch";
    p.exports = {a, b};
    return p;
}

TEST(BlockProto, TheHeaderIsBigEndianAtItsOffsets)
{
    Header h;
    h.type = Type::request;
    h.cmd = 0x0102;
    h.flags = 0x0304;
    h.export_id = 0x0506;
    h.tag = 0x0708090a0b0c0d0eULL;
    h.offset = 0x1112131415161718ULL;
    h.length = 0x21222324;
    h.payload = 0x31323334;
    const auto b = encode(h);
    EXPECT_EQ(b[0], std::byte{3});
    EXPECT_EQ(b[1], std::byte{kVersion});
    EXPECT_EQ(b[2], std::byte{0x01});
    EXPECT_EQ(b[7], std::byte{0x06});
    EXPECT_EQ(b[8], std::byte{0x07});
    EXPECT_EQ(b[16], std::byte{0x11});
    EXPECT_EQ(b[24], std::byte{0x21});
    EXPECT_EQ(b[31], std::byte{0x34});
    const Header d = decode(b);
    EXPECT_EQ(d.tag, h.tag);
    EXPECT_EQ(d.offset, h.offset);
    EXPECT_EQ(d.length, h.length);
    EXPECT_EQ(d.payload, h.payload);
    EXPECT_EQ(d.export_id, h.export_id);
    EXPECT_FALSE(known_type(0));
    EXPECT_FALSE(known_type(7));
}

TEST(BlockProto, ExportsRoundTrip)
{
    const auto p = two_exports();
    std::string why;
    const auto d = decode_exports(encode_exports(p), why);
    ASSERT_TRUE(d) << why;
    EXPECT_EQ(d->limits.max_requests, 7U);
    EXPECT_EQ(d->limits.piece, 4096U);
    ASSERT_EQ(d->exports.size(), 2U);
    EXPECT_EQ(d->exports[0].id, 1);
    EXPECT_EQ(d->exports[0].info.name, "data");
    EXPECT_EQ(d->exports[0].info.description, "the data disk");
    EXPECT_EQ(d->exports[0].info.size, 123456789U);
    EXPECT_EQ(d->exports[0].info.min_block, 512U);
    EXPECT_EQ(d->exports[1].info.name, "scratch");
}

TEST(BlockProto, EveryTruncationOfExportsIsRefused)
{
    const auto bytes = encode_exports(two_exports());
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        std::string why;
        EXPECT_FALSE(decode_exports(std::span(bytes).first(n), why)) << n;
        EXPECT_FALSE(why.empty());
    }
}

TEST(BlockProto, InconsistentExportsAreRefusedWithAReason)
{
    auto check = [](const ExportsPayload& p, const char* word) {
        std::string why;
        EXPECT_FALSE(decode_exports(encode_exports(p), why)) << word;
        EXPECT_NE(why.find(word), std::string::npos) << why;
    };
    auto p = two_exports();
    p.exports[1].info.name = "data";
    check(p, "twice");
    p = two_exports();
    p.exports[1].id = 1;
    check(p, "twice");
    p = two_exports();
    p.limits.max_payload = 64 << 20;
    check(p, "limits");
    p = two_exports();
    p.limits.window_bytes = 0;
    check(p, "limits");
    p = two_exports();
    p.exports[1].info.name.clear();
    check(p, "name");

    auto bytes = encode_exports(two_exports());
    bytes.push_back(std::byte{0});
    std::string why;
    EXPECT_FALSE(decode_exports(bytes, why));
    EXPECT_NE(why.find("trailing"), std::string::npos) << why;
}

TEST(BlockProto, ExtentsRoundTripAndEmptyOrZeroLengthOnesAreRefused)
{
    const std::vector<StatusExtent> e = {{4096, 0}, {1 << 20, nbd::kStateHole | nbd::kStateZero}};
    const auto d = decode_extents(encode_extents(e));
    ASSERT_TRUE(d);
    ASSERT_EQ(d->size(), 2U);
    EXPECT_EQ((*d)[1].length, 1U << 20);
    EXPECT_EQ((*d)[1].flags, nbd::kStateHole | nbd::kStateZero);
    EXPECT_FALSE(decode_extents({}));
    EXPECT_FALSE(decode_extents(encode_extents({{0, 0}})));
    auto odd = encode_extents(e);
    odd.pop_back();
    EXPECT_FALSE(decode_extents(odd));
}

}  // namespace
}  // namespace ismd::block::wire
