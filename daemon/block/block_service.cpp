// SPDX-License-Identifier: MIT
#include "block/block_service.hpp"

#include <cstdlib>
#include <string_view>

#include "block/peer_block.hpp"
#include "core/log.hpp"

namespace ismd::block {

namespace {

// Threads for disk I/O across all exports: enough to keep 64 requests in flight on a
// device that overlaps them, few enough to cost nothing at idle.
constexpr unsigned kIoThreads = 8;
// io_uring entries for reads, writes and flushes: the kernel holds this many at once,
// more wait in the ring's own queue.
constexpr unsigned kRingEntries = 128;
// Requests up to this size go through io_uring from the loop, larger ones to the threads
// (bench/disk_io_bench.cpp): for 4 KiB the hop to a thread and back is most of the time,
// io_uring cuts the latency ~5x; at 128 KiB the two are even, and at 1 MiB the threads
// copy on every CPU at once while the ring would copy on the loop's alone.
constexpr uint64_t kRingMaxBytes = 64 << 10;
// Payload bytes all local NBD endpoints together may hold: one largest request (32 MiB)
// and room for the others.
constexpr std::size_t kEndpointBudget = std::size_t{48} << 20;

// A peer file without a block section: no exports, the peer's exports imported.
const BlockConfig kNoSection{};

}  // namespace

BlockService::BlockService() = default;

BlockService::~BlockService() = default;

void BlockService::configure(const GlobalConfig& global)
{
    socket_dir_ = std::filesystem::path(global.control.socket).parent_path() / "nbd";
    socket_group_ = global.control.group;
}

IoPool& BlockService::io_pool(const boost::asio::any_io_executor& executor)
{
    if (io_pool_)
        return *io_pool_;
    io_pool_ = std::make_unique<IoPool>(executor, kIoThreads);
    // Small reads and writes, and flushes, through io_uring where the kernel allows it;
    // ISMD_BLOCK_IO=threads keeps everything on the pool (for measuring both).
    const char* io = std::getenv("ISMD_BLOCK_IO");
    if (io != nullptr && std::string_view(io) == "threads")
        log(LogLevel::info, "block: disk I/O on threads (ISMD_BLOCK_IO=threads)");
    else if (std::string why = io_pool_->use_ring(kRingEntries, kRingMaxBytes); !why.empty())
        log(LogLevel::notice, "block: io_uring unavailable (%s), disk I/O on threads", why.c_str());
    return *io_pool_;
}

ByteBudget& BlockService::budget(const boost::asio::any_io_executor& executor)
{
    if (!budget_)
        budget_ = std::make_unique<ByteBudget>(executor, kEndpointBudget);
    return *budget_;
}

std::unique_ptr<PeerService> BlockService::add_peer(const PeerHandle& peer)
{
    status_changed_ = peer.status_changed;
    const BlockConfig& config = peer.section != nullptr
                                    ? *static_cast<const BlockConfig*>(peer.section->parsed.get())
                                    : kNoSection;
    auto pb = std::make_unique<PeerBlock>(*this, peer, config);
    peers_[peer.name] = pb.get();
    return pb;
}

void BlockService::forget(const std::string& peer)
{
    peers_.erase(peer);
    changed();
}

void BlockService::changed()
{
    if (status_changed_ && !stopping_)
        status_changed_();
}

std::vector<nbd::ExportInfo> BlockService::list_all() const
{
    std::vector<nbd::ExportInfo> out;
    for (const auto& [peer, pb] : peers_) {
        if (!pb->reachable())
            continue;
        for (auto info : pb->imports()) {
            info.name = peer + "/" + info.name;
            out.push_back(std::move(info));
        }
    }
    return out;
}

std::optional<nbd::ExportInfo> BlockService::find_qualified(const std::string& name) const
{
    const auto slash = name.find('/');
    if (slash == std::string::npos)
        return std::nullopt;
    const auto it = peers_.find(name.substr(0, slash));
    if (it == peers_.end() || !it->second->reachable())
        return std::nullopt;
    const std::string export_name = name.substr(slash + 1);
    for (auto info : it->second->imports())
        if (info.name == export_name) {
            info.name = name;
            return info;
        }
    return std::nullopt;
}

std::shared_ptr<Export> BlockService::open_qualified(const std::string& name)
{
    const auto slash = name.find('/');
    if (slash == std::string::npos)
        return nullptr;
    const auto it = peers_.find(name.substr(0, slash));
    if (it == peers_.end() || !it->second->reachable())
        return nullptr;
    return it->second->open_import(name.substr(slash + 1));
}

std::string BlockService::summary() const
{
    std::size_t exports = 0;
    std::size_t imports = 0;
    std::size_t clients = 0;
    for (const auto& [name, pb] : peers_) {
        exports += pb->exports();
        imports += pb->imports_served();
        clients += pb->clients();
    }
    if (exports == 0 && imports == 0)
        return {};
    return "block: " + std::to_string(exports) + " exported, " + std::to_string(imports) +
           " imported, " + std::to_string(clients) + " NBD client" + (clients == 1 ? "" : "s");
}

void BlockService::stop()
{
    stopping_ = true;
    for (auto& [name, pb] : peers_)
        pb->stop();
}

}  // namespace ismd::block
