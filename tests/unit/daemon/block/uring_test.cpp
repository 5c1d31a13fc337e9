// SPDX-License-Identifier: MIT
// DiskRing: the io_uring path for reads, writes and flushes. What the exporter relies on:
// data back as written, FUA and FLUSH reach the disk, the end of the file is an error and
// never zeroes, any number in flight, completions only ever on the loop and never inside
// the call that asked, and the IoPool's threads when the kernel refuses io_uring.
#include "block/uring.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include "block/io_pool.hpp"

namespace ismd::block {
namespace {

namespace fs = std::filesystem;

std::vector<std::byte> bytes(std::size_t n, unsigned seed)
{
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = static_cast<std::byte>((i * 31 + seed * 7 + i / 4096) & 0xff);
    return v;
}

class DiskRingTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        path_ = fs::temp_directory_path() / ("ismd-ring-" + std::to_string(::getpid()) + ".img");
        const int fd = ::open(path_.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, kSize), 0);
        ::close(fd);
        auto d = Disk::open(path_.string(), false, false);
        ASSERT_TRUE(d) << d.error();
        disk_ = std::move(*d);
        auto r = DiskRing::create(io_.get_executor(), kEntries);
        if (!r) {
            // A kernel without io_uring is a setup the fallback test covers; CI has one.
            if (std::getenv("CI") != nullptr)
                FAIL() << r.error();
            GTEST_SKIP() << r.error();
        }
        ring_ = std::move(*r);
    }
    void TearDown() override
    {
        ring_.reset();
        fs::remove(path_);
    }

    /// Runs the loop until `done` holds a result.
    int wait(const std::optional<int>& done)
    {
        for (int i = 0; i < 100000 && !done; ++i)
            io_.run_one_for(std::chrono::milliseconds(10));
        EXPECT_TRUE(done.has_value()) << "no completion";
        return done.value_or(-1);
    }
    int read(uint64_t offset, std::span<std::byte> out)
    {
        std::optional<int> r;
        ring_->read(*disk_, offset, out, [&](int e) { r = e; });
        return wait(r);
    }
    int write(uint64_t offset, std::span<const std::byte> in, bool fua)
    {
        std::optional<int> r;
        ring_->write(*disk_, offset, in, fua, [&](int e) { r = e; });
        return wait(r);
    }

    static constexpr uint64_t kSize = 8 << 20;
    static constexpr unsigned kEntries = 8;
    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_ =
        boost::asio::make_work_guard(io_);
    fs::path path_;
    std::unique_ptr<Disk> disk_;
    std::unique_ptr<DiskRing> ring_;
};

TEST_F(DiskRingTest, DataComesBackAsWrittenAndFuaAndFlushReachTheFile)
{
    const auto in = bytes(3 << 20, 1);  // larger than one page: several pages, one request
    ASSERT_EQ(write(12345, in, false), 0);
    std::vector<std::byte> out(in.size());
    ASSERT_EQ(read(12345, out), 0);
    EXPECT_TRUE(out == in);

    const auto fua = bytes(4096, 2);
    ASSERT_EQ(write(kSize - 4096, fua, true), 0);
    std::optional<int> flushed;
    ring_->flush(*disk_, [&](int e) { flushed = e; });
    EXPECT_EQ(wait(flushed), 0);
    // What the ring wrote is in the file itself, as pread sees it.
    std::vector<std::byte> back(4096);
    ASSERT_EQ(disk_->read(kSize - 4096, back), 0);
    EXPECT_TRUE(back == fua);
}

TEST_F(DiskRingTest, RangesDiskRefusesAreRefusedTheSameWay)
{
    std::vector<std::byte> buf(4096);
    EXPECT_EQ(read(kSize - 100, buf), EINVAL);
    EXPECT_EQ(read(UINT64_MAX - 10, buf), EINVAL);
    EXPECT_EQ(write(kSize - 100, buf, false), ENOSPC);
    auto ro = Disk::open(path_.string(), true, false);
    ASSERT_TRUE(ro);
    std::optional<int> r;
    ring_->write(**ro, 0, buf, false, [&](int e) { r = e; });
    EXPECT_EQ(wait(r), EPERM);
    EXPECT_EQ(ring_->in_flight(), 0U);
}

TEST_F(DiskRingTest, AReadPastTheEndOfAShrunkFileIsAnErrorNotZeroes)
{
    ASSERT_EQ(write(0, bytes(1 << 20, 3), false), 0);
    // The file shrinks under the export (its Disk still says 8 MiB).
    ASSERT_EQ(::truncate(path_.c_str(), (1 << 20) + 100), 0);
    std::vector<std::byte> out(8192, std::byte{0x55});
    EXPECT_EQ(read(1 << 20, out), EIO);  // starts before the end: short, then nothing
    EXPECT_EQ(read(2 << 20, out), EIO);  // wholly past it
    std::vector<std::byte> whole(1 << 20);
    EXPECT_EQ(read(0, whole), 0);  // what is still there still reads
}

