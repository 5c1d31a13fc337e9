// SPDX-License-Identifier: MIT
// ism/byte_order.hpp against literal bytes: the device layer, the link and the tests all
// read and write big-endian fields through it, so its byte order is pinned here, on
// little- and big-endian hosts alike (the s390x run).
#include "ism/byte_order.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

#include <gtest/gtest.h>

namespace {

template <std::size_t N>
std::array<std::byte, N> bytes(const uint8_t (&v)[N])
{
    std::array<std::byte, N> b{};
    for (std::size_t i = 0; i < N; ++i)
        b[i] = std::byte{v[i]};
    return b;
}

TEST(ByteOrder, LoadsReadTheMostSignificantByteFirst)
{
    const auto b = bytes({0xA0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09});
    EXPECT_EQ(ism::load_be16(b, 1), 0x0102U);
    EXPECT_EQ(ism::load_be32(b, 1), 0x01020304U);
    EXPECT_EQ(ism::load_be64(b, 1), 0x0102030405060708ULL);
    EXPECT_EQ(ism::load_be64(b, 2), 0x0203040506070809ULL);
    EXPECT_EQ(ism::load_be16(b, 0), 0xA001U);  // the top bit is not sign-extended
}

TEST(ByteOrder, StoresWriteOnlyTheirOwnBytes)
{
    std::array<std::byte, 12> b{};
    b.fill(std::byte{0xEE});
    ism::store_be16(b, 0, 0x1234);
    ism::store_be32(b, 2, 0x89ABCDEF);
    ism::store_be64(b, 4, 0x0011223344556677ULL);  // overwrites bytes 4 and 5 of the be32
    EXPECT_EQ(b, bytes({0x12, 0x34, 0x89, 0xAB, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77}));
    std::array<std::byte, 4> c{};
    c.fill(std::byte{0xEE});
    ism::store_be16(c, 1, 0xBEEF);
    EXPECT_EQ(c, bytes({0xEE, 0xBE, 0xEF, 0xEE}));
}

TEST(ByteOrder, WidthFollowsTheSpan)
{
    const auto b = bytes({0x01, 0x02, 0x03});
    EXPECT_EQ(ism::load_be(b), 0x010203U);
    EXPECT_EQ(ism::load_be(std::span(b).first(0)), 0U);
    std::array<std::byte, 3> out{};
    ism::store_be(out, 0xFFAABBCCULL);  // the bytes that do not fit are dropped
    EXPECT_EQ(out, bytes({0xAA, 0xBB, 0xCC}));
}

TEST(ByteOrder, RoundTripsEveryWidth)
{
    std::array<std::byte, 8> b{};
    for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0x8000'0000'0000'0000ULL},
                       uint64_t{0xFEDC'BA98'7654'3210ULL}, ~uint64_t{0}}) {
        ism::store_be64(b, 0, v);
        EXPECT_EQ(ism::load_be64(b, 0), v);
        ism::store_be32(b, 4, static_cast<uint32_t>(v));
        EXPECT_EQ(ism::load_be32(b, 4), static_cast<uint32_t>(v));
        ism::store_be16(b, 6, static_cast<uint16_t>(v));
        EXPECT_EQ(ism::load_be16(b, 6), static_cast<uint16_t>(v));
    }
}

}  // namespace
