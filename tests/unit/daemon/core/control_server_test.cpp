// SPDX-License-Identifier: MIT
// The control socket server over a real UNIX socket, with a blocking client: it answers
// what is registered, and it can be destroyed with an accept or a read still pending,
// which then complete (operation_aborted) on a later run of the event loop. Run under the
// asan preset, the latter two catch any use of the destroyed server.
#include "core/control_server.hpp"

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

namespace ismd {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class ControlServerTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        dir_ = std::filesystem::temp_directory_path() /
               ("control-server-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        path_ = (dir_ / "control.sock").string();
        server_ = std::make_unique<ControlServer>(io_.get_executor(), path_, "");
        server_->on("echo", [](const ControlRequest& req) -> asio::awaitable<nlohmann::json> {
            co_return nlohmann::json{{"said", req.args.value("say", "")}};
        });
        auto r = server_->listen();
        ASSERT_TRUE(r) << r.error().message();
        io_.poll();  // the accept loop starts: an accept is pending
    }

    void TearDown() override { std::filesystem::remove_all(dir_); }

    /// A client connected to the server's socket (the kernel's backlog takes it at once).
    asio::local::stream_protocol::socket connect()
    {
        asio::local::stream_protocol::socket client(client_io_);
        client.connect(asio::local::stream_protocol::endpoint(path_));
        return client;
    }

    /// Runs the server's loop until `client` has something to read (or the server closed
    /// it), at most `max`.
    bool run_until_readable(asio::local::stream_protocol::socket& client,
                            std::chrono::milliseconds max = 5s)
    {
        const auto until = std::chrono::steady_clock::now() + max;
        while (std::chrono::steady_clock::now() < until) {
            pollfd pfd{client.native_handle(), POLLIN, 0};
            if (::poll(&pfd, 1, 0) > 0)
                return true;
            io_.run_one_for(10ms);
        }
        return false;
    }

    static std::string read_line(asio::local::stream_protocol::socket& client)
    {
        std::string line;
        boost::system::error_code ec;
        const std::size_t n = asio::read_until(client, asio::dynamic_buffer(line), '\n', ec);
        return ec ? std::string{} : line.substr(0, n - 1);
    }

    asio::io_context io_;
    asio::io_context client_io_;
    std::filesystem::path dir_;
    std::string path_;
    std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlServerTest, AnswersARegisteredOperationAndNamesAnUnknownOne)
{
    auto client = connect();
    asio::write(client, asio::buffer(std::string(R"({"v": 1, "op": "echo", "say": "hi"})"
                                                 "\n"
                                                 R"({"v": 1, "op": "nosuch", "id": 7})"
                                                 "\n")));
    ASSERT_TRUE(run_until_readable(client));
    const auto first = nlohmann::json::parse(read_line(client), nullptr, false);
    EXPECT_EQ(first.value("ok", false), true) << first.dump();
    EXPECT_EQ(first["result"]["said"], "hi") << first.dump();
    ASSERT_TRUE(run_until_readable(client));
    const auto second = nlohmann::json::parse(read_line(client), nullptr, false);
    EXPECT_EQ(second.value("ok", true), false) << second.dump();
    EXPECT_EQ(second.value("error", ""), "unknown operation \"nosuch\"") << second.dump();
    EXPECT_EQ(second.value("id", 0), 7) << second.dump();
}

TEST_F(ControlServerTest, DestroyedWithAnAcceptPending)
{
    server_.reset();
    EXPECT_FALSE(std::filesystem::exists(path_)) << "the socket file outlived the server";
    // The cancelled accept completes now, after the server is gone: nothing of it may be
    // used (ASan: heap-use-after-free), and the loop runs out of work.
    io_.restart();
    io_.run_for(5s);
    EXPECT_TRUE(io_.stopped()) << "something of the server is still waiting";
}

TEST_F(ControlServerTest, DestroyedWithASessionReading)
{
    auto client = connect();
    // The accept completes and the session starts reading the client's first line.
    asio::write(client, asio::buffer(std::string(R"({"v": 1, "op": "echo"})"
                                                 "\n")));
    ASSERT_TRUE(run_until_readable(client));
    ASSERT_FALSE(read_line(client).empty());
    io_.poll();
    server_.reset();
    io_.restart();
    io_.run_for(5s);
    EXPECT_TRUE(io_.stopped()) << "something of the server is still waiting";
    // Its connection was closed: the client reads the end of the stream.
    std::array<char, 16> byte{};
    boost::system::error_code ec;
    client.read_some(asio::buffer(byte), ec);
    EXPECT_EQ(ec, asio::error::eof);
}

}  // namespace
}  // namespace ismd
