// SPDX-License-Identifier: MIT
// The scrollback keeps the newest bytes and knows their offsets, so a client that
// comes back gets exactly what it missed.
#include "console/scrollback.hpp"

#include <string>

#include <gtest/gtest.h>

namespace ismd::console {
namespace {

std::string str(const std::vector<std::byte>& v)
{
    return {reinterpret_cast<const char*>(v.data()), v.size()};
}

void add(Scrollback& s, const std::string& text)
{
    s.append(std::as_bytes(std::span(text)));
}

TEST(Scrollback, KeepsTheNewestBytesWithTheirOffsets)
{
    Scrollback s(8);
    add(s, "hello");
    EXPECT_EQ(s.begin(), 0U);
    EXPECT_EQ(s.end(), 5U);
    EXPECT_EQ(str(s.since(0)), "hello");
    add(s, " world");  // 11 bytes written, 8 kept
    EXPECT_EQ(s.end(), 11U);
    EXPECT_EQ(s.begin(), 3U);
    EXPECT_EQ(str(s.since(0)), "lo world");
    EXPECT_EQ(str(s.since(5)), " world");
    EXPECT_EQ(str(s.since(11)), "");
    EXPECT_EQ(str(s.since(100)), "");
}

TEST(Scrollback, AWriteLargerThanTheRingKeepsItsTail)
{
    Scrollback s(4);
    add(s, "ab");
    add(s, "0123456789");
    EXPECT_EQ(s.end(), 12U);
    EXPECT_EQ(s.size(), 4U);
    EXPECT_EQ(str(s.since(0)), "6789");
    add(s, "X");
    EXPECT_EQ(str(s.since(0)), "789X");
}

}  // namespace
}  // namespace ismd::console
