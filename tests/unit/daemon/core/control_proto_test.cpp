// SPDX-License-Identifier: MIT
// Console frames on the control socket: split anywhere, they come out whole; a bad
// header is refused as soon as it is complete.
#include "core/control_proto.hpp"

#include <gtest/gtest.h>

namespace ismd::control {
namespace {

TEST(ControlFrames, ComeOutWholeHoweverTheBytesAreSplit)
{
    std::vector<std::byte> stream;
    std::vector<std::byte> big(kMaxFrame, std::byte{0x5A});
    append_frame(stream, FrameType::data, big);
    const std::byte resize[4] = {std::byte{0}, std::byte{80}, std::byte{0}, std::byte{24}};
    append_frame(stream, FrameType::resize, resize);
    append_frame(stream, FrameType::detach, {});
    for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{4096}, stream.size()}) {
        FrameReader r;
        std::vector<Frame> frames;
        for (std::size_t at = 0; at < stream.size(); at += chunk) {
            ASSERT_TRUE(r.feed(std::span(stream).subspan(at, std::min(chunk, stream.size() - at))))
                << "chunk " << chunk << " at " << at;
            while (auto f = r.next())
                frames.push_back(std::move(*f));
        }
        ASSERT_EQ(frames.size(), 3U) << "chunk " << chunk;
        EXPECT_EQ(frames[0].payload, big);
        EXPECT_EQ(frames[1].type, FrameType::resize);
        EXPECT_EQ(frames[2].type, FrameType::detach);
        EXPECT_TRUE(frames[2].payload.empty());
    }
}

TEST(ControlFrames, BadHeadersAreRefused)
{
    FrameReader unknown;
    const std::byte type9[5] = {std::byte{9}, {}, {}, {}, {}};
    EXPECT_FALSE(unknown.feed(type9));
    FrameReader too_long;
    const std::byte huge[5] = {std::byte{1}, std::byte{0}, std::byte{1}, std::byte{0},
                               std::byte{1}};
    EXPECT_FALSE(too_long.feed(huge));
}

}  // namespace
}  // namespace ismd::control
