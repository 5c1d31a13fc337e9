// SPDX-License-Identifier: MIT
// Function slots: a name and a GID are claimed once per fabric, a fabric holds at most
// kMaxFunctions, and the slot of a process that died is reclaimed for the next one.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "sim_test_util.hpp"

namespace {

using namespace simtest;
using namespace ism;

class SimSlots : public SimPair {};

TEST_F(SimSlots, ALiveNameOrGidIsAddressInUse)
{
    ism::sim::FunctionOptions o;
    o.fabric = fabric_;
    o.name = "a";
    auto same = ism::sim::open_function(o);
    ASSERT_FALSE(same);
    EXPECT_EQ(same.error(), std::errc::address_in_use);
    o.name = "other";
    o.gid = b_->gid;
    auto same_gid = ism::sim::open_function(o);
    ASSERT_FALSE(same_gid);
    EXPECT_EQ(same_gid.error(), std::errc::address_in_use);
    o.gid = 0x77;
    auto ok = ism::sim::open_function(o);
    ASSERT_TRUE(ok);
    EXPECT_EQ(Fn(fabric_, "x").dev->zpci_info()->pchid, (*ok)->zpci_info()->pchid);
}

TEST_F(SimSlots, AFullFabricSaysSo)
{
    std::vector<std::unique_ptr<Fn>> more;
    for (uint32_t i = 2; i < ism::sim::kMaxFunctions; ++i) {
        more.push_back(std::make_unique<Fn>(fabric_, "f" + std::to_string(i)));
        ASSERT_TRUE(more.back()->dev);
    }
    ism::sim::FunctionOptions o;
    o.fabric = fabric_;
    o.name = "one-too-many";
    auto full = ism::sim::open_function(o);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error(), errc::sim_fabric_full);
    // A closed function's slot is free again at once.
    more.pop_back();
    auto now = ism::sim::open_function(o);
    EXPECT_TRUE(now) << now.error().message();
}

TEST_F(SimSlots, ClosingFreesTheNameAndTheGid)
{
    const uint64_t gid = b_->gid;
    b_.reset();
    auto listed = ism::sim::list_functions(fabric_);
    ASSERT_TRUE(listed);
    EXPECT_EQ(listed->size(), 1U);
    Fn again(fabric_, "b");
    ASSERT_TRUE(again.dev);
    EXPECT_EQ(again.gid, gid);
    // The new owner starts clean: nothing the old one registered survives.
    EXPECT_EQ(again.cmd(0x11).rc, kRcNotRegistered);  // UNREG_SBA
}

TEST_F(SimSlots, KilledProcessIsReclaimed)
{
    a_->init();
    const uint64_t cgid = ism::sim::gid_for_name("child");
    ASSERT_EQ(a_->reg_dmb(cgid, 4096).first, kRcSuccess);  // a's DMB, for the child to write
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // No gtest assertions here: a failing child just exits.
        ::close(fds[0]);
        Fn c(fabric_, "child");
        c.init();
        auto [rc, tok] = c.reg_dmb(a_->gid, 4096);
        if (rc != 0 || ::write(fds[1], &tok, sizeof(tok)) != sizeof(tok))
            ::_exit(1);
        ::pause();
        ::_exit(0);
    }
    ::close(fds[1]);
    uint64_t tok = 0;
    ASSERT_EQ(::read(fds[0], &tok, sizeof(tok)), static_cast<ssize_t>(sizeof(tok)));
    ::close(fds[0]);
    ASSERT_TRUE(a_->store(tok, 0, false, 0, Bytes(8)));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    // A sender trusts a peer it saw alive for 1 ms (the per-store liveness check would
    // otherwise be a system call); past that, the death is noticed on the next store.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto l = ism::sim::list_functions(fabric_);
    ASSERT_TRUE(l);
    EXPECT_EQ(l->size(), 3U);
    EXPECT_EQ(load_be({a_->ieq, 8}), 0U);  // nobody noticed yet
    // The first store to the dead function's token fails and reclaims it.
    auto r = a_->store(tok, 0, false, 0, Bytes(8));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
    EXPECT_EQ(a_->signal(cgid, 1, 0), kRcUnknownGid);
    EXPECT_EQ(ism::sim::list_functions(fabric_)->size(), 2U);
    // a had a DMB for the child's GID but did not ask for GID-disabled events: nothing.
    EXPECT_EQ(load_be({a_->ieq, 8}), 0U);
    // A fresh process (here: this one) takes the name and GID again.
    Fn again(fabric_, "child");
    ASSERT_TRUE(again.dev);
}

}  // namespace
