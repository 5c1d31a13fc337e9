// SPDX-License-Identifier: MIT
// BlockLinkInMemory: two Endpoints on one emulated fabric in this process, "imp" and
// "exp", linked; the block channel on both, an Exporter on exp serving a sparse temp file,
// an Importer on imp. The IoPool can be held busy (hold_pool) so that requests stay in
// flight at the exporter for as long as a test needs.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include "block/block_channel.hpp"
#include "block/disk.hpp"
#include "block/exporter.hpp"
#include "block/importer.hpp"
#include "block/io_pool.hpp"
#include "ism/device/ism_device.hpp"
#include "ism/link/endpoint.hpp"
#include "ism/sim/fabric.hpp"
#include "ism/sim/faults.hpp"

namespace ismd::block::test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

inline std::vector<std::byte> pattern(std::size_t n, unsigned seed)
{
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = static_cast<std::byte>((i * 131 + seed * 7 + (i >> 9)) & 0xFF);
    return v;
}

class BlockLinkInMemory : public ::testing::Test {
public:
    struct Pending {
        std::optional<IoResult> result;
    };

protected:
    static constexpr uint32_t kChannel = 2;
    static constexpr uint64_t kDiskSize = 64 << 20;
    static constexpr unsigned kPoolThreads = 4;

    struct Side {
        std::unique_ptr<ism::device::IsmDevice> dev;
        std::unique_ptr<ism::link::Endpoint> endpoint;
        ism::link::Link* link = nullptr;
    };

