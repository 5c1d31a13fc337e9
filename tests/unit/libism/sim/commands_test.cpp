// SPDX-License-Identifier: MIT
// The command area: every command, its response length and its return codes.
#include "sim_test_util.hpp"

namespace {

using namespace simtest;
using namespace ism;

class SimCommandArea : public SimPair {};

TEST_F(SimCommandArea, ReadGidAnswersBigEndian)
{
    const Response r = a_->cmd(0x03);
    EXPECT_EQ(r.cmd, 0x03U);
    EXPECT_EQ(r.rc, kRcSuccess);
    ASSERT_EQ(r.len, 16);
    for (std::size_t i = 0; i < 8; ++i)
        EXPECT_EQ(byte_at(r.payload.data(), i), (a_->gid >> (56 - 8 * i)) & 0xFF);
}

TEST_F(SimCommandArea, ResponseHeaderBytesAreBigEndian)
{
    a_->cmd(0x03);
    Bytes h(8);
    ASSERT_TRUE(a_->dev->read(a_->bar(2), h));
    EXPECT_EQ(load_be({h.data(), 8}), 0x00000003'0000'0010ULL);
}

TEST_F(SimCommandArea, UnknownCommandIsRejected)
{
    for (uint32_t code : {0x0CU, 0x0DU, 0x0FU, 0x10U, 0x13U, 0xFFFFU}) {
        const Response r = a_->cmd(code);
        EXPECT_EQ(r.rc, kRcUnknownCommand) << code;
        EXPECT_EQ(r.len, 8);
    }
}

TEST_F(SimCommandArea, WrongRequestLengthIsRejected)
{
    EXPECT_EQ(a_->cmd(0x03, {}, 16).rc, kRcBadLength);
    Bytes p;
    put_be(p, 0, 8, kIovaBase);
    EXPECT_EQ(a_->cmd(0x01, p, 24).rc, kRcBadLength);
    EXPECT_EQ(a_->cmd(0x0A, p).rc, kRcBadLength);
}

TEST_F(SimCommandArea, RegSbaChecksAddressAndTwice)
{
    Bytes p;
    put_be(p, 0, 8, kIovaBase);
    EXPECT_EQ(a_->cmd(0x01, p).rc, kRcBadAddress);  // nothing mapped yet
    auto [m, iova] = a_->dma(4096);
    put_be(p, 0, 8, iova + 8);
    EXPECT_EQ(a_->cmd(0x01, p).rc, kRcBadAddress);  // not a page
    put_be(p, 0, 8, iova);
    EXPECT_EQ(a_->cmd(0x01, p).rc, kRcSuccess);
    EXPECT_EQ(a_->cmd(0x01, p).rc, kRcAlreadyRegistered);
    EXPECT_EQ(a_->cmd(0x11).rc, kRcSuccess);
    EXPECT_EQ(a_->cmd(0x11).rc, kRcNotRegistered);
}

TEST_F(SimCommandArea, RegIeqNeedsFifteenEntries)
{
    auto [m, iova] = a_->dma(4096);
    Bytes p;
    put_be(p, 0, 8, iova);
    put_be(p, 8, 8, 480);
    EXPECT_EQ(a_->cmd(0x02, p).rc, kRcBadAddress);
    put_be(p, 0, 8, iova + 4096 - 256);
    put_be(p, 8, 8, 512);
    EXPECT_EQ(a_->cmd(0x02, p).rc, kRcBadAddress);  // runs off the mapping
    put_be(p, 0, 8, iova + 64);
    EXPECT_EQ(a_->cmd(0x02, p).rc, kRcSuccess);
    // The header: idx 0, ieq_len, entry_len 32.
    EXPECT_EQ(load_be({m->data() + 64, 8}), 0U);
    EXPECT_EQ(load_be({m->data() + 64 + 8, 8}), 512U);
    EXPECT_EQ(load_be({m->data() + 64 + 16, 8}), 32U);
    EXPECT_EQ(a_->cmd(0x02, p).rc, kRcAlreadyRegistered);
    EXPECT_EQ(a_->cmd(0x12).rc, kRcSuccess);
    EXPECT_EQ(a_->cmd(0x12).rc, kRcNotRegistered);
}

TEST_F(SimCommandArea, VlanCommandsAcceptTheIsmV2Probe)
{
    Bytes p;
    put_be(p, 0, 8, 0x1FFF);
    EXPECT_EQ(a_->cmd(0x04, p).rc, kRcSuccess);
    EXPECT_EQ(a_->cmd(0x06).rc, kRcSuccess);
    Response q = a_->cmd(0x08);
    ASSERT_EQ(q.len, 200);
    EXPECT_EQ(load_be({q.payload.data() + 64 - 8, 4}), 1U);  // vlan_required
    EXPECT_EQ(load_be({q.payload.data() + 68 - 8, 4}), 1U);  // vlan_nr_ids
    EXPECT_EQ(load_be({q.payload.data() + 72 - 8, 2}), 0x1FFFU);
    EXPECT_EQ(a_->cmd(0x07).rc, kRcSuccess);
    EXPECT_EQ(a_->cmd(0x05, p).rc, kRcSuccess);
    q = a_->cmd(0x08);
    EXPECT_EQ(load_be({q.payload.data() + 64 - 8, 4}), 0U);
    EXPECT_EQ(load_be({q.payload.data() + 68 - 8, 4}), 0U);
}

TEST_F(SimCommandArea, QueryInfoLayout)
{
    a_->init();
    b_->init();
    ASSERT_EQ(a_->reg_dmb(b_->gid, 65536).first, kRcSuccess);
    ASSERT_EQ(b_->reg_dmb(a_->gid, 65536).first, kRcSuccess);
    ASSERT_EQ(b_->reg_dmb(a_->gid, 65536).first, kRcSuccess);
    const Response r = a_->cmd(0x08);
    ASSERT_EQ(r.rc, kRcSuccess);
    ASSERT_EQ(r.len, 200);
    ASSERT_EQ(r.payload.size(), 192U);
    const std::byte* p = r.payload.data() - 8;  // offsets below are from the header
    EXPECT_EQ(load_be({p + 8, 4}), 2U);
    EXPECT_EQ(load_be({p + 12, 4}), 1U << 20);
    EXPECT_EQ(load_be({p + 24, 8}), a_->gid);
    EXPECT_EQ(load_be({p + 32, 8}), kIovaBase);
    EXPECT_EQ(load_be({p + 40, 8}), kIovaBase + 4096);
    EXPECT_EQ(load_be({p + 48, 4}), 512U);
    EXPECT_EQ(load_be({p + 56, 4}), 1U);  // dmbs_owned
    EXPECT_EQ(load_be({p + 60, 4}), 2U);  // dmbs_used: b's DMBs a may write
}

TEST_F(SimCommandArea, QueryRgidKnowsLiveGids)
{
    Bytes p;
    put_be(p, 0, 8, b_->gid);
    put_be(p, 8, 8, 0);
    EXPECT_EQ(a_->cmd(0x09, p).rc, kRcSuccess);
    put_be(p, 0, 8, a_->gid);
    EXPECT_EQ(a_->cmd(0x09, p).rc, kRcSuccess);  // itself
    put_be(p, 0, 8, 0x1234);
    EXPECT_EQ(a_->cmd(0x09, p).rc, kRcUnknownGid);
    const uint64_t gone = b_->gid;
    b_.reset();
    put_be(p, 0, 8, gone);
    EXPECT_EQ(a_->cmd(0x09, p).rc, kRcUnknownGid);
}

TEST_F(SimCommandArea, RegDmbReturnsHardwareFormToken)
{
    auto [m, iova] = a_->dma(16384);
    Bytes p;
    put_be(p, 0, 8, iova);
    put_be(p, 8, 4, 16384);
    put_be(p, 12, 4, 0);
    put_be(p, 16, 4, 0);
    put_be(p, 20, 4, 0);
    put_be(p, 24, 8, b_->gid);
    const Response r = a_->cmd(0x0A, p);
    EXPECT_EQ(r.cmd, 0x0AU);
    ASSERT_EQ(r.rc, kRcSuccess);
    ASSERT_EQ(r.len, 16);  // the header and one be64 token
    ASSERT_EQ(r.payload.size(), 8U);
    const uint64_t tok = load_be({r.payload.data(), 8});
    EXPECT_NE(tok, 0U);
    EXPECT_EQ(tok & 0xFFFF'FFFFULL, 0U);
    EXPECT_LT(tok, uint64_t{1} << 48);
}

TEST_F(SimCommandArea, RegDmbEnforcesSizeAndAddress)
{
    auto [m, iova] = a_->dma(2 << 20);
    EXPECT_EQ(a_->reg_dmb_at(iova, b_->gid, 0, 0).first, kRcDmbSize);
    EXPECT_EQ(a_->reg_dmb_at(iova, b_->gid, (1 << 20) + 1, 0).first, kRcDmbSize);
    EXPECT_EQ(a_->reg_dmb_at(iova + 8, b_->gid, 4096, 0).first, kRcBadAddress);
    EXPECT_EQ(a_->reg_dmb_at(iova + (2 << 20) - 4096, b_->gid, 8192, 0).first, kRcBadAddress);
    EXPECT_EQ(a_->reg_dmb_at(0x2'0000'0000ULL, b_->gid, 4096, 0).first, kRcBadAddress);
    EXPECT_EQ(a_->reg_dmb_at(iova, b_->gid, 1 << 20, 0).first, kRcSuccess);
}

TEST_F(SimCommandArea, RegDmbEnforcesSbaIndexAndCount)
{
    Fn c(fabric_, "c", 4096, 3);
    auto [m, iova] = c.dma(4 * 4096);
    EXPECT_EQ(c.reg_dmb_at(iova, a_->gid, 4096, 31).first, kRcSbaIndex);
    EXPECT_EQ(c.reg_dmb_at(iova, a_->gid, 4096, 1920).first, kRcSbaIndex);
    EXPECT_EQ(c.reg_dmb_at(iova, a_->gid, 4096, 1919).first, kRcSuccess);
    EXPECT_EQ(c.reg_dmb_at(iova + 4096, a_->gid, 4096, 1919).first, kRcSbaIndex);
    EXPECT_EQ(c.reg_dmb_at(iova + 4096, a_->gid, 4096, 0).first, kRcSuccess);
    EXPECT_EQ(c.reg_dmb_at(iova + 8192, a_->gid, 4096, 0).first, kRcSuccess);
    EXPECT_EQ(c.reg_dmb_at(iova + 12288, a_->gid, 4096, 0).first, kRcDmbLimit);
}

TEST_F(SimCommandArea, RegDmbPicksLowestFreeSbaIndex)
{
    a_->init();
    b_->init();
    const auto t32 = b_->reg_dmb(a_->gid, 4096, 0).second;
    const auto t33 = b_->reg_dmb(a_->gid, 4096, 0).second;
    // A signalled store to each shows which SBA bit it owns: 32 and 33.
    ASSERT_TRUE(a_->store(t32, 0, true, 0, Bytes(8)));
    EXPECT_EQ(byte_at(b_->sba, 4 + 32 / 8), 0x80);
    ASSERT_TRUE(a_->store(t33, 0, true, 0, Bytes(8)));
    EXPECT_EQ(byte_at(b_->sba, 4 + 32 / 8), 0xC0);
}

TEST_F(SimCommandArea, UnregDmbStopsStoresAndForgetsToken)
{
    const auto [rc, tok] = b_->reg_dmb(a_->gid, 4096);
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(a_->store(tok, 0, false, 0, Bytes(8)));
    Bytes p;
    put_be(p, 0, 8, tok);
    EXPECT_EQ(a_->cmd(0x0B, p).rc, kRcUnknownToken);  // not a's DMB
    EXPECT_EQ(b_->cmd(0x0B, p).rc, kRcSuccess);
    EXPECT_EQ(b_->cmd(0x0B, p).rc, kRcUnknownToken);
    auto r = a_->store(tok, 0, false, 0, Bytes(8));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
}

TEST_F(SimCommandArea, SignalIeqQueuesSwrEventWithSenderGid)
{
    b_->init();
    EXPECT_EQ(a_->signal(b_->gid, 0x80, 0x0102030405060708ULL), kRcSuccess);
    const std::byte* ieq = b_->ieq;
    EXPECT_EQ(load_be({ieq, 8}), 1U);  // idx = newest slot + 1
    const std::byte* e = ieq + 32;
    EXPECT_EQ(load_be({e, 4}), 2U);           // type SWR
    EXPECT_EQ(load_be({e + 4, 4}), 0x80U);    // code verbatim
    EXPECT_EQ(load_be({e + 8, 8}), a_->gid);  // tok = the sender's GID
    EXPECT_NE(load_be({e + 16, 8}), 0U);      // time of day
    EXPECT_EQ(load_be({e + 24, 8}), 0x0102030405060708ULL);
    EXPECT_EQ(byte_at(b_->sba, 0), 0xC0);  // s and e
    EXPECT_EQ(a_->signal(0x4242, 1, 1), kRcUnknownGid);
}

}  // namespace
