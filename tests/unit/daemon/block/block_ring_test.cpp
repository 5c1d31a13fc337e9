// SPDX-License-Identifier: MIT
// Suite BlockLinkInMemory (README, Tests).
// The exporter on a pool with a DiskRing: READ, WRITE (FUA) and FLUSH up to the ring's
// limit go through io_uring from the loop, so they are answered even while every pool
// thread is busy; larger ones, TRIM, WRITE_ZEROES and BLOCK_STATUS still wait for a thread.
#include <cstdlib>

#include "block_link_fixture.hpp"

namespace ismd::block::test {
namespace {

using namespace std::chrono_literals;

TEST_F(BlockLinkInMemory, WithARingReadsWritesAndFlushesNeedNoPoolThread)
{
    if (std::string why = pool_->use_ring(16, 1 << 20); !why.empty()) {
        if (std::getenv("CI") != nullptr)
            FAIL() << why;
        GTEST_SKIP() << why;
    }
    ASSERT_NO_FATAL_FAILURE(start());
    auto e = importer_->open("disk");
    ASSERT_NE(e, nullptr);
    ASSERT_NO_FATAL_FAILURE(hold_pool());
    const auto data = pattern(1 << 20, 9);  // several pieces, up to the ring's limit
    auto w = io(*e, write(5 << 20, data, nbd::kCmdFua));
    ASSERT_EQ(w.error, 0U) << w.message;
    auto r = io(*e, read(5 << 20, static_cast<uint32_t>(data.size())));
    ASSERT_EQ(r.error, 0U) << r.message;
    EXPECT_TRUE(r.data == data);
    EXPECT_EQ(io(*e, command(nbd::Cmd::flush, 0, 0)).error, 0U);
    // A range past the end is still the exporter's EINVAL.
    EXPECT_EQ(io(*e, read(kDiskSize - 10, 4096)).error, nbd::kEinval);

    // TRIM, and a read above the ring's limit, wait for a thread.
    auto trim = submit(*e, command(nbd::Cmd::trim, 0, 4096));
    auto big = submit(*e, read(0, (1 << 20) + 4096));
    run_for(100ms);
    EXPECT_FALSE(trim->result.has_value()) << "TRIM ran without a pool thread";
    EXPECT_FALSE(big->result.has_value()) << "a read above the limit ran without a thread";
    release_pool();
    ASSERT_TRUE(run_until([&] { return trim->result && big->result; }, 10s));
    EXPECT_EQ(trim->result->error, 0U);
    EXPECT_EQ(big->result->error, 0U);
}

}  // namespace
}  // namespace ismd::block::test
