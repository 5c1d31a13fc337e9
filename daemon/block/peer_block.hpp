// SPDX-License-Identifier: MIT
// PeerBlock: the block service's state for one peer: the exports we offer it, and the
// local NBD endpoints that serve the exports it offers us.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "block/block_config.hpp"
#include "block/block_service.hpp"
#include "block/export.hpp"
#include "core/service.hpp"

namespace ismd::block {

class BlockChannel;
class Exporter;
class Importer;
class NbdEndpoint;

class PeerBlock final : public PeerService {
public:
    PeerBlock(BlockService& service, const PeerHandle& peer, const BlockConfig& config);
    ~PeerBlock() override;
    PeerBlock(const PeerBlock&) = delete;
    PeerBlock& operator=(const PeerBlock&) = delete;

    void link_up() override;
    void link_down(std::error_code why) override;
    [[nodiscard]] nlohmann::json status() const override;

    [[nodiscard]] const std::string& name() const noexcept { return peer_.name; }
    /// The exports the peer offered us last (empty while we have not heard from it; kept
    /// while its link is down, for the sockets that serve them).
    [[nodiscard]] std::vector<nbd::ExportInfo> imports() const;
    /// Its link is up and it has told us its exports since: imports() is what it offers now.
    [[nodiscard]] bool reachable() const;
    std::shared_ptr<Export> open_import(const std::string& name);
    /// Local NBD clients connected to our imports, and exports we serve.
    [[nodiscard]] std::size_t clients() const;
    [[nodiscard]] std::size_t exports() const noexcept { return exports_offered_; }
    [[nodiscard]] std::size_t imports_served() const noexcept { return endpoints_.size(); }

    /// Stops the local endpoints (ismd is stopping).
    void stop();

private:
    class Directory;
    struct Served {
        std::unique_ptr<Directory> directory;
        std::unique_ptr<NbdEndpoint> endpoint;
    };

    void open_exports();
    /// Brings the local endpoints in line with what the peer offers.
    void sync_endpoints();

    BlockService& service_;
    PeerHandle peer_;
    BlockConfig config_;
    std::unique_ptr<BlockChannel> channel_;
    std::unique_ptr<Exporter> exporter_;
    std::shared_ptr<Importer> importer_;
    std::size_t exports_offered_ = 0;
    std::map<std::string, std::string> export_errors_;  // exports that could not be opened
    std::map<std::string, std::string> paths_;          // exports' files, for status
    std::map<std::string, Served> endpoints_;           // by export name
    bool stopped_ = false;
};

}  // namespace ismd::block
