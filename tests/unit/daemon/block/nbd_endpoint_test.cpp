// SPDX-License-Identifier: MIT
// The NBD endpoint over a real UNIX socket, driven byte by byte by a raw client: what real
// clients send, what broken or hostile ones send, and what a slow export does to memory.
#include "block/nbd_endpoint.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "nbd_test_support.hpp"

namespace ismd::block {
namespace {

using nbd::Cmd;
using test::FakeExport;
using test::RawClient;

constexpr uint64_t kSize = 8 << 20;
constexpr uint16_t kWritable = nbd::kHasFlags | nbd::kSendFlush | nbd::kSendFua | nbd::kSendTrim |
                               nbd::kSendWriteZeroes | nbd::kCanMultiConn;

class NbdEndpointTest : public ::testing::Test {
protected:
    void SetUp() override { start(); }

    void start(std::size_t budget = 48 << 20, std::string tcp = "")
    {
        dir_ = std::filesystem::temp_directory_path() /
               ("nbd-endpoint-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        path_ = (dir_ / "peer" / "data.sock").string();
        budget_ = std::make_unique<ByteBudget>(loop_.io.get_executor(), budget);
        data_ = std::make_shared<FakeExport>(loop_.io.get_executor(), kSize, kWritable);
        logs_ = std::make_shared<FakeExport>(loop_.io.get_executor(), 1 << 20,
                                             nbd::kHasFlags | nbd::kReadOnly);
        directory_.add("data", data_);
        directory_.add("logs", logs_);
        endpoint_ = std::make_unique<NbdEndpoint>(
            loop_.io.get_executor(), directory_, *budget_,
            NbdEndpointOptions{path_, "", std::move(tcp), "nbd test", std::chrono::seconds(1)});
        auto started = endpoint_->start();
        ASSERT_TRUE(started) << started.error();
        loop_.start();
    }

    void TearDown() override
    {
        if (endpoint_)
            loop_.on([&] { endpoint_->stop(); });
        loop_.join();
        endpoint_.reset();
        std::filesystem::remove_all(dir_);
    }

    EndpointStats stats()
    {
        return loop_.on([&] { return endpoint_->stats(); });
    }

    std::unique_ptr<RawClient> client(const std::string& name = "data", bool structured = false,
                                      bool base_allocation = false)
    {
        auto c = std::make_unique<RawClient>(path_);
        EXPECT_TRUE(c->connected);
        EXPECT_TRUE(c->handshake(name, structured, base_allocation));
        return c;
    }

    /// Waits (up to 5 s) until `pred` holds on the event loop.
    template <class Pred>
    bool eventually(Pred pred)
    {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (std::chrono::steady_clock::now() < until) {
            if (loop_.on(pred))
                return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }

    test::LoopThread loop_;
    std::unique_ptr<ByteBudget> budget_;
    test::FakeDirectory directory_;
    std::shared_ptr<FakeExport> data_;
    std::shared_ptr<FakeExport> logs_;
    std::unique_ptr<NbdEndpoint> endpoint_;
    std::filesystem::path dir_;
    std::string path_;
};

std::vector<std::byte> pattern(std::size_t n, unsigned seed)
{
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
    return v;
}

TEST_F(NbdEndpointTest, TheSocketIsCreatedGroupReadableInItsOwnDirectory)
{
    struct stat st {};
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0660U);
}

TEST_F(NbdEndpointTest, WritesAndReadsBackWithSimpleReplies)
{
    auto c = client();
    EXPECT_EQ(c->size, kSize);
    EXPECT_EQ(c->flags, kWritable);
    const auto data = pattern(65536, 7);
    ASSERT_TRUE(c->send_request(Cmd::write, 1, 4096, 65536, 0, data));
    auto w = c->reply();
    ASSERT_TRUE(w);
    EXPECT_FALSE(w->structured);
    EXPECT_EQ(w->error, 0U);
    EXPECT_EQ(w->cookie, 1U);
    ASSERT_TRUE(c->send_request(Cmd::read, 2, 4096, 65536));
    auto r = c->reply(65536);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->cookie, 2U);
    EXPECT_EQ(r->payload, data);
    const auto s = stats();
    EXPECT_EQ(s.bytes_written, 65536U);
    EXPECT_EQ(s.bytes_read, 65536U);
    EXPECT_EQ(s.connections, 1U);
}

TEST_F(NbdEndpointTest, StructuredRepliesCarryReadsAsOffsetDataAndErrorsWithAMessage)
{
    auto c = client("data", true);
    const auto data = pattern(4096, 3);
    ASSERT_TRUE(c->send_request(Cmd::write, 1, 8192, 4096, nbd::kCmdFua, data));
    auto w = c->reply();
    ASSERT_TRUE(w);
    EXPECT_EQ(w->error, 0U);  // a reply without data may stay simple
    ASSERT_TRUE(c->send_request(Cmd::read, 2, 8192, 4096));
    auto r = c->reply();
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->structured);
    EXPECT_EQ(r->type, static_cast<uint16_t>(nbd::Chunk::offset_data));
    EXPECT_EQ(r->flags, nbd::kReplyFlagDone);
    ASSERT_EQ(r->payload.size(), 8U + 4096U);
    EXPECT_EQ(nbd::get_u64(r->payload), 8192U);
    EXPECT_TRUE(std::equal(data.begin(), data.end(), r->payload.begin() + 8));

