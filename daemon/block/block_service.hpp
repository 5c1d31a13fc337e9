// SPDX-License-Identifier: MIT
// BlockService: the remote block device (man ismd(8), docs/protocol.md "Block service").
//
// Per peer, on one stream-mode channel of its link (PeerBlock):
//  - exporting: the files and block devices the peer's file lists under "exports" are
//    served to that peer (and to no other);
//  - importing: every export the peer offers us is served to local NBD clients on a UNIX
//    socket <control socket's directory>/nbd/<peer>/<export>.sock, and on a TCP address
//    when the peer's file names one. Requests wait for a lost peer up to the import's
//    deadline and are re-driven when it returns.
// Disk I/O runs on one pool of threads for all exports; the payloads the local NBD
// endpoints hold come from one budget for all imports, so ismd's memory stays bounded
// whatever the clients send.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block/block_config.hpp"
#include "block/byte_budget.hpp"
#include "block/export.hpp"
#include "block/io_pool.hpp"
#include "core/service.hpp"

namespace ismd::block {

class PeerBlock;

class BlockService final : public Service {
public:
    BlockService();
    ~BlockService() override;
    BlockService(const BlockService&) = delete;
    BlockService& operator=(const BlockService&) = delete;

    [[nodiscard]] std::string name() const override { return "block"; }
    [[nodiscard]] uint32_t channel_count() const override { return 1; }
    [[nodiscard]] ServiceConfigParser config_parser() const override
    {
        return block_config_parser();
    }
    void configure(const GlobalConfig& global) override;
    std::unique_ptr<PeerService> add_peer(const PeerHandle& peer) override;
    [[nodiscard]] std::string summary() const override;
    void stop() override;

    // For PeerBlock.
    [[nodiscard]] const std::filesystem::path& socket_dir() const noexcept { return socket_dir_; }
    [[nodiscard]] const std::string& socket_group() const noexcept { return socket_group_; }
    IoPool& io_pool(const boost::asio::any_io_executor& executor);
    ByteBudget& budget(const boost::asio::any_io_executor& executor);
    void forget(const std::string& peer);
    void changed();

    /// Every export of every reachable peer (PeerBlock::reachable), as "<peer>/<export>"
    /// (NBD_OPT_LIST). A peer whose link is down is left out, though its sockets stay.
    [[nodiscard]] std::vector<nbd::ExportInfo> list_all() const;
    /// "<peer>/<export>": that import's export, if that peer is reachable and offers it.
    [[nodiscard]] std::optional<nbd::ExportInfo> find_qualified(const std::string& name) const;
    /// As find_qualified: null for a peer that is not reachable.
    std::shared_ptr<Export> open_qualified(const std::string& name);

private:
    std::filesystem::path socket_dir_ = "/run/ismd/nbd";
    std::string socket_group_;
    std::map<std::string, PeerBlock*> peers_;
    std::unique_ptr<IoPool> io_pool_;
    std::unique_ptr<ByteBudget> budget_;
    std::function<void()> status_changed_;
    bool stopping_ = false;
};

}  // namespace ismd::block
