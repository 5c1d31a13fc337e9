// SPDX-License-Identifier: MIT
// nbd-local-server: a test-only program that serves one local file through NbdEndpoint,
// with an Export that runs each request on the file itself (Disk on IoPool's threads).
// It proves the NBD endpoint alone against real clients (nbdinfo, qemu-img, nbdcopy,
// fio), with no link and no peer in between.
//
//   nbd-local-server --file IMAGE --socket PATH [--name data] [--read-only]
//                    [--tcp ADDRESS:PORT] [--budget-mib 48] [--threads 4]
//
// Prints "ready" on stdout once it listens; stops on SIGTERM or SIGINT.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "block/byte_budget.hpp"
#include "block/disk.hpp"
#include "block/export.hpp"
#include "block/io_pool.hpp"
#include "block/nbd_endpoint.hpp"

namespace {

using namespace ismd::block;

/// Runs each request on the file, off the event loop.
class DiskExport : public Export {
public:
    DiskExport(Disk& disk, IoPool& pool, std::string name) : disk_(disk), pool_(pool)
    {
        info_.name = std::move(name);
        info_.description = "nbd-local-server test export";
        info_.size = disk.size();
        info_.flags = nbd::kHasFlags | nbd::kSendFlush | nbd::kSendFua | nbd::kCanMultiConn;
        if (disk.read_only())
            info_.flags |= nbd::kReadOnly;
        else
            info_.flags |= nbd::kSendTrim | nbd::kSendWriteZeroes;
    }

    [[nodiscard]] nbd::ExportInfo info() const override { return info_; }

    void submit(IoRequest r, Done done) override
    {
        Disk* disk = &disk_;
        pool_.run([disk, r = std::move(r)]() mutable { return run(*disk, std::move(r)); },
                  [done = std::move(done)](IoResult result) { done(std::move(result)); });
    }

private:
    static IoResult run(Disk& disk, IoRequest r)
    {
        IoResult res;
        const bool fua = (r.flags & nbd::kCmdFua) != 0;
        int e = 0;
        switch (r.cmd) {
            case nbd::Cmd::read:
                e = disk.read(r.offset, r.data);
                res.data = std::move(r.data);
                break;
            case nbd::Cmd::write:
                e = disk.write(r.offset, r.data, fua);
                break;
            case nbd::Cmd::flush:
                e = disk.flush();
                break;
            case nbd::Cmd::trim:
                e = disk.trim(r.offset, r.length);
                break;
            case nbd::Cmd::write_zeroes:
                e = disk.write_zeroes(r.offset, r.length, (r.flags & nbd::kCmdNoHole) == 0, fua);
                break;
            case nbd::Cmd::block_status: {
                auto extents = disk.extents(r.offset, r.length);
                if (!extents) {
                    e = extents.error();
                    break;
                }
                for (const auto& x : *extents) {
                    uint64_t left = x.length;
                    while (left > 0) {
                        const auto n = static_cast<uint32_t>(std::min<uint64_t>(
                            left, std::numeric_limits<uint32_t>::max() & ~4095U));
                        res.extents.push_back({n, x.hole ? nbd::kStateHole | nbd::kStateZero : 0U});
                        left -= n;
                    }
                }
                break;
            }
            default:
                e = EINVAL;
                break;
        }
        res.error = nbd::from_errno(e);
        if (e != 0)
            res.message = std::strerror(e);
        return res;
    }

    Disk& disk_;
    IoPool& pool_;
    nbd::ExportInfo info_;
};

class OneExport : public ExportDirectory {
public:
    explicit OneExport(std::shared_ptr<DiskExport> e) : export_(std::move(e)) {}
    [[nodiscard]] std::vector<nbd::ExportInfo> list() const override { return {export_->info()}; }
    [[nodiscard]] std::optional<nbd::ExportInfo> find(const std::string& name) const override
    {
        if (name.empty() || name == export_->info().name)
            return export_->info();
        return std::nullopt;
    }
    std::shared_ptr<Export> open(const std::string& name) override
    {
        return find(name) ? export_ : nullptr;
    }

private:
    std::shared_ptr<DiskExport> export_;
};

int usage(const char* why)
{
    std::fprintf(stderr,
                 "nbd-local-server: %s\n"
                 "usage: nbd-local-server --file IMAGE --socket PATH [--name data] "
                 "[--read-only] [--tcp ADDRESS:PORT] [--budget-mib 48] [--threads 4]\n",
                 why);
    return 2;
}

int run(int argc, char** argv)
{
    std::string file;
    std::string socket;
    std::string name = "data";
    std::string tcp;
    bool read_only = false;
    unsigned long budget_mib = 48;
    unsigned long threads = 4;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        const char* v = nullptr;
        if (arg == "--read-only") {
            read_only = true;
            continue;
        }
        if ((v = value()) == nullptr)
            return usage(("missing value for " + arg).c_str());
        if (arg == "--file")
            file = v;
        else if (arg == "--socket")
            socket = v;
        else if (arg == "--name")
            name = v;
        else if (arg == "--tcp")
            tcp = v;
        else if (arg == "--budget-mib")
            budget_mib = std::strtoul(v, nullptr, 10);
        else if (arg == "--threads")
            threads = std::strtoul(v, nullptr, 10);
        else
            return usage(("unknown option " + arg).c_str());
    }
    if (file.empty() || socket.empty())
        return usage("--file and --socket are required");
    if (budget_mib == 0 || threads == 0)
        return usage("--budget-mib and --threads must be positive");

    auto disk = Disk::open(file, read_only, false);
    if (!disk) {
        std::fprintf(stderr, "nbd-local-server: %s\n", disk.error().c_str());
        return 1;
    }
    boost::asio::io_context io;
    auto pool = std::make_unique<IoPool>(io.get_executor(), static_cast<unsigned>(threads));
    ByteBudget budget(io.get_executor(), budget_mib << 20);
    OneExport directory(std::make_shared<DiskExport>(**disk, *pool, name));
    NbdEndpoint endpoint(io.get_executor(), directory, budget,
                         NbdEndpointOptions{socket, "", tcp, "nbd-local-server"});
    if (auto r = endpoint.start(); !r) {
        std::fprintf(stderr, "nbd-local-server: %s\n", r.error().c_str());
        return 1;
    }
    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](boost::system::error_code, int) {
        std::fprintf(stderr, "nbd-local-server: %s\n", endpoint.status().dump().c_str());
        endpoint.stop();
    });
    if (endpoint.tcp_port() != 0)
        std::printf("ready tcp %u\n", static_cast<unsigned>(endpoint.tcp_port()));
    else
        std::printf("ready\n");
    std::fflush(stdout);
    io.run();
    // Requests still on the pool's threads complete into nothing, before the budget goes.
    pool.reset();
    io.restart();
    io.run();
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nbd-local-server: %s\n", e.what());
    }
    return 1;
}
