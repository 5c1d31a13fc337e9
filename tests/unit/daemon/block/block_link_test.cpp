// SPDX-License-Identifier: MIT
// Suite BlockLinkInMemory.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// The block protocol between an Importer and an Exporter over a real link (two Endpoints on
// the emulated fabric): what an NBD client relies on end to end, many requests in flight,
// no head-of-line blocking, the exporter's window.
#include <algorithm>

#include "block_link_fixture.hpp"

namespace ismd::block::test {
namespace {

TEST_F(BlockLinkInMemory, TheImporterLearnsTheExportsSizeFlagsAndBlockSizes)
{
    auto ro = Disk::open(path_.string(), true, false);
    ASSERT_TRUE(ro);
    ASSERT_NO_FATAL_FAILURE(start({}, {},
                                  {spec("disk", disk_, false, "a temp file"),
                                   spec("ro", std::shared_ptr<Disk>(std::move(*ro)))}));
    EXPECT_EQ(exports_changed_, 1);
    const auto list = importer_->exports();
    ASSERT_EQ(list.size(), 2U);
    EXPECT_EQ(list[0].name, "disk");
    EXPECT_EQ(list[0].description, "a temp file");
    EXPECT_EQ(list[0].size, kDiskSize);
    EXPECT_EQ(list[0].flags & nbd::kReadOnly, 0);
    EXPECT_NE(list[0].flags & nbd::kSendFlush, 0);
    EXPECT_NE(list[0].flags & nbd::kSendTrim, 0);
    EXPECT_EQ(list[0].max_block, nbd::kMaxPayload);
    EXPECT_NE(list[1].flags & nbd::kReadOnly, 0);
    EXPECT_EQ(list[1].flags & nbd::kSendWriteZeroes, 0);
    EXPECT_EQ(importer_->open("nope"), nullptr);
    auto e = importer_->open("ro");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->info().size, kDiskSize);
    // A read-only export refuses writes with EPERM, whatever the importer thinks it may do.
    EXPECT_EQ(io(*e, write(0, pattern(4096, 1))).error, nbd::kEperm);
    EXPECT_EQ(io(*e, command(nbd::Cmd::trim, 0, 4096)).error, nbd::kEperm);
    EXPECT_EQ(io(*e, read(0, 4096)).error, 0U);
}

TEST_F(BlockLinkInMemory, EveryCommandRoundTrips)
{
    ASSERT_NO_FATAL_FAILURE(start());
    auto e = importer_->open("disk");
    ASSERT_NE(e, nullptr);
    const auto data = pattern(3 << 20, 2);  // several pieces
    auto w = io(*e, write(1 << 20, data, nbd::kCmdFua));
    ASSERT_EQ(w.error, 0U) << w.message;
    auto r = io(*e, read(1 << 20, static_cast<uint32_t>(data.size())));
    ASSERT_EQ(r.error, 0U) << r.message;
    EXPECT_TRUE(r.data == data);
    EXPECT_EQ(io(*e, command(nbd::Cmd::flush, 0, 0)).error, 0U);

    // WRITE_ZEROES reads back as zeroes; TRIM is accepted.
    ASSERT_EQ(io(*e, command(nbd::Cmd::write_zeroes, 1 << 20, 65536)).error, 0U);
    r = io(*e, read(1 << 20, 65536));
    ASSERT_EQ(r.error, 0U);
    EXPECT_TRUE(
        std::all_of(r.data.begin(), r.data.end(), [](std::byte b) { return b == std::byte{0}; }));
    r = io(*e, read((1 << 20) + 65536, 4096));
    EXPECT_TRUE(std::equal(r.data.begin(), r.data.end(), data.begin() + 65536));
    EXPECT_EQ(io(*e, command(nbd::Cmd::trim, 2 << 20, 1 << 20)).error, 0U);

    // BLOCK_STATUS: data where written, a hole after what was written.
    auto s = io(*e, command(nbd::Cmd::block_status, 0, 8 << 20));
    ASSERT_EQ(s.error, 0U) << s.message;
    ASSERT_FALSE(s.extents.empty());
    uint64_t total = 0;
    for (const auto& x : s.extents)
        total += x.length;
    EXPECT_LE(total, 8U << 20);
    EXPECT_NE(s.extents[0].flags & nbd::kStateHole, 0U) << "the first MiB was never written";
    auto one = io(*e, command(nbd::Cmd::block_status, 0, 8 << 20, nbd::kCmdReqOne));
    ASSERT_EQ(one.error, 0U);
    EXPECT_EQ(one.extents.size(), 1U);

    // Past the end: EINVAL, with a message.
    auto past = io(*e, read(kDiskSize - 4096, 8192));
    EXPECT_EQ(past.error, nbd::kEinval);
    EXPECT_NE(past.message.find("past the end"), std::string::npos) << past.message;
    EXPECT_EQ(io(*e, write(kDiskSize, pattern(512, 3))).error, nbd::kEinval);
    // The refused write's data was read and dropped: the channel goes on.
    EXPECT_EQ(io(*e, read(1 << 20, 4096)).error, 0U);
    EXPECT_TRUE(exp_violations_.empty());
    EXPECT_TRUE(imp_violations_.empty());

    const auto st = import_status();
    EXPECT_EQ(st["bytes_written"].get<uint64_t>(), data.size());
    EXPECT_EQ(st["errors"].get<uint64_t>(), 2U);
    const auto ex = exporter_->status()["exports"][0];
    EXPECT_EQ(ex["bytes_written"].get<uint64_t>(), data.size());
    EXPECT_EQ(ex["errors"].get<uint64_t>(), 2U);
}

TEST_F(BlockLinkInMemory, ManyRequestsWaitForASlowDiskAtTheExporterWhileTheLinkStaysUp)
{
    ASSERT_NO_FATAL_FAILURE(start());
    auto e = importer_->open("disk");
    ASSERT_NE(e, nullptr);
    ASSERT_NO_FATAL_FAILURE(hold_pool());
    std::vector<std::shared_ptr<Pending>> writes;
    for (unsigned i = 0; i < 100; ++i)
        writes.push_back(submit(*e, write(uint64_t{i} * 8192, pattern(8192, i))));
    // All 100 reach the exporter and wait for the disk; the link stays up meanwhile.
    ASSERT_TRUE(
        run_until([&] { return exporter_in_flight() == 100 && pool_->queued() == 100; }, 10s))
        << exporter_->status().dump();
    EXPECT_EQ(import_status()["in_flight"].get<uint64_t>(), 100U);
    // A disk slower than the link's dead_after (3 s) does not stop the keepalive.
    const uint64_t ups = imp_.link->ups();
    run_for(3500ms);
    EXPECT_TRUE(imp_.link->up());
    EXPECT_EQ(imp_.link->ups(), ups);
    EXPECT_EQ(exporter_in_flight(), 100U);
    release_pool();
    ASSERT_TRUE(run_until(
        [&] {
            return std::all_of(writes.begin(), writes.end(),
                               [](auto& p) { return p->result.has_value(); });
        },
        10s));
    for (unsigned i = 0; i < 100; ++i) {
        ASSERT_EQ(writes[i]->result->error, 0U) << i;
        auto r = io(*e, read(uint64_t{i} * 8192, 8192));
        ASSERT_TRUE(r.data == pattern(8192, i)) << i;
    }
}

TEST_F(BlockLinkInMemory, ASmallReadIsNotHeldUpBehindALargeWrite)
{
    ASSERT_NO_FATAL_FAILURE(start());
    auto e = importer_->open("disk");
    ASSERT_NE(e, nullptr);
    std::vector<std::string> order;
    e->submit(write(0, pattern(32 << 20, 4)), [&](const IoResult& r) {
        EXPECT_EQ(r.error, 0U) << r.message;
        order.emplace_back("write");
    });
    uint64_t sent_at_read = 0;
    e->submit(read(48 << 20, 4096), [&](const IoResult& r) {
        EXPECT_EQ(r.error, 0U) << r.message;
        order.emplace_back("read");
        sent_at_read = imp_channel_->stats().bytes_out;
    });
    ASSERT_TRUE(run_until([&] { return order.size() == 2; }, 20s));
    EXPECT_EQ(order, (std::vector<std::string>{"read", "write"}));
    // The read went out and came back while the write's data was still going out, not
    // after it (the write's disk time alone would let the read overtake it).
    EXPECT_LT(sent_at_read, uint64_t{32} << 20);
}

TEST_F(BlockLinkInMemory, TheImporterKeepsWithinTheExportersWindowAndRequestLimit)
{
    wire::Limits limits;
    limits.window_bytes = 1 << 20;
    limits.max_payload = 1 << 20;
    limits.max_requests = 8;
    ASSERT_NO_FATAL_FAILURE(start(limits));
    auto e = importer_->open("disk");
    ASSERT_NE(e, nullptr);
    ASSERT_NO_FATAL_FAILURE(hold_pool());
    std::vector<std::shared_ptr<Pending>> big;
    for (unsigned i = 0; i < 12; ++i)
        big.push_back(submit(*e, read(uint64_t{i} << 18, 256 << 10)));
    // Four 256 KiB reads fill the 1 MiB window; the rest wait at the importer.
    ASSERT_TRUE(run_until([&] { return exporter_in_flight() == 4; }, 10s));
    run_for(50ms);
    EXPECT_EQ(exporter_in_flight(), 4U);
    EXPECT_EQ(import_status()["in_flight"].get<uint64_t>(), 4U);
    EXPECT_EQ(import_status()["waiting"].get<uint64_t>(), 8U);
    release_pool();
    ASSERT_TRUE(run_until(
        [&] {
            return std::all_of(big.begin(), big.end(),
                               [](auto& p) { return p->result.has_value(); });
        },
        10s));
    for (auto& p : big)
        EXPECT_EQ(p->result->error, 0U) << p->result->message;

    // Small requests: the request limit binds.
    ASSERT_NO_FATAL_FAILURE(hold_pool());
    std::vector<std::shared_ptr<Pending>> small;
    for (unsigned i = 0; i < 20; ++i)
        small.push_back(submit(*e, read(uint64_t{i} << 12, 4096)));
    ASSERT_TRUE(run_until([&] { return exporter_in_flight() == 8; }, 10s));
    run_for(50ms);
    EXPECT_EQ(exporter_in_flight(), 8U);
    release_pool();
    ASSERT_TRUE(run_until(
        [&] {
            return std::all_of(small.begin(), small.end(),
                               [](auto& p) { return p->result.has_value(); });
        },
        10s));
    EXPECT_TRUE(exp_violations_.empty()) << exp_violations_.front();
    // A request larger than the exporter takes fails here, without reaching it.
    EXPECT_EQ(io(*e, read(0, 2 << 20)).error, nbd::kEinval);
}

}  // namespace
}  // namespace ismd::block::test