    void SetUp() override
    {
        // Parameterised names hold '/', which a fabric name may not.
        std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        for (char& c : test)
            c = std::isalnum(static_cast<unsigned char>(c)) != 0 ? c : '-';
        fabric_ = "blk-" + std::to_string(::getpid()) + "-" +
                  test.substr(test.size() > 50 ? test.size() - 50 : 0);
        path_ = fs::temp_directory_path() / ("ismd-blk-" + std::to_string(::getpid()) + ".img");
        const int fd = ::open(path_.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, kDiskSize), 0);
        ::close(fd);
        auto d = Disk::open(path_.string(), false, false);
        ASSERT_TRUE(d) << d.error();
        disk_ = std::shared_ptr<Disk>(std::move(*d));
        ASSERT_NO_FATAL_FAILURE(open_side(imp_, "imp"));
        ASSERT_NO_FATAL_FAILURE(open_side(exp_, "exp"));
        ASSERT_NO_FATAL_FAILURE(add_link(imp_, "exp"));
        ASSERT_NO_FATAL_FAILURE(add_link(exp_, "imp"));
        pool_ = std::make_unique<IoPool>(io_.get_executor(), kPoolThreads);
    }

    void TearDown() override
    {
        release_pool();
        importer_.reset();
        exporter_.reset();
        imp_channel_.reset();
        exp_channel_.reset();
        pool_.reset();
        for (Side* s : {&imp_, &exp_}) {
            s->endpoint.reset();
            s->dev.reset();
        }
        (void)ism::sim::remove_fabric(fabric_);
        fs::remove(path_);
    }

    void open_side(Side& s, const char* name)
    {
        auto file = ism::sim::open_function({.fabric = fabric_, .name = name});
        ASSERT_TRUE(file) << file.error().message();
        auto dev = ism::device::IsmDevice::open(std::move(*file));
        ASSERT_TRUE(dev) << dev.error().message();
        s.dev = std::move(*dev);
        s.endpoint = std::make_unique<ism::link::Endpoint>(io_, *s.dev);
    }

    void add_link(Side& s, const char* peer)
    {
        auto link = s.endpoint->add_link({.peer_gid = ism::sim::gid_for_name(peer), .channels = 4});
        ASSERT_TRUE(link) << link.error().message();
        s.link = *link;
    }

    /// Both roles up: the importer holds the exporter's list.
    void start(wire::Limits limits = {}, ImporterOptions options = {},
               std::vector<ExportSpec> specs = {})
    {
        if (specs.empty())
            specs.push_back(spec("disk", disk_, false, "a temp file"));
        exp_channel_ = std::make_unique<BlockChannel>(
            *exp_.link, kChannel,
            [this](const std::string& why) { exp_violations_.push_back(why); });
        imp_channel_ = std::make_unique<BlockChannel>(
            *imp_.link, kChannel,
            [this](const std::string& why) { imp_violations_.push_back(why); });
        exporter_ = std::make_unique<Exporter>(*exp_channel_, *pool_, std::move(specs), limits);
        importer_ = Importer::create(*imp_channel_, io_.get_executor(), options,
                                     [this] { ++exports_changed_; });
        ASSERT_TRUE(run_until([this] { return importer_->ready(); }, 10s))
            << "the importer never got EXPORTS";
    }

    template <class Pred>
    bool run_until(Pred done, std::chrono::milliseconds timeout)
    {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            if (std::chrono::steady_clock::now() >= end)
                return false;
            io_.run_one_for(2ms);
        }
        return true;
    }

    void run_for(std::chrono::milliseconds d)
    {
        const auto end = std::chrono::steady_clock::now() + d;
        while (std::chrono::steady_clock::now() < end)
            io_.run_one_for(2ms);
    }

    /// Holds every pool thread until release_pool(): disk operations queue up.
    void hold_pool()
    {
        held_ = std::make_unique<std::promise<void>>();
        auto gate = held_->get_future().share();
        for (unsigned i = 0; i < kPoolThreads; ++i)
            pool_->run(
                [gate] {
                    gate.wait();
                    return 0;
                },
                [](int) {});
        // Every thread took one: nothing queued.
        ASSERT_TRUE(run_until([this] { return pool_->queued() == 0; }, 5s));
    }
    void release_pool()
    {
        if (held_)
            held_->set_value();
        held_.reset();
    }

    std::shared_ptr<Pending> submit(Export& e, IoRequest r)
    {
        auto p = std::make_shared<Pending>();
        e.submit(std::move(r), [p](IoResult res) { p->result = std::move(res); });
        return p;
    }
    IoResult io(Export& e, IoRequest r)
    {
        auto p = submit(e, std::move(r));
        EXPECT_TRUE(run_until([&] { return p->result.has_value(); }, 10s)) << "no reply";
        IoResult none;
        none.error = 9999;
        return p->result.value_or(none);
    }
    static IoRequest command(nbd::Cmd cmd, uint64_t offset, uint32_t length, uint16_t flags = 0)
    {
        IoRequest r;
        r.cmd = cmd;
        r.flags = flags;
        r.offset = offset;
        r.length = length;
        return r;
    }
    static IoRequest write(uint64_t offset, std::vector<std::byte> data, uint16_t flags = 0)
    {
        IoRequest r = command(nbd::Cmd::write, offset, static_cast<uint32_t>(data.size()), flags);
        r.data = std::move(data);
        return r;
    }
    static IoRequest read(uint64_t offset, uint32_t length)
    {
        return command(nbd::Cmd::read, offset, length);
    }
    static ExportSpec spec(std::string name, std::shared_ptr<Disk> disk, bool read_only = false,
                           std::string description = "")
    {
        ExportSpec s;
        s.name = std::move(name);
        s.description = std::move(description);
        s.disk = std::move(disk);
        s.read_only = read_only;
        return s;
    }

    /// A link loss both sides see: the exporter's DMB is revoked under the importer.
    void lose_link()
    {
        ASSERT_TRUE(ism::sim::faults::revoke_dmb(fabric_, ism::sim::gid_for_name("exp"),
                                                 exp_.link->own_token()));
    }

    uint64_t exporter_in_flight() const
    {
        return exporter_->status()["exports"][0]["in_flight"].get<uint64_t>();
    }
    nlohmann::json import_status() const { return importer_->status()["imports"][0]; }

    boost::asio::io_context io_;
    std::string fabric_;
    fs::path path_;
    std::shared_ptr<Disk> disk_;
    Side imp_;
    Side exp_;
    std::unique_ptr<IoPool> pool_;
    std::unique_ptr<std::promise<void>> held_;
    std::unique_ptr<BlockChannel> exp_channel_;
    std::unique_ptr<BlockChannel> imp_channel_;
    std::unique_ptr<Exporter> exporter_;
    std::shared_ptr<Importer> importer_;
    std::vector<std::string> exp_violations_;
    std::vector<std::string> imp_violations_;
    int exports_changed_ = 0;
};

}  // namespace ismd::block::test
