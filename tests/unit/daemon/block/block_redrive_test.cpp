// SPDX-License-Identifier: MIT
// Suite BlockLinkInMemory (re-drive).
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// Link loss under the importer: requests not answered are sent again when the link returns
// (acknowledged ones never), only after the exporter's disk operations from before the loss
// have finished; when the deadline passes first they fail with ESHUTDOWN, and nothing hangs.
#include <algorithm>

#include "block_link_fixture.hpp"

namespace ismd::block::test {
namespace {

bool all_done(const std::vector<std::shared_ptr<BlockLinkInMemory::Pending>>& v)
{
    return std::all_of(v.begin(), v.end(), [](auto& p) { return p->result.has_value(); });
}

TEST_F(BlockLinkInMemory, UnansweredWritesAreRedrivenAfterALinkLossAndTheDataIsIntact)
{
    ASSERT_NO_FATAL_FAILURE(start({}, {.deadline = 20s}));
    auto e = importer_->open("disk");
    ASSERT_NE(e, nullptr);
    constexpr unsigned kAcked = 16;
    constexpr unsigned kLost = 48;
    constexpr uint32_t kSize = 128 << 10;
    // Acknowledged before the loss: never sent again.
    for (unsigned i = 0; i < kAcked; ++i)
        ASSERT_EQ(io(*e, write(uint64_t{i} * kSize, pattern(kSize, 100))).error, 0U);
    // These reach the exporter and wait for its disk when the link goes.
    ASSERT_NO_FATAL_FAILURE(hold_pool());
    std::vector<std::shared_ptr<Pending>> lost;
    for (unsigned i = 0; i < kLost; ++i)
        lost.push_back(submit(*e, write(uint64_t{i} * kSize, pattern(kSize, i))));
    ASSERT_TRUE(run_until([&] { return pool_->queued() == kLost; }, 10s));
    const uint64_t ups = imp_.link->ups();
    ASSERT_NO_FATAL_FAILURE(lose_link());
    ASSERT_TRUE(run_until(
        [&] { return imp_.link->ups() > ups && imp_.link->up() && exp_.link->up(); }, 10s))
        << "the link did not come back";
    // Back, but the exporter holds EXPORTS while the old writes may still land.
    run_for(100ms);
    EXPECT_FALSE(importer_->ready());
    EXPECT_EQ(exporter_->stale_ops(), kLost);
    EXPECT_FALSE(
        std::any_of(lost.begin(), lost.end(), [](auto& p) { return p->result.has_value(); }));
    release_pool();
    ASSERT_TRUE(run_until([&] { return all_done(lost); }, 10s));
    for (unsigned i = 0; i < kLost; ++i)
        ASSERT_EQ(lost[i]->result->error, 0U) << i << ": " << lost[i]->result->message;
    EXPECT_EQ(import_status()["redriven"].get<uint64_t>(), kLost);
    // Each lost write reached the exporter twice, each acknowledged one once.
    EXPECT_EQ(exporter_->requests_received(), kAcked + 2 * kLost);
    for (unsigned i = 0; i < kLost; ++i) {
        auto r = io(*e, read(uint64_t{i} * kSize, kSize));
        ASSERT_EQ(r.error, 0U);
        ASSERT_TRUE(r.data == pattern(kSize, i)) << i;
    }
    EXPECT_TRUE(exp_violations_.empty());
    EXPECT_TRUE(imp_violations_.empty());
}

TEST_F(BlockLinkInMemory, RequestsQueuedWhileTheLinkIsDownGoOutInOrderToTheExportOfTheirName)
{
    ASSERT_NO_FATAL_FAILURE(start({}, {.deadline = 20s}));
    auto e = importer_->open("disk");
    ASSERT_NE(e, nullptr);
    const uint64_t ups = imp_.link->ups();
    ASSERT_NO_FATAL_FAILURE(lose_link());
    ASSERT_TRUE(run_until([&] { return !importer_->ready(); }, 10s));
    // Meanwhile the exporter's list changes: "disk" gets another id, and its old id now
    // names a read-only export. Re-driven requests find "disk" by name.
    exporter_->set_exports({spec("other", disk_, true), spec("disk", disk_)});
    // Two writes to the same block, then a read of it: the order holds across the loss.
    std::vector<std::shared_ptr<Pending>> p;
    p.push_back(submit(*e, write(0, pattern(4096, 1))));
    p.push_back(submit(*e, write(0, pattern(4096, 2))));
    ASSERT_TRUE(run_until([&] { return imp_.link->ups() > ups && importer_->ready(); }, 10s))
        << "imp up " << imp_.link->up() << " exp up " << exp_.link->up() << " ups "
        << imp_.link->ups() << " exp ups " << exp_.link->ups() << " impch " << imp_channel_->up()
        << " expch " << exp_channel_->up() << " imp frames out " << imp_channel_->stats().frames_out
        << " in " << imp_channel_->stats().frames_in << " exp frames out "
        << exp_channel_->stats().frames_out << " in " << exp_channel_->stats().frames_in
        << exporter_->status().dump() << importer_->status().dump();
    ASSERT_TRUE(run_until([&] { return all_done(p); }, 10s));
    EXPECT_EQ(p[0]->result->error, 0U) << p[0]->result->message;
    EXPECT_EQ(p[1]->result->error, 0U) << p[1]->result->message;
    EXPECT_EQ(exports_changed_, 2);
    auto r = io(*e, read(0, 4096));
    EXPECT_TRUE(r.data == pattern(4096, 2));
}

TEST_F(BlockLinkInMemory, PastTheDeadlineRequestsFailWithEshutdownAndNewOnesAtOnce)
{
    ASSERT_NO_FATAL_FAILURE(start({}, {.deadline = 300ms}));
    auto e = importer_->open("disk");
    ASSERT_NE(e, nullptr);
    ASSERT_NO_FATAL_FAILURE(hold_pool());
    std::vector<std::shared_ptr<Pending>> p;
    for (unsigned i = 0; i < 4; ++i)
        p.push_back(submit(*e, write(uint64_t{i} << 12, pattern(4096, i))));
    p.push_back(submit(*e, command(nbd::Cmd::flush, 0, 0)));
    ASSERT_TRUE(run_until([&] { return pool_->queued() == 5; }, 10s));
    // The exporting side goes away for good.
    exporter_.reset();
    exp_channel_.reset();
    exp_.endpoint->remove_link(exp_.link);
    const auto lost = std::chrono::steady_clock::now();
    ASSERT_TRUE(run_until([&] { return all_done(p); }, 10s)) << "requests hang";
    const auto waited = std::chrono::steady_clock::now() - lost;
    EXPECT_GE(waited, 250ms);
    for (auto& x : p)
        EXPECT_EQ(x->result->error, nbd::kEshutdown) << x->result->message;
    EXPECT_TRUE(importer_->expired());
    // A new request fails at once.
    const auto before = std::chrono::steady_clock::now();
    EXPECT_EQ(io(*e, read(0, 4096)).error, nbd::kEshutdown);
    EXPECT_LT(std::chrono::steady_clock::now() - before, 200ms);
    // The list stays: the local sockets stay for the peer's return.
    EXPECT_EQ(importer_->exports().size(), 1U);
}

}  // namespace
}  // namespace ismd::block::test
