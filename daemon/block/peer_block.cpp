// SPDX-License-Identifier: MIT
#include "block/peer_block.hpp"

#include <filesystem>

#include "block/block_channel.hpp"
#include "block/disk.hpp"
#include "block/exporter.hpp"
#include "block/importer.hpp"
#include "block/nbd_endpoint.hpp"
#include "core/log.hpp"

namespace ismd::block {

/// What one local endpoint offers: its own import by its plain name (and as the default
/// export), and every reachable peer's export as "<peer>/<export>". Its own import stays
/// offered while its peer is unreachable, as the socket stays: requests on it wait for the
/// peer up to the import's deadline, as those of connected clients do.
class PeerBlock::Directory final : public ExportDirectory {
public:
    Directory(PeerBlock& owner, std::string home) : owner_(owner), home_(std::move(home)) {}

    [[nodiscard]] std::vector<nbd::ExportInfo> list() const override
    {
        std::vector<nbd::ExportInfo> out;
        if (auto own = find(home_))
            out.push_back(*own);
        // Every other export of every reachable peer, by its qualified name; this
        // socket's own export only once, by its plain name.
        const std::string self = owner_.name() + "/" + home_;
        for (auto& info : owner_.service_.list_all())
            if (info.name != self)
                out.push_back(std::move(info));
        return out;
    }

    [[nodiscard]] std::optional<nbd::ExportInfo> find(const std::string& name) const override
    {
        if (is_home(name)) {
            for (auto info : owner_.imports())
                if (info.name == home_) {
                    info.name = name.empty() ? home_ : name;
                    return info;
                }
            return std::nullopt;
        }
        return owner_.service_.find_qualified(name);
    }

    std::shared_ptr<Export> open(const std::string& name) override
    {
        if (is_home(name))
            return owner_.open_import(home_);
        return owner_.service_.open_qualified(name);
    }

private:
    /// The socket's own export: the default, its plain name, or its qualified name.
    [[nodiscard]] bool is_home(const std::string& name) const
    {
        return name.empty() || name == home_ || name == owner_.name() + "/" + home_;
    }

