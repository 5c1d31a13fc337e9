// SPDX-License-Identifier: MIT
// Fault injection: what each fault does to the functions it disturbs, and the errors that
// name a fabric, a GID or a token that is not there.
#include "ism/sim/faults.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim_test_util.hpp"

namespace {

using namespace simtest;
using namespace ism;

class SimFaults : public SimPair {};

TEST_F(SimFaults, HeldInterruptsAreRaisedOnceOnRelease)
{
    a_->init();
    b_->init();
    auto [rc, tok] = b_->reg_dmb(a_->gid, 4096);
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(ism::sim::faults::hold_interrupts(fabric_, b_->gid, true));
    ASSERT_TRUE(a_->store(tok, 0, true, 0, Bytes(8)));
    ASSERT_EQ(a_->signal(b_->gid, 1, 0), kRcSuccess);
    EXPECT_EQ(byte_at(b_->sba, 0), 0xC0);  // bits and events are there
    EXPECT_EQ(load_be({b_->ieq, 8}), 1U);
    EXPECT_EQ(b_->irqs(), 0U);
    ASSERT_TRUE(ism::sim::faults::hold_interrupts(fabric_, b_->gid, false));
    EXPECT_EQ(b_->irqs(), 1U);
    ASSERT_TRUE(ism::sim::faults::hold_interrupts(fabric_, b_->gid, true));
    ASSERT_TRUE(ism::sim::faults::hold_interrupts(fabric_, b_->gid, false));
    EXPECT_EQ(b_->irqs(), 0U);  // nothing was held back this time
}

TEST_F(SimFaults, RevokedDmbFailsItsWritersAndTellsNobody)
{
    a_->init();
    b_->init();
    auto [rc, tok] = b_->reg_dmb(a_->gid, 4096);
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(a_->store(tok, 0, false, 0, Bytes(8)));
    ASSERT_TRUE(ism::sim::faults::revoke_dmb(fabric_, b_->gid, tok));
    auto r = a_->store(tok, 0, true, 0, Bytes(8));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
    EXPECT_EQ(b_->irqs(), 0U);
    EXPECT_EQ(load_be({b_->ieq, 8}), 0U);  // the owner hears nothing
    EXPECT_EQ(load_be({a_->ieq, 8}), 0U);  // nor does the writer
    Bytes p;
    put_be(p, 0, 8, tok);
    EXPECT_EQ(b_->cmd(0x0B, p).rc, kRcSuccess);  // the owner still unregisters it
    auto again = ism::sim::faults::revoke_dmb(fabric_, b_->gid, tok);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), errc::hw_unknown_token);
}

TEST_F(SimFaults, UnknownTargetsAreNamed)
{
    const std::string none = fabric_ + "-none";
    auto r = ism::sim::faults::hold_interrupts(none, a_->gid, true);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::no_such_file_or_directory);
    r = ism::sim::faults::reap(none);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::no_such_file_or_directory);

    r = ism::sim::faults::hold_interrupts(fabric_, 0x1234, true);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::hw_unknown_gid);
    r = ism::sim::faults::revoke_dmb(fabric_, 0x1234, 0x0000'0001'0000'0000ULL);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::hw_unknown_gid);
    r = ism::sim::faults::revoke_dmb(fabric_, b_->gid, 0x0000'0001'0000'0000ULL);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::hw_unknown_token);
}

TEST_F(SimFaults, ReapReclaimsWithoutTouching)
{
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        Fn c(fabric_, "child");
        ::raise(SIGKILL);
        ::_exit(1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    auto before = ism::sim::list_functions(fabric_);
    ASSERT_TRUE(before);
    ASSERT_EQ(before->size(), 3U);
    int dead = 0;
    for (const auto& f : *before)
        dead += f.alive ? 0 : 1;
    EXPECT_EQ(dead, 1);
    ASSERT_TRUE(ism::sim::faults::reap(fabric_));
    EXPECT_EQ(ism::sim::list_functions(fabric_)->size(), 2U);
}

}  // namespace