    ASSERT_TRUE(c->send_request(Cmd::read, 3, kSize - 512, 1024));
    auto e = c->reply();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->type, static_cast<uint16_t>(nbd::Chunk::error));
    EXPECT_EQ(e->flags, nbd::kReplyFlagDone);
    EXPECT_EQ(e->error, nbd::kEinval);
    EXPECT_NE(e->message.find("past the end"), std::string::npos) << e->message;
    // The write carried FUA to the export.
    auto seen = loop_.on([&] { return data_->seen; });
    ASSERT_GE(seen.size(), 1U);
    EXPECT_EQ(seen[0].flags & nbd::kCmdFua, nbd::kCmdFua);
}

TEST_F(NbdEndpointTest, AnExportErrorReachesTheClient)
{
    loop_.on([&] { data_->fail_with = nbd::kEnospc; });
    auto c = client("data", true);
    ASSERT_TRUE(c->send_request(Cmd::read, 9, 0, 512));
    auto r = c->reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, nbd::kEnospc);
    EXPECT_EQ(r->message, "injected failure");
    EXPECT_EQ(stats().errors, 1U);
}

TEST_F(NbdEndpointTest, ARequestTheExportDropsGetsEioInsteadOfHanging)
{
    loop_.on([&] { data_->drop = true; });
    auto c = client();
    ASSERT_TRUE(c->send_request(Cmd::read, 4, 0, 4096));
    auto r = c->reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->cookie, 4U);
    EXPECT_EQ(r->error, nbd::kEio);
    EXPECT_TRUE(eventually([&] { return budget_->in_use() == 0; }));
    EXPECT_EQ(stats().in_flight, 0U);
}

TEST_F(NbdEndpointTest, BlockStatusReportsBaseAllocationAndHonoursReqOne)
{
    auto c = client("data", true, true);
    ASSERT_TRUE(c->send_request(Cmd::block_status, 5, 0, 65536));
    auto r = c->reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->type, static_cast<uint16_t>(nbd::Chunk::block_status));
    // Context id, then (4096, data) and the hole cut at the request's end.
    ASSERT_EQ(r->payload.size(), 4U + 16U);
    EXPECT_EQ(nbd::get_u32(r->payload), nbd::kBaseAllocationId);
    EXPECT_EQ(nbd::get_u32(std::span(r->payload).subspan(4)), 4096U);
    EXPECT_EQ(nbd::get_u32(std::span(r->payload).subspan(8)), 0U);
    EXPECT_EQ(nbd::get_u32(std::span(r->payload).subspan(12)), 65536U - 4096U);
    EXPECT_EQ(nbd::get_u32(std::span(r->payload).subspan(16)), nbd::kStateHole | nbd::kStateZero);

    ASSERT_TRUE(c->send_request(Cmd::block_status, 6, 0, 65536, nbd::kCmdReqOne));
    auto one = c->reply();
    ASSERT_TRUE(one);
    EXPECT_EQ(one->payload.size(), 4U + 8U);
}