namespace ismd::block::test {
namespace {

TEST_F(BlockLinkInMemory, AnExporterAttachedAfterTheHelloStillServesTheImporter)
{
    exp_channel_ = std::make_unique<BlockChannel>(*exp_.link, kChannel);
    imp_channel_ = std::make_unique<BlockChannel>(*imp_.link, kChannel);
    importer_ =
        Importer::create(*imp_channel_, io_.get_executor(), {}, [this] { ++exports_changed_; });
    // No exporter yet: the HELLO is answered with an empty list.
    ASSERT_TRUE(run_until([this] { return importer_->ready(); }, 10s));
    EXPECT_TRUE(importer_->exports().empty());
    EXPECT_EQ(exports_changed_, 0);
    exporter_ = std::make_unique<Exporter>(*exp_channel_, *pool_,
                                           std::vector<ExportSpec>{spec("disk", disk_)});
    ASSERT_TRUE(run_until([this] { return exports_changed_ == 1; }, 10s));
    auto e = importer_->open("disk");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(io(*e, write(0, pattern(4096, 5))).error, 0U);
    EXPECT_TRUE(io(*e, read(0, 4096)).data == pattern(4096, 5));
    EXPECT_EQ(exp_channel_->stats().violations, 0U);
}

}  // namespace
}  // namespace ismd::block::test