    PeerBlock& owner_;
    std::string home_;
};

PeerBlock::PeerBlock(BlockService& service, const PeerHandle& peer, const BlockConfig& config)
    : service_(service), peer_(peer), config_(config)
{
    channel_ = std::make_unique<BlockChannel>(
        *peer_.link, peer_.first_channel, [name = peer_.name](const std::string& why) {
            log(LogLevel::err, "%s: the peer broke the block protocol, link reset: %s",
                name.c_str(), why.c_str());
        });
    open_exports();
    if (config_.import.enabled) {
        ImporterOptions options;
        options.deadline = config_.import.deadline;
        importer_ =
            Importer::create(*channel_, peer_.executor, options, [this] { sync_endpoints(); });
    }
}

PeerBlock::~PeerBlock()
{
    stop();
    channel_->set_importer(nullptr);
    channel_->set_exporter(nullptr);
    importer_.reset();
    exporter_.reset();
    channel_.reset();
    service_.forget(peer_.name);
}

void PeerBlock::open_exports()
{
    std::vector<ExportSpec> specs;
    for (const auto& e : config_.exports) {
        auto disk = Disk::open(e.path, e.read_only, e.direct);
        if (!disk) {
            log(LogLevel::err, "%s: export %s: %s", peer_.name.c_str(), e.name.c_str(),
                disk.error().c_str());
            export_errors_[e.name] = disk.error();
            continue;
        }
        ExportSpec spec;
        spec.name = e.name;
        spec.description = e.description;
        spec.read_only = e.read_only || (*disk)->read_only();
        spec.disk = std::shared_ptr<Disk>(std::move(*disk));
        log(LogLevel::info, "%s: exporting %s (%s, %llu bytes%s)", peer_.name.c_str(),
            e.name.c_str(), e.path.c_str(), static_cast<unsigned long long>(spec.disk->size()),
            spec.read_only ? ", read-only" : "");
        paths_[e.name] = e.path;
        specs.push_back(std::move(spec));
    }
    exports_offered_ = specs.size();
    exporter_ =
        std::make_unique<Exporter>(*channel_, service_.io_pool(peer_.executor), std::move(specs));
}

void PeerBlock::link_up()
{
    service_.changed();
}

void PeerBlock::link_down(std::error_code /*why*/)
{
    service_.changed();
}

std::vector<nbd::ExportInfo> PeerBlock::imports() const
{
    return importer_ ? importer_->exports() : std::vector<nbd::ExportInfo>{};
}

bool PeerBlock::reachable() const
{
    return importer_ && importer_->ready() && peer_.link != nullptr && peer_.link->up();
}

std::shared_ptr<Export> PeerBlock::open_import(const std::string& name)
{
    return importer_ ? importer_->open(name) : nullptr;
}

std::size_t PeerBlock::clients() const
{
    std::size_t n = 0;
    for (const auto& [name, served] : endpoints_)
        n += served.endpoint->stats().connections;
    return n;
}

void PeerBlock::sync_endpoints()
{
    if (stopped_ || !importer_)
        return;
    std::map<std::string, nbd::ExportInfo> offered;
    for (auto& info : importer_->exports())
        offered[info.name] = info;
    for (auto it = endpoints_.begin(); it != endpoints_.end();) {
        if (offered.contains(it->first)) {
            ++it;
            continue;
        }
        log(LogLevel::notice, "%s: the peer no longer offers %s: its local socket goes",
            peer_.name.c_str(), it->first.c_str());
        it->second.endpoint->stop();
        it = endpoints_.erase(it);
    }
    for (const auto& [name, info] : offered) {
        if (endpoints_.contains(name))
            continue;
        Served served;
        served.directory = std::make_unique<Directory>(*this, name);
        NbdEndpointOptions options;
        options.socket_path = (service_.socket_dir() / peer_.name / (name + ".sock")).string();
        options.group = service_.socket_group();
        options.name = "nbd " + peer_.name + "/" + name;
        if (const auto t = config_.import.tcp.find(name); t != config_.import.tcp.end())
            options.tcp = t->second;
        served.endpoint = std::make_unique<NbdEndpoint>(peer_.executor, *served.directory,
                                                        service_.budget(peer_.executor), options);
        if (auto r = served.endpoint->start(); !r) {
            log(LogLevel::err, "%s: cannot serve %s locally: %s", peer_.name.c_str(), name.c_str(),
                r.error().c_str());
            continue;
        }
        log(LogLevel::notice, "%s: importing %s (%llu bytes) on %s%s%s", peer_.name.c_str(),
            name.c_str(), static_cast<unsigned long long>(info.size), options.socket_path.c_str(),
            options.tcp.empty() ? "" : " and ", options.tcp.c_str());
        endpoints_.emplace(name, std::move(served));
    }
    service_.changed();
}

void PeerBlock::stop()
{
    if (stopped_)
        return;
    stopped_ = true;
    for (auto& [name, served] : endpoints_)
        served.endpoint->stop();
    endpoints_.clear();
}

nlohmann::json PeerBlock::status() const
{
    nlohmann::json s;
    nlohmann::json exports = nlohmann::json::array();
    if (exporter_) {
        for (auto e : exporter_->status().value("exports", nlohmann::json::array())) {
            if (const auto it = paths_.find(e.value("name", "")); it != paths_.end())
                e["path"] = it->second;
            exports.push_back(std::move(e));
        }
    }
    for (const auto& [name, error] : export_errors_)
        exports.push_back({{"name", name}, {"error", error}});
    s["exports"] = exports;

    // An import: what the link says of it, and what its local NBD endpoint says.
    nlohmann::json imports = nlohmann::json::array();
    if (importer_) {
        const nlohmann::json link = importer_->status();
        for (auto i : link.value("imports", nlohmann::json::array())) {
            const auto it = endpoints_.find(i.value("name", ""));
            if (it != endpoints_.end()) {
                const nlohmann::json nbd = it->second.endpoint->status();
                i["socket"] = nbd.value("socket", "");
                if (nbd.contains("tcp"))
                    i["tcp"] = nbd["tcp"];
                i["connections"] = nbd.value("connections", 0);
                i["connections_total"] = nbd.value("connections_total", 0);
                i["protocol_errors"] = nbd.value("protocol_errors", 0);
            }
            imports.push_back(std::move(i));
        }
        s["import_ready"] = link.value("ready", false);
        s["import_expired"] = link.value("expired", false);
    }
    s["imports"] = imports;
    std::string summary =
        std::to_string(exports_offered_) + (exports_offered_ == 1 ? " export, " : " exports, ") +
        std::to_string(endpoints_.size()) + (endpoints_.size() == 1 ? " import" : " imports");
    if (const std::size_t n = clients(); n > 0)
        summary += ", " + std::to_string(n) + (n == 1 ? " NBD client" : " NBD clients");
    if (!export_errors_.empty())
        summary += ", " + std::to_string(export_errors_.size()) + " export(s) failed to open";
    s["summary"] = summary;
    return s;
}

}  // namespace ismd::block
