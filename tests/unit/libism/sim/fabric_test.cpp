// SPDX-License-Identifier: MIT
// The fabric: GIDs, names, listing, removal, the GID-gone event, and tokens. Claiming and
// reclaiming function slots: slots_test.cpp.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <string>

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

TEST_F(SimFabric, TheFileIsBigEndianWhateverTheHost)
{
    // Offsets written out here, not taken from shm_layout.hpp: a process of another byte
    // order or another build shares this file (docs/sim.md).
    constexpr off_t kTokenTable = 4096;
    constexpr off_t kSlots = kTokenTable + 65536 * 4;
    const auto [rc, token] = b_->reg_dmb(a_->gid, 4096, 40);
    ASSERT_EQ(rc, kRcSuccess);
    const auto path = ism::sim::fabric_path(fabric_);
    ASSERT_TRUE(path);
    const int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    auto read_at = [fd](off_t off, std::size_t n) {
        std::vector<std::byte> b(n);
        EXPECT_EQ(::pread(fd, b.data(), n, off), static_cast<ssize_t>(n));
        return b;
    };
    const auto header = read_at(0, 48);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(header.data()), 4), "ISMF");
    EXPECT_EQ(load_be({header.data() + 4, 4}), 2U);  // layout version
    struct stat st {};
    ASSERT_EQ(::fstat(fd, &st), 0);
    EXPECT_EQ(load_be({header.data() + 16, 8}), static_cast<uint64_t>(st.st_size));
    EXPECT_EQ(load_be({header.data() + 40, 2}), b_->dev->zpci_info()->pchid);
    // b was opened second: slot 1. Its token's entry is (slot + 1) << 16 | sba_idx.
    const auto entry = read_at(kTokenTable + static_cast<off_t>(4 * (token >> 32)), 4);
    EXPECT_EQ(load_be({entry.data(), 4}), (2U << 16) | 40U);
    const off_t stride = static_cast<off_t>(load_be({header.data() + 16, 8}) - 16 * (256ULL << 20) -
                                            static_cast<uint64_t>(kSlots)) /
                         16;
    const auto slot = read_at(kSlots + stride, 32);
    EXPECT_EQ(load_be({slot.data() + 4, 4}), 1U);  // live
    EXPECT_EQ(load_be({slot.data() + 12, 4}), static_cast<uint64_t>(::getpid()));
    EXPECT_EQ(load_be({slot.data() + 16, 8}), b_->gid);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(slot.data() + 24), 2),
              std::string("b\0", 2));
    ::close(fd);
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

TEST_F(SimFabric, ClosingTellsNobodyByDefault)
{
    // As real ISM: the gone function's DMBs are unregistered, stores into them fail, and
    // nothing is posted to the peers that registered DMBs for its GID.
    a_->init();
    b_->init();
    ASSERT_EQ(a_->reg_dmb(b_->gid, 4096).first, kRcSuccess);
    const auto [rc, b_token] = b_->reg_dmb(a_->gid, 4096);
    ASSERT_EQ(rc, kRcSuccess);
    ASSERT_TRUE(a_->store(b_token, 0, false, 0, Bytes(8)));
    const uint64_t gone = b_->gid;
    b_.reset();
    EXPECT_EQ(load_be({a_->ieq, 8}), 0U) << "an event was posted";
    EXPECT_EQ(a_->irqs(), 0U);
    auto r = a_->store(b_token, 0, false, 0, Bytes(8));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::io_error);
    EXPECT_EQ(a_->signal(gone, 1, 0), kRcUnknownGid);
}

TEST_F(SimFabric, ClosingTellsWritersWithGidEventWhenAskedTo)
{
    a_ = std::make_unique<Fn>(fabric_, "a2", 4096, 64, true);
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
