// SPDX-License-Identifier: MIT
// The fabric: GIDs, names, listing, removal, tokens, and reclaiming killed functions.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "ism/sim/faults.hpp"
#include "sim_test_util.hpp"

namespace {

using namespace simtest;
using namespace ism;

class SimFabric : public SimPair {};
class SimTokens : public SimPair {};

TEST(SimGid, ForNameIsStable)
{
    // Pinned: configurations name peers by GID across releases.
    EXPECT_EQ(ism::sim::gid_for_name("lpar1"), ism::sim::gid_for_name("lpar1"));
    EXPECT_NE(ism::sim::gid_for_name("lpar1"), ism::sim::gid_for_name("lpar2"));
    EXPECT_EQ(ism::sim::gid_for_name("lpar1"), 0x408525508c6a94f7ULL);
}

TEST(SimNames, BadNamesAreRejected)
{
    for (const char* bad : {"", "a/b", "../x", ".hidden", "sp ace"}) {
        auto r = ism::sim::fabric_path(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error(), ism::errc::sim_bad_name);
    }
    EXPECT_FALSE(ism::sim::fabric_path(std::string(65, 'x')));
    ism::sim::FunctionOptions o;
    o.fabric = unique_fabric();
    o.name = "bad/name";
    auto f = ism::sim::open_function(o);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error(), ism::errc::sim_bad_name);
}

TEST(SimNames, DirectoryFollowsEnvironment)
{
    ::setenv("ISM_SIM_DIR", "/tmp", 1);
    auto p = ism::sim::fabric_path("x");
    ::unsetenv("ISM_SIM_DIR");
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, "/tmp/ism-sim-x");
    EXPECT_EQ(*ism::sim::fabric_path("x"), "/dev/shm/ism-sim-x");
}

TEST_F(SimFabric, DuplicateGidIsAddressInUse)
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

TEST_F(SimFabric, ListAndRemove)
{
    b_->reg_dmb(a_->gid, 4096);
    auto l = ism::sim::list_functions(fabric_);
    ASSERT_TRUE(l);
    ASSERT_EQ(l->size(), 2U);
    std::set<std::string> names;
    for (const auto& f : *l) {
        names.insert(f.name);
        EXPECT_TRUE(f.alive);
        EXPECT_EQ(f.pid, ::getpid());
        EXPECT_EQ(f.dmbs, f.name == "b" ? 1U : 0U);
        EXPECT_EQ(f.gid, ism::sim::gid_for_name(f.name));
    }
    EXPECT_EQ(names, (std::set<std::string>{"a", "b"}));
    auto busy = ism::sim::remove_fabric(fabric_);
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error(), std::errc::device_or_resource_busy);
    auto none = ism::sim::list_functions("no-such-fabric-here");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error(), std::errc::no_such_file_or_directory);
}

TEST_F(SimFabric, ClosingTellsWritersWithGidEvent)
{
    a_->init();
    ASSERT_EQ(a_->reg_dmb(b_->gid, 4096).first, kRcSuccess);
    const uint64_t gone = b_->gid;
    b_.reset();
    EXPECT_EQ(load_be({a_->ieq, 8}), 1U);
    EXPECT_EQ(load_be({a_->ieq + 32, 4}), 1U);      // DEV
    EXPECT_EQ(load_be({a_->ieq + 32 + 4, 4}), 7U);  // GID disabled
    EXPECT_EQ(load_be({a_->ieq + 32 + 8, 8}), gone);
    EXPECT_EQ(a_->irqs(), 1U);
}

TEST_F(SimFabric, KilledProcessIsReclaimed)
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
    // a had a DMB for the child's GID: it hears that the GID is gone.
    EXPECT_EQ(load_be({a_->ieq + 32 + 4, 4}), 7U);
    EXPECT_EQ(load_be({a_->ieq + 32 + 8, 8}), cgid);
    // A fresh process (here: this one) takes the name and GID again.
    Fn again(fabric_, "child");
    ASSERT_TRUE(again.dev);
}

TEST_F(SimFabric, ReapReclaimsWithoutTouching)
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

TEST_F(SimTokens, UniqueAndNotQuicklyReused)
{
    std::set<uint64_t> seen;
    for (int i = 0; i < 200; ++i) {
        auto [rc, tok] = b_->reg_dmb(a_->gid, 4096, 100);
        ASSERT_EQ(rc, kRcSuccess);
        EXPECT_TRUE(seen.insert(tok).second) << "token reused after " << i;
        auto [rc2, tok2] = a_->reg_dmb(b_->gid, 4096, 100);
        ASSERT_EQ(rc2, kRcSuccess);
        EXPECT_TRUE(seen.insert(tok2).second);
        Bytes p;
        put_be(p, 0, 8, tok);
        ASSERT_EQ(b_->cmd(0x0B, p).rc, kRcSuccess);
        put_be(p, 0, 8, tok2);
        ASSERT_EQ(a_->cmd(0x0B, p).rc, kRcSuccess);
        b_->mem.clear();
        a_->mem.clear();
    }
}

}  // namespace
