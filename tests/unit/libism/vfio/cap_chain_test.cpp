// SPDX-License-Identifier: MIT
// walk_caps(): the capability chains of VFIO info replies (device info for the zPCI
// capabilities, IOMMU info for the IOVA ranges), which come from the kernel and are
// never trusted to stay inside the buffer or to end.
#include "vfio/cap_chain.hpp"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace ism::vfio {
namespace {

constexpr std::size_t kFixed = 24;  // a reply's fixed part, as vfio_device_info

/// A reply buffer of `size` bytes with a capability header {id, version, next} at `at`.
class Reply {
public:
    explicit Reply(std::size_t size) : bytes_(size) {}

    Reply& cap(std::size_t at, uint16_t id, uint16_t version, uint32_t next)
    {
        std::memcpy(bytes_.data() + at, &id, 2);
        std::memcpy(bytes_.data() + at + 2, &version, 2);
        std::memcpy(bytes_.data() + at + 4, &next, 4);
        return *this;
    }
    std::span<const std::byte> span() const { return bytes_; }

private:
    std::vector<std::byte> bytes_;
};

TEST(CapChain, WalksInOrderAndEachCapEndsWhereTheNextBegins)
{
    const Reply r = Reply(96).cap(24, 1, 2, 64).cap(64, 2, 1, 0);
    auto caps = walk_caps(r.span(), 24, kFixed);
    ASSERT_TRUE(caps) << caps.error().message();
    ASSERT_EQ(caps->size(), 2U);
    EXPECT_EQ((*caps)[0].id, 1);
    EXPECT_EQ((*caps)[0].version, 2);
    EXPECT_EQ((*caps)[0].offset, 24U);
    EXPECT_EQ((*caps)[0].bytes.data(), r.span().data() + 24);
    EXPECT_EQ((*caps)[0].bytes.size(), 40U);  // up to the next capability
    EXPECT_EQ((*caps)[1].id, 2);
    EXPECT_EQ((*caps)[1].offset, 64U);
    EXPECT_EQ((*caps)[1].bytes.size(), 32U);  // the last one runs to the end of the reply
}

TEST(CapChain, FirstOffsetZeroMeansNoCapabilities)
{
    auto caps = walk_caps(Reply(24).span(), 0, kFixed);
    ASSERT_TRUE(caps);
    EXPECT_TRUE(caps->empty());
}

TEST(CapChain, RefusesWhatWouldReadOutsideTheReply)
{
    const Reply r = Reply(64).cap(24, 1, 1, 0);
    // Inside the fixed part, past the end, a header that does not fit.
    EXPECT_EQ(walk_caps(r.span(), 16, kFixed).error(), errc::bad_capability);
    EXPECT_EQ(walk_caps(r.span(), 65, kFixed).error(), errc::bad_capability);
    EXPECT_EQ(walk_caps(r.span(), 60, kFixed).error(), errc::bad_capability);
    // A next offset past the end.
    const Reply past = Reply(64).cap(24, 1, 1, 200);
    EXPECT_EQ(walk_caps(past.span(), 24, kFixed).error(), errc::bad_capability);
}

TEST(CapChain, RefusesChainsThatDoNotMoveForward)
{
    const Reply self = Reply(64).cap(24, 1, 1, 24);
    EXPECT_EQ(walk_caps(self.span(), 24, kFixed).error(), errc::bad_capability);
    const Reply back = Reply(96).cap(24, 1, 1, 56).cap(56, 2, 1, 24);
    EXPECT_EQ(walk_caps(back.span(), 24, kFixed).error(), errc::bad_capability);
    // Overlapping its own header is not forward either.
    const Reply overlap = Reply(96).cap(24, 1, 1, 28);
    EXPECT_EQ(walk_caps(overlap.span(), 24, kFixed).error(), errc::bad_capability);
}

TEST(CapChain, LoadNativeNeverReadsPastTheSpan)
{
    std::vector<std::byte> b(6, std::byte{0xFF});
    const uint32_t one = 1;
    std::memcpy(b.data() + 2, &one, 4);
    EXPECT_EQ(load_native<uint32_t>(b, 2), 1U);    // host order, unaligned
    EXPECT_EQ(load_native<uint32_t>(b, 3), 0U);    // would end past the span
    EXPECT_EQ(load_native<uint64_t>(b, 0), 0U);    // wider than the span
    EXPECT_EQ(load_native<uint16_t>(b, 100), 0U);  // starts past the span
    EXPECT_EQ(load_native<uint16_t>(b, 0), 0xFFFFU);
}

}  // namespace
}  // namespace ism::vfio
