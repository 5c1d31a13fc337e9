// SPDX-License-Identifier: MIT
// The console's link messages: what one side encodes the other decodes, and what a
// broken or hostile peer sends is refused rather than trusted.
#include "console/console_proto.hpp"

#include <gtest/gtest.h>

namespace ismd::console {
namespace {

std::vector<std::byte> bytes(std::initializer_list<int> v)
{
    std::vector<std::byte> out;
    for (int b : v)
        out.push_back(static_cast<std::byte>(b));
    return out;
}

TEST(ConsoleProto, EveryMessageRoundTrips)
{
    const std::vector<Message> all = {
        Open{7, 0x1122334455667788ULL, 99, 132, 43, "xterm-256color"},
        Close{7},
        Input{bytes({'l', 's', '\r'})},
        Resize{200, 50},
        Break{},
        Hangup{},
        Replay{3, 42, 1000, bytes({'a', 'b'})},
        Output{1002, bytes({'c'})},
        Notice{"program exited"},
        Refused{9, "not served"},
    };
    for (const auto& m : all) {
        const auto wire = encode(m);
        auto back = decode(wire);
        ASSERT_TRUE(back) << "index " << m.index();
        EXPECT_EQ(back->index(), m.index());
        EXPECT_EQ(encode(*back), wire);
    }
    const auto open = std::get<Open>(*decode(encode(Open{7, 5, 6, 132, 43, "vt220"})));
    EXPECT_EQ(open.cols, 132);
    EXPECT_EQ(open.rows, 43);
    EXPECT_EQ(open.term, "vt220");
}

TEST(ConsoleProto, IntegersAreBigEndianOnTheWire)
{
    EXPECT_EQ(encode(Resize{0x0102, 0x0304}), bytes({4, 1, 2, 3, 4}));
    EXPECT_EQ(encode(Close{0x0A0B0C0D}), bytes({2, 0x0A, 0x0B, 0x0C, 0x0D}));
}

TEST(ConsoleProto, MalformedMessagesAreRefused)
{
    EXPECT_FALSE(decode({}));
    EXPECT_FALSE(decode(bytes({0})));                 // no such type
    EXPECT_FALSE(decode(bytes({99, 1})));             // no such type
    EXPECT_FALSE(decode(bytes({2, 0, 0})));           // CLOSE too short
    EXPECT_FALSE(decode(bytes({2, 0, 0, 0, 1, 5})));  // CLOSE with trailing bytes
    EXPECT_FALSE(decode(bytes({4, 0, 80, 0})));       // RESIZE too short
    EXPECT_FALSE(decode(bytes({5, 1})));              // BREAK carries nothing
    EXPECT_FALSE(decode(bytes({17, 0, 0, 0})));       // OUTPUT without its offset
    auto open = encode(Open{1, 0, 0, 80, 24, "vt220"});
    open.push_back(static_cast<std::byte>('\n'));  // TERM with a control character
    EXPECT_FALSE(decode(open));
    auto long_term = encode(Open{1, 0, 0, 80, 24, std::string(kMaxTerm + 1, 'x')});
    EXPECT_FALSE(decode(long_term));
}

}  // namespace
}  // namespace ismd::console