TEST_F(NbdEndpointTest, BlockStatusWithoutAMetaContextIsInvalid)
{
    auto c = client("data", true, false);
    ASSERT_TRUE(c->send_request(Cmd::block_status, 5, 0, 4096));
    auto r = c->reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, nbd::kEinval);
}

TEST_F(NbdEndpointTest, AReadOnlyExportRefusesWritesAndSkipsTheirPayload)
{
    auto c = client("logs");
    EXPECT_EQ(c->flags & nbd::kReadOnly, nbd::kReadOnly);
    const auto data = pattern(4096, 1);
    ASSERT_TRUE(c->send_request(Cmd::write, 1, 0, 4096, 0, data));
    ASSERT_TRUE(c->send_request(Cmd::trim, 2, 0, 4096));
    ASSERT_TRUE(c->send_request(Cmd::read, 3, 0, 16));
    auto w = c->reply();
    auto t = c->reply();
    ASSERT_TRUE(w && t);
    EXPECT_EQ(w->error, nbd::kEperm);
    EXPECT_EQ(t->error, nbd::kEperm);
    auto r = c->reply(16);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->cookie, 3U);
    EXPECT_EQ(r->error, 0U);
    EXPECT_TRUE(loop_.on([&] { return logs_->seen.size(); }) == 1U);
}

TEST_F(NbdEndpointTest, WritesPastTheEndAreRefusedAndTheConnectionGoesOn)
{
    auto c = client();
    const auto data = pattern(4096, 2);
    ASSERT_TRUE(c->send_request(Cmd::write, 1, kSize - 2048, 4096, 0, data));
    ASSERT_TRUE(c->send_request(Cmd::write_zeroes, 2, kSize, 1));
    ASSERT_TRUE(c->send_request(Cmd::trim, 3, ~uint64_t{0} - 10, 4096));
    auto a = c->reply();
    auto b = c->reply();
    auto d = c->reply();
    ASSERT_TRUE(a && b && d);
    EXPECT_EQ(a->error, nbd::kEnospc);
    EXPECT_EQ(b->error, nbd::kEnospc);
    EXPECT_EQ(d->error, nbd::kEinval);
    ASSERT_TRUE(c->send_request(Cmd::flush, 4, 0, 0));
    auto f = c->reply();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->error, 0U);
    EXPECT_EQ(f->cookie, 4U);
}

TEST_F(NbdEndpointTest, UnknownCommandsAndFlagsGetEinval)
{
    auto c = client();
    ASSERT_TRUE(c->send_request(static_cast<Cmd>(42), 1, 0, 0));
    ASSERT_TRUE(c->send_request(Cmd::read, 2, 0, 512, 0x4000));
    ASSERT_TRUE(c->send_request(Cmd::read, 3, 0, 512, nbd::kCmdDf));  // DF needs structured
    for (uint64_t cookie = 1; cookie <= 3; ++cookie) {
        auto r = c->reply();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->cookie, cookie);
        EXPECT_EQ(r->error, nbd::kEinval);
    }
}

TEST_F(NbdEndpointTest, AnOversizedReadIsRefusedButAnOversizedWriteEndsTheConnection)
{
    auto c = client();
    ASSERT_TRUE(c->send_request(Cmd::read, 1, 0, nbd::kMaxPayload + 1));
    auto r = c->reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, nbd::kEinval);
    // The payload of a 33 MiB write cannot be told from the next request: error, then close.
    ASSERT_TRUE(c->send_request(Cmd::write, 2, 0, nbd::kMaxPayload + (1 << 20)));
    auto w = c->reply();
    ASSERT_TRUE(w);
    EXPECT_EQ(w->cookie, 2U);
    EXPECT_EQ(w->error, nbd::kEinval);
    EXPECT_TRUE(c->closed_by_server());
    EXPECT_EQ(stats().protocol_errors, 1U);
}

