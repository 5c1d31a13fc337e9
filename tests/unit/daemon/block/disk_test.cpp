// SPDX-License-Identifier: MIT
// The export's storage: what an NBD client relies on (data back as written, errors
// instead of zeroes, holes reported as holes), on a sparse file in the temp directory.
#include "block/disk.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include "block/io_pool.hpp"

namespace ismd::block {
namespace {

namespace fs = std::filesystem;

class DiskTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        path_ = fs::temp_directory_path() / ("ismd-disk-" + std::to_string(::getpid()) + ".img");
        const int fd = ::open(path_.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, kSize), 0);
        ::close(fd);
    }
    void TearDown() override { fs::remove(path_); }

    std::unique_ptr<Disk> open(bool read_only = false)
    {
        auto d = Disk::open(path_.string(), read_only, false);
        EXPECT_TRUE(d) << d.error();
        return std::move(*d);
    }

    static constexpr uint64_t kSize = 4 << 20;
    fs::path path_;
};

TEST_F(DiskTest, DataComesBackAsWritten)
{
    auto d = open();
    EXPECT_EQ(d->size(), kSize);
    std::vector<std::byte> in(8192);
    for (std::size_t i = 0; i < in.size(); ++i)
        in[i] = static_cast<std::byte>(i * 7);
    ASSERT_EQ(d->write(12345, in, true), 0);
    std::vector<std::byte> out(in.size());
    ASSERT_EQ(d->read(12345, out), 0);
    EXPECT_EQ(out, in);
}

TEST_F(DiskTest, OutOfRangeAndReadOnlyAreErrors)
{
    auto d = open();
    std::vector<std::byte> buf(4096);
    EXPECT_EQ(d->read(kSize - 100, buf), EINVAL);
    EXPECT_EQ(d->read(UINT64_MAX - 10, buf), EINVAL);
    EXPECT_EQ(d->write(kSize - 100, buf, false), ENOSPC);
    EXPECT_EQ(d->trim(kSize, 1), ENOSPC);
    auto ro = open(true);
    EXPECT_EQ(ro->write(0, buf, false), EPERM);
    EXPECT_EQ(ro->write_zeroes(0, 4096, true, false), EPERM);
    EXPECT_EQ(ro->read(0, buf), 0);
}

TEST_F(DiskTest, HolesTrimAndZeroes)
{
    auto d = open();
    std::vector<std::byte> ones(64 << 10, std::byte{1});
    ASSERT_EQ(d->write(1 << 20, ones, false), 0);
    auto ex = d->extents(0, kSize);
    ASSERT_TRUE(ex);
    uint64_t total = 0;
    uint64_t data = 0;
    for (const auto& e : *ex) {
        total += e.length;
        data += e.hole ? 0 : e.length;
    }
    EXPECT_EQ(total, kSize);
    EXPECT_GE(data, ones.size());
    EXPECT_LT(data, kSize);  // the rest of a sparse file is a hole
    ASSERT_TRUE((*ex)[0].hole);

    ASSERT_EQ(d->write_zeroes((1 << 20) + 4096, 8192, false, false), 0);
    std::vector<std::byte> out(16384);
    ASSERT_EQ(d->read(1 << 20, out), 0);
    EXPECT_EQ(out[0], std::byte{1});
    EXPECT_EQ(out[4096], std::byte{0});
    EXPECT_EQ(out[12287], std::byte{0});
    EXPECT_EQ(out[12288], std::byte{1});

    ASSERT_EQ(d->trim(1 << 20, 64 << 10), 0);
    auto after = d->extents(1 << 20, 64 << 10);
    ASSERT_TRUE(after);
    EXPECT_TRUE((*after)[0].hole);
}

TEST(IoPool, WorkRunsOffTheLoopAndCompletesOnIt)
{
    boost::asio::io_context io;
    // Without work the loop would stop, and run_one() would return at once forever.
    auto guard = boost::asio::make_work_guard(io);
    const auto loop_thread = std::this_thread::get_id();
    int completed = 0;
    {
        IoPool pool(io.get_executor(), 4);
        for (int i = 0; i < 100; ++i) {
            pool.run([] { return std::this_thread::get_id(); },
                     [&](std::thread::id worker) {
                         EXPECT_NE(worker, loop_thread);
                         EXPECT_EQ(std::this_thread::get_id(), loop_thread);
                         ++completed;
                     });
        }
        while (completed < 100)
            io.run_one();
    }
    EXPECT_EQ(completed, 100);
}

}  // namespace
}  // namespace ismd::block