TEST_F(DiskRingTest, ManyInFlightBeyondTheRingAllCompleteWithTheirOwnData)
{
    constexpr std::size_t kOps = 300;  // far more than kEntries
    const auto data = bytes(kOps * 4096, 4);
    ASSERT_EQ(disk_->write(0, data, false), 0);
    std::vector<std::vector<std::byte>> outs(kOps, std::vector<std::byte>(4096));
    std::size_t done = 0;
    int errors = 0;
    for (std::size_t i = 0; i < kOps; ++i) {
        // Backwards, so that no completion order can pass by accident.
        const std::size_t at = kOps - 1 - i;
        ring_->read(*disk_, at * 4096, outs[at], [&](int e) {
            errors += e != 0;
            ++done;
        });
    }
    EXPECT_EQ(ring_->queued(), kOps);  // nothing goes to the kernel inside read()
    std::size_t most = 0;
    for (int i = 0; i < 100000 && done < kOps; ++i) {
        io_.run_one_for(std::chrono::milliseconds(10));
        most = std::max(most, ring_->in_flight());
    }
    ASSERT_EQ(done, kOps);
    EXPECT_EQ(errors, 0);
    EXPECT_LE(most, kEntries);
    for (std::size_t i = 0; i < kOps; ++i)
        ASSERT_TRUE(std::equal(outs[i].begin(), outs[i].end(),
                               data.begin() + static_cast<std::ptrdiff_t>(i * 4096)))
            << i;
}

TEST_F(DiskRingTest, CompletionsRunOnTheLoopNeverInsideTheCall)
{
    std::vector<std::byte> buf(4096);
    ASSERT_EQ(write(0, bytes(4096, 5), false), 0);
    ASSERT_EQ(read(0, buf), 0);  // now a page-cache hit, which completes in the submit
    const auto loop = std::this_thread::get_id();
    int completed = 0;
    auto done = [&](int) {
        EXPECT_EQ(std::this_thread::get_id(), loop);
        ++completed;
    };
    ring_->read(*disk_, 0, buf, done);
    ring_->write(*disk_, 0, buf, true, done);
    ring_->flush(*disk_, done);
    ring_->read(*disk_, kSize, buf, done);  // refused before the kernel: still later
    ring_->read(*disk_, 0, std::span<std::byte>(), done);
    EXPECT_EQ(completed, 0);
    for (int i = 0; i < 1000 && completed < 5; ++i)
        io_.run_one_for(std::chrono::milliseconds(10));
    EXPECT_EQ(completed, 5);
    // And a completion that asks for more does not get the answer inside its own call.
    int chained = 0;
    ring_->read(*disk_, 0, buf, [&](int) {
        ring_->read(*disk_, 0, buf, [&](int) { ++chained; });
        EXPECT_EQ(chained, 0);
        ++chained;
    });
    for (int i = 0; i < 1000 && chained < 2; ++i)
        io_.run_one_for(std::chrono::milliseconds(10));
    EXPECT_EQ(chained, 2);
}

TEST_F(DiskRingTest, DestroyedWithOperationsLeftRunsNoMoreCompletions)
{
    std::vector<std::byte> buf(1 << 20);
    int completed = 0;
    for (int i = 0; i < 20; ++i)
        ring_->read(*disk_, 0, buf, [&](int) { ++completed; });
    io_.poll_one();  // the first kEntries go to the kernel (some may complete there), the rest wait
    const int before = completed;
    EXPECT_LT(before, 20);
    ring_.reset();
    io_.poll();
    EXPECT_EQ(completed, before);
}

// The kernel refuses io_uring (here: seccomp, as a sandbox may): the pool says why and
// keeps every disk call on its threads. In a child, since a seccomp filter is for good.
TEST(DiskRingFallback, RefusedIoUringLeavesTheWorkOnThePoolThreads)
{
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        sock_fprog prog{static_cast<unsigned short>(std::size(filter)), filter};
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            ::_exit(10);
        boost::asio::io_context io;
        auto guard = boost::asio::make_work_guard(io);
        IoPool pool(io.get_executor(), 2);
        const std::string why = pool.use_ring(8);
        if (why.find("io_uring_setup") == std::string::npos || pool.ring() != nullptr)
            ::_exit(11);
        bool ran = false;
        pool.run([] { return 7; }, [&](int v) { ran = v == 7; });
        for (int i = 0; i < 1000 && !ran; ++i)
            io.run_one_for(std::chrono::milliseconds(10));
        ::_exit(ran ? 0 : 12);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10: no seccomp, 11: the ring did not fail as "
                                         "it should, 12: the pool did not run the work";
}

TEST(DiskRingFallback, APoolWithARingStillRunsItsOwnWork)
{
    boost::asio::io_context io;
    auto guard = boost::asio::make_work_guard(io);
    IoPool pool(io.get_executor(), 2);
    const std::string why = pool.use_ring(8);
    if (!why.empty() && std::getenv("CI") == nullptr)
        GTEST_SKIP() << why;
    ASSERT_EQ(why, "");
    ASSERT_NE(pool.ring(), nullptr);
    bool ran = false;
    pool.run([] { return std::this_thread::get_id(); },
             [&](std::thread::id t) { ran = t != std::this_thread::get_id(); });
    for (int i = 0; i < 1000 && !ran; ++i)
        io.run_one_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace ismd::block