TEST_F(NbdEndpointTest, ABadRequestMagicClosesThatConnectionOnly)
{
    auto good = client();
    auto bad = client();
    auto junk = test::bytes_of("GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    ASSERT_TRUE(bad->send(junk));
    EXPECT_TRUE(bad->closed_by_server());
    ASSERT_TRUE(good->send_request(Cmd::read, 1, 0, 512));
    auto r = good->reply(512);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, 0U);
    EXPECT_TRUE(eventually([&] { return endpoint_->stats().connections == 1; }));
}

TEST_F(NbdEndpointTest, GarbageInsteadOfAHandshakeIsCutOff)
{
    RawClient c(path_);
    ASSERT_TRUE(c.recv(18));
    auto junk = test::bytes_of("\xff\xff\xff\xff garbage garbage garbage");
    ASSERT_TRUE(c.send(junk));
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_TRUE(eventually([&] { return endpoint_->stats().protocol_errors == 1; }));
}

TEST_F(NbdEndpointTest, AClientHagglingForeverIsCutOff)
{
    RawClient c(path_);
    ASSERT_TRUE(c.recv(18));
    std::vector<std::byte> f;
    nbd::put_u32(f, nbd::kFlagFixedNewstyle | nbd::kFlagNoZeroes);
    ASSERT_TRUE(c.send(f));
    std::vector<std::byte> many;
    for (int i = 0; i < 2000; ++i) {
        nbd::put_u64(many, nbd::kIHaveOpt);
        nbd::put_u32(many, 99);  // unknown option: ERR_UNSUP, and the handshake goes on
        nbd::put_u32(many, 0);
    }
    // The server stops reading once it cuts us off; the send may then fail.
    std::thread sender([&] { c.send(many); });
    EXPECT_TRUE(c.closed_by_server());
    sender.join();
    EXPECT_TRUE(eventually([&] { return endpoint_->stats().protocol_errors == 1; }));
}

TEST_F(NbdEndpointTest, AClientThatNeverChoosesAnExportIsCutOff)
{
    RawClient c(path_);
    ASSERT_TRUE(c.recv(18));
    std::vector<std::byte> f;
    nbd::put_u32(f, nbd::kFlagFixedNewstyle | nbd::kFlagNoZeroes);
    ASSERT_TRUE(c.send(f));
    c.option(nbd::Opt::list, {});
    EXPECT_FALSE(c.option_replies().empty());
    // Silence: the endpoint's 1 s deadline (30 s by default) ends it.
    const auto before = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(4));
    EXPECT_EQ(stats().protocol_errors, 1U);
}

TEST_F(NbdEndpointTest, AClientLeavingInTheMiddleOfAPayloadWritesNothing)
{
    {
        auto c = client();
        const auto data = pattern(1000, 5);
        ASSERT_TRUE(c->send(RawClient::request(Cmd::write, 1, 0, 4096)));
        ASSERT_TRUE(c->send(data));
    }
    EXPECT_TRUE(eventually([&] { return endpoint_->stats().connections == 0; }));
    EXPECT_TRUE(loop_.on([&] { return data_->seen.empty(); }));
    auto again = client();
    ASSERT_TRUE(again->send_request(Cmd::flush, 1, 0, 0));
    EXPECT_TRUE(again->reply());
}

TEST_F(NbdEndpointTest, RepliesGoOutInCompletionOrderWithManyInFlight)
{
    loop_.on([&] { data_->hold = true; });
    auto c = client("data", true);
    constexpr unsigned kRequests = 64;
    for (unsigned i = 0; i < kRequests; ++i)
        ASSERT_TRUE(c->send_request(Cmd::read, 1000U + i, i * 4096U, 4096));
    ASSERT_TRUE(eventually([&] { return data_->held.size() == kRequests; }));
    EXPECT_EQ(stats().in_flight, static_cast<uint64_t>(kRequests));
    loop_.on([&] { data_->release_held(true); });
    for (int i = int{kRequests} - 1; i >= 0; --i) {
        auto r = c->reply();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->cookie, static_cast<uint64_t>(1000 + i));
        ASSERT_EQ(r->payload.size(), 8U + 4096U);
        EXPECT_EQ(nbd::get_u64(r->payload), static_cast<uint64_t>(i) * 4096);
    }
    EXPECT_EQ(stats().in_flight, 0U);
}

TEST_F(NbdEndpointTest, DiscAnswersWhatWasAskedBeforeClosing)
{
    loop_.on([&] { data_->hold = true; });
    auto c = client();
    ASSERT_TRUE(c->send_request(Cmd::read, 1, 0, 512));
    ASSERT_TRUE(c->send_request(Cmd::disc, 2, 0, 0));
    ASSERT_TRUE(eventually([&] { return data_->held.size() == 1; }));
    loop_.on([&] { data_->release_held(); });
    auto r = c->reply(512);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->cookie, 1U);
    EXPECT_TRUE(c->closed_by_server());
}

TEST_F(NbdEndpointTest, StopClosesClientsAndLateCompletionsAreHarmless)
{
    loop_.on([&] { data_->hold = true; });
    auto c = client();
    ASSERT_TRUE(c->send_request(Cmd::read, 1, 0, 4096));
    ASSERT_TRUE(eventually([&] { return data_->held.size() == 1; }));
    loop_.on([&] { endpoint_->stop(); });
    EXPECT_TRUE(c->closed_by_server());
    EXPECT_FALSE(std::filesystem::exists(path_));
    EXPECT_EQ(loop_.on([&] { return budget_->in_use(); }), kRequestCost + 4096);
    loop_.on([&] { data_->release_held(); });
    EXPECT_TRUE(eventually([&] { return budget_->in_use() == 0; }));
    // Even with the endpoint gone.
    loop_.on([&] { data_->hold = true; });
    EXPECT_EQ(stats().connections, 0U);
}

class NbdEndpointSmallBudget : public NbdEndpointTest {
protected:
    void SetUp() override { start(1 << 20); }
};

TEST_F(NbdEndpointSmallBudget, ASlowExportStopsTheEndpointReadingSoMemoryStaysBounded)
{
    loop_.on([&] { data_->hold = true; });
    auto c = client();
    ::fcntl(c->fd(), F_SETFL, ::fcntl(c->fd(), F_GETFL) | O_NONBLOCK);
    // Write 256 KiB requests until the socket refuses more: the endpoint stopped reading.
    const auto data = pattern(256 << 10, 9);
    std::size_t sent = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::vector<std::byte> stream;
    for (uint64_t i = 0; i < 64; ++i) {
        auto h = RawClient::request(Cmd::write, i, (i % 16) * (256 << 10), 256 << 10);
        stream.insert(stream.end(), h.begin(), h.end());
        stream.insert(stream.end(), data.begin(), data.end());
    }
    while (sent < stream.size() && std::chrono::steady_clock::now() < until) {
        const ssize_t n = ::send(c->fd(), stream.data() + sent, stream.size() - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += static_cast<std::size_t>(n);
        else
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_LT(sent, stream.size()) << "the endpoint read everything a client sent";
    // Three 256 KiB writes fit in 1 MiB with their request cost; the fourth waits.
    EXPECT_TRUE(eventually([&] { return data_->held.size() == 3; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(loop_.on([&] { return data_->held.size(); }), 3U);
    EXPECT_LE(loop_.on([&] { return budget_->in_use(); }), std::size_t{1} << 20);
    // Completing them lets the rest through.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (loop_.on([&] { return data_->seen.size(); }) < 64 &&
           std::chrono::steady_clock::now() < deadline) {
        loop_.on([&] { data_->release_held(); });
        while (sent < stream.size()) {
            const ssize_t n =
                ::send(c->fd(), stream.data() + sent, stream.size() - sent, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            sent += static_cast<std::size_t>(n);
        }
        EXPECT_LE(loop_.on([&] { return budget_->in_use(); }), std::size_t{1} << 20);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(sent, stream.size());
    EXPECT_TRUE(eventually([&] {
        data_->release_held();
        return data_->seen.size() == 64;
    }));
}

TEST_F(NbdEndpointSmallBudget, StopReleasesAConnectionWaitingForTheBudget)
{
    loop_.on([&] { data_->hold = true; });
    auto c = client();
    const auto data = pattern(512 << 10, 4);
    ASSERT_TRUE(c->send_request(Cmd::write, 1, 0, 512 << 10, 0, data));
    // The second write's bytes cannot be had until the first completes: it waits.
    ASSERT_TRUE(c->send(RawClient::request(Cmd::write, 2, 0, 1 << 20)));
    ASSERT_TRUE(eventually([&] { return budget_->waiting() == 1; }));
    loop_.on([&] { endpoint_->stop(); });
    EXPECT_TRUE(c->closed_by_server());
    EXPECT_TRUE(eventually([&] { return budget_->waiting() == 0; }));
    loop_.on([&] { data_->release_held(); });
    EXPECT_TRUE(eventually([&] { return budget_->in_use() == 0; }));
    EXPECT_EQ(loop_.on([&] { return data_->seen.size(); }), 1U);
}

TEST_F(NbdEndpointTest, AStaleSocketIsReplacedButAnythingElseIsNotOurs)
{
    loop_.on([&] { endpoint_->stop(); });
    const std::string other = (dir_ / "peer" / "file.sock").string();
    std::ofstream(other) << "not a socket";
    loop_.on([&] {
        NbdEndpoint replaced(loop_.io.get_executor(), directory_, *budget_,
                             NbdEndpointOptions{other, "", "", "nbd test"});
        auto r = replaced.start();
        EXPECT_FALSE(r);
        if (!r) {
            EXPECT_NE(r.error().find("not a socket"), std::string::npos) << r.error();
        }
    });
    ::unlink(other.c_str());
    {
        // Make a stale socket file at other and check it is replaced.
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, other.c_str(), sizeof addr.sun_path - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ::close(fd);
    }
    auto ok = loop_.on([&] {
        auto e = std::make_unique<NbdEndpoint>(loop_.io.get_executor(), directory_, *budget_,
                                               NbdEndpointOptions{other, "", "", "nbd test"});
        auto r = e->start();
        endpoint_ = std::move(e);
        return r.has_value();
    });
    EXPECT_TRUE(ok);
    path_ = other;
    auto c = client();
    ASSERT_TRUE(c->send_request(Cmd::flush, 1, 0, 0));
    EXPECT_TRUE(c->reply());
}

TEST_F(NbdEndpointTest, TheSocketGetsTheConfiguredGroupAndAnUnknownGroupIsAnError)
{
    const group* g = ::getgrgid(::getegid());
    ASSERT_NE(g, nullptr);
    const std::string path = (dir_ / "grouped" / "data.sock").string();
    const std::string name = g->gr_name;
    auto started = loop_.on([&] {
        NbdEndpoint e(loop_.io.get_executor(), directory_, *budget_,
                      NbdEndpointOptions{path, name, "", "nbd test"});
        auto r = e.start();
        struct stat st {};
        const bool grouped = ::stat(path.c_str(), &st) == 0 && st.st_gid == ::getegid();
        e.stop();
        return r.has_value() && grouped;
    });
    EXPECT_TRUE(started);
    EXPECT_FALSE(std::filesystem::exists(path));
    auto refused = loop_.on([&] {
        NbdEndpoint e(loop_.io.get_executor(), directory_, *budget_,
                      NbdEndpointOptions{path, "no-such-group-ismd", "", "nbd test"});
        auto r = e.start();
        return r ? std::string() : r.error();
    });
    EXPECT_NE(refused.find("no-such-group-ismd"), std::string::npos) << refused;
}

TEST_F(NbdEndpointTest, StatusReportsCountersAsJson)
{
    auto c = client();
    ASSERT_TRUE(c->send_request(Cmd::read, 1, 0, 512));
    ASSERT_TRUE(c->reply(512));
    const auto j = loop_.on([&] { return endpoint_->status(); });
    EXPECT_EQ(j["socket"], path_);
    EXPECT_EQ(j["connections"], 1);
    EXPECT_EQ(j["connections_total"], 1);
    EXPECT_EQ(j["requests"], 1);
    EXPECT_EQ(j["bytes_read"], 512);
    EXPECT_EQ(j["in_flight"], 0);
    EXPECT_EQ(j["errors"], 0);
}

TEST(NbdTcpAddress, ParsesWhatAConfigurationMaySay)
{
    EXPECT_EQ(parse_tcp_address("10809").value(),
              (std::pair<std::string, uint16_t>{"127.0.0.1", 10809}));
    EXPECT_EQ(parse_tcp_address(":10809").value().first, "127.0.0.1");
    EXPECT_EQ(parse_tcp_address("0.0.0.0:1").value().first, "0.0.0.0");
    EXPECT_EQ(parse_tcp_address("[::1]:10809").value().first, "::1");
    EXPECT_FALSE(parse_tcp_address("localhost:10809"));
    EXPECT_FALSE(parse_tcp_address("127.0.0.1:65536"));
    EXPECT_FALSE(parse_tcp_address("127.0.0.1:"));
    EXPECT_FALSE(parse_tcp_address("::1:10809"));
    EXPECT_NE(parse_tcp_address("1.2.3.4:x").error().find("port"), std::string::npos);
}

TEST(NbdTcp, ServesOnALoopbackPort)
{
    test::LoopThread loop;
    ByteBudget budget(loop.io.get_executor(), 1 << 20);
    test::FakeDirectory directory;
    directory.add("data", std::make_shared<FakeExport>(loop.io.get_executor(), 1 << 20, kWritable));
    const auto path = std::filesystem::temp_directory_path() /
                      ("nbd-tcp-" + std::to_string(::getpid()) + ".sock");
    NbdEndpoint endpoint(loop.io.get_executor(), directory, budget,
                         NbdEndpointOptions{path.string(), "", "127.0.0.1:0", "nbd tcp"});
    auto r = endpoint.start();
    ASSERT_TRUE(r) << r.error();
    ASSERT_NE(endpoint.tcp_port(), 0);
    loop.start();
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(endpoint.tcp_port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::byte greeting[18];
    ASSERT_EQ(::recv(fd, greeting, sizeof greeting, MSG_WAITALL), 18);
    EXPECT_EQ(nbd::get_u64(greeting), nbd::kNbdMagic);
    ::close(fd);
    loop.on([&] { endpoint.stop(); });
    loop.join();
}

TEST(NbdRequestCheck, FollowsWhatTheExportOffered)
{
    nbd::ExportInfo info;
    info.size = 1 << 20;
    info.flags = nbd::kHasFlags | nbd::kSendFlush;
    auto req = [](Cmd c, uint64_t off, uint32_t len, uint16_t flags = 0) {
        return nbd::Request{flags, c, 1, off, len};
    };
    EXPECT_EQ(check_request(req(Cmd::read, 0, 4096), info, false, false).error, 0U);
    EXPECT_EQ(check_request(req(Cmd::trim, 0, 4096), info, false, false).error, nbd::kEinval);
    EXPECT_EQ(check_request(req(Cmd::write_zeroes, 0, 4096), info, false, false).error,
              nbd::kEinval);
    EXPECT_EQ(check_request(req(Cmd::cache, 0, 4096), info, false, false).error, nbd::kEinval);
    EXPECT_EQ(check_request(req(Cmd::flush, 0, 0), info, false, false).error, 0U);
    EXPECT_EQ(check_request(req(Cmd::read, 1 << 20, 1), info, false, false).error, nbd::kEinval);
    EXPECT_EQ(check_request(req(Cmd::read, 1 << 20, 0), info, false, false).error, 0U);
    const auto big = check_request(req(Cmd::write, 0, nbd::kMaxPayload + 1), info, false, false);
    EXPECT_TRUE(big.disconnect);
    EXPECT_FALSE(
        check_request(req(Cmd::write, 0, nbd::kMaxPayload), info, false, false).disconnect);
    info.flags |= nbd::kReadOnly;
    EXPECT_EQ(check_request(req(Cmd::write, 0, 1), info, false, false).error, nbd::kEperm);
    EXPECT_EQ(check_request(req(Cmd::trim, 0, 1), info, false, false).error, nbd::kEperm);
}

}  // namespace
}  // namespace ismd::block
