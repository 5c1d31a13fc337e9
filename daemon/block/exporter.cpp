// SPDX-License-Identifier: MIT
#include "block/exporter.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ismd::block {

using wire::Header;
using wire::Type;

namespace {

constexpr uint16_t kKnownFlags = nbd::kCmdFua | nbd::kCmdNoHole | nbd::kCmdDf | nbd::kCmdReqOne;

bool carries_data(uint16_t cmd)
{
    return cmd == static_cast<uint16_t>(nbd::Cmd::read) ||
           cmd == static_cast<uint16_t>(nbd::Cmd::write);
}

bool modifies(nbd::Cmd cmd)
{
    return cmd == nbd::Cmd::write || cmd == nbd::Cmd::trim || cmd == nbd::Cmd::write_zeroes;
}

}  // namespace

Exporter::Exporter(BlockChannel& channel, IoPool& pool, std::vector<ExportSpec> exports,
                   wire::Limits limits)
    : channel_(channel), pool_(pool), limits_(limits)
{
    limits_.max_payload = std::clamp<uint32_t>(limits_.max_payload, 1, nbd::kMaxPayload);
    limits_.window_bytes = std::max(limits_.window_bytes, limits_.max_payload);
    limits_.max_requests = std::max<uint32_t>(limits_.max_requests, 1);
    limits_.piece = std::clamp<uint32_t>(limits_.piece, 1, wire::kMaxPiece);
    set_exports(std::move(exports));
    channel_.set_exporter(this);
}

Exporter::~Exporter()
{
    *alive_ = false;
    channel_.set_exporter(nullptr);
}

void Exporter::set_exports(std::vector<ExportSpec> exports)
{
    std::vector<Offered> before = std::move(exports_);
    exports_.clear();
    for (auto& spec : exports) {
        if (exports_.size() == wire::kMaxExports || !spec.disk || spec.name.empty())
            continue;
        Offered o;
        // An export that stays keeps its counters across a reload.
        for (const auto& b : before)
            if (b.spec.name == spec.name)
                o.stats = b.stats;
        o.spec = std::move(spec);
        o.spec.read_only = o.spec.read_only || o.spec.disk->read_only();
        o.info.name = o.spec.name.substr(0, wire::kMaxName);
        o.info.description = o.spec.description.substr(0, wire::kMaxDescription);
        o.info.size = o.spec.disk->size();
        o.info.flags = nbd::kHasFlags | nbd::kSendFlush | nbd::kSendFua | nbd::kCanMultiConn;
        o.info.flags |= o.spec.read_only ? nbd::kReadOnly : nbd::kSendTrim | nbd::kSendWriteZeroes;
        o.info.min_block = 1;
        o.info.preferred_block = std::max<uint32_t>(4096, o.spec.disk->logical_block());
        o.info.max_block = limits_.max_payload;
        exports_.push_back(std::move(o));
    }
    if (hello_seen_ && !hello_waiting_)
        send_exports();
}

void Exporter::send_exports()
{
    wire::ExportsPayload p;
    p.limits = limits_;
    for (std::size_t i = 0; i < exports_.size(); ++i)
        p.exports.push_back({static_cast<uint16_t>(i), exports_[i].info});
    Header h;
    h.type = Type::exports;
    channel_.send_control(h, wire::encode_exports(p));
}

void Exporter::on_channel(bool up)
{
    if (up)
        return;  // wait for HELLO
    ++epoch_;
    stale_ops_ += current_ops_;
    current_ops_ = 0;
    for (auto& [tag, op] : ops_)
        --op->stats->in_flight;
    ops_.clear();
    window_used_ = 0;
    hello_seen_ = false;
    hello_waiting_ = false;
}

std::string Exporter::on_control(const Header& h, std::span<const std::byte> payload)
{
    if (!payload.empty())
        return std::string(wire::type_name(h.type)) + " with a payload";
    if (h.type == Type::hello) {
        hello_seen_ = true;
        if (stale_ops_ > 0)
            hello_waiting_ = true;  // answered when the last one finished
        else
            send_exports();
        return {};
    }
    return request(h);
}

std::string Exporter::request(const Header& h)
{
    if (!hello_seen_)
        return "REQUEST before HELLO";
    if (ops_.contains(h.tag))
        return "REQUEST with tag " + std::to_string(h.tag) + ", which is in flight";
    const uint32_t window = carries_data(h.cmd) ? h.length : 0;
    if (window > limits_.max_payload)
        return "REQUEST of " + std::to_string(h.length) + " bytes, above the announced " +
               std::to_string(limits_.max_payload);
    if (ops_.size() >= limits_.max_requests)
        return "more than the announced " + std::to_string(limits_.max_requests) +
               " requests outstanding";
    if (window_used_ + window > limits_.window_bytes)
        return "REQUEST beyond the announced window of " + std::to_string(limits_.window_bytes) +
               " bytes";

    auto op = std::make_shared<Op>();
    op->h = h;
    op->window = window;
    window_used_ += window;
    ops_.emplace(h.tag, op);
    ++requests_received_;

    if (h.export_id >= exports_.size()) {
        op->stats = std::make_shared<Stats>();
        ++op->stats->in_flight;
        refuse(op, nbd::kEinval, "no export with id " + std::to_string(h.export_id));
        return {};
    }
    const Offered& ex = exports_[h.export_id];
    op->disk = ex.spec.disk;
    op->stats = ex.stats;
    ++op->stats->requests;
    ++op->stats->in_flight;
    const auto cmd = static_cast<nbd::Cmd>(h.cmd);
    const bool known = cmd == nbd::Cmd::read || cmd == nbd::Cmd::write || cmd == nbd::Cmd::flush ||
                       cmd == nbd::Cmd::trim || cmd == nbd::Cmd::write_zeroes ||
                       cmd == nbd::Cmd::block_status;
    if (!known) {
        refuse(op, nbd::kEinval, "command " + std::to_string(h.cmd) + " not supported");
    } else if ((h.flags & ~kKnownFlags) != 0) {
        refuse(op, nbd::kEinval, "unknown command flags");
    } else if (cmd != nbd::Cmd::flush &&
               (h.offset > ex.info.size || h.length > ex.info.size - h.offset)) {
        refuse(op, nbd::kEinval, "range past the end of " + ex.info.name);
    } else if (modifies(cmd) && ex.spec.read_only) {
        refuse(op, nbd::kEperm, ex.info.name + " is read-only");
    } else if (cmd == nbd::Cmd::write && h.length > 0) {
        op->data = std::make_shared<std::vector<std::byte>>(h.length);  // inside the window
    } else {
        start(op);
    }
    return {};
}

void Exporter::refuse(const std::shared_ptr<Op>& op, uint32_t error, std::string message)
{
    ++op->stats->errors;
    op->error = error;
    op->message = std::move(message);
    // A WRITE's data still comes: the reply follows it.
    if (op->h.cmd == static_cast<uint16_t>(nbd::Cmd::write) && op->h.length > 0)
        return;
    std::string m = op->message;
    reply(op, error,
          {reinterpret_cast<const std::byte*>(m.data()),
           reinterpret_cast<const std::byte*>(m.data()) + m.size()});
}

DataTarget Exporter::on_data(const Header& h)
{
    DataTarget t;
    auto it = ops_.find(h.tag);
    if (it == ops_.end() || it->second->h.cmd != static_cast<uint16_t>(nbd::Cmd::write)) {
        t.violation = "WRITE_DATA for tag " + std::to_string(h.tag) + ", no WRITE in flight";
        return t;
    }
    Op& op = *it->second;
    if (h.offset != op.received || h.payload > op.h.length - op.received) {
        t.violation = "WRITE_DATA piece at " + std::to_string(h.offset) + "+" +
                      std::to_string(h.payload) + " of a " + std::to_string(op.h.length) +
                      "-byte WRITE with " + std::to_string(op.received) + " bytes received";
        return t;
    }
    if (h.payload > limits_.piece) {
        t.violation = "WRITE_DATA piece of " + std::to_string(h.payload) +
                      " bytes, above the announced " + std::to_string(limits_.piece);
        return t;
    }
    if (op.error != 0) {
        t.discard = true;
        return t;
    }
    t.into = std::span(*op.data).subspan(h.offset, h.payload);
    t.keep = op.data;
    return t;
}

void Exporter::on_data_done(const Header& h)
{
    auto it = ops_.find(h.tag);
    if (it == ops_.end())
        return;
    auto op = it->second;
    op->received += h.payload;
    if (op->received < op->h.length)
        return;
    if (op->error != 0) {
        const std::string& m = op->message;
        reply(op, op->error,
              {reinterpret_cast<const std::byte*>(m.data()),
               reinterpret_cast<const std::byte*>(m.data()) + m.size()});
        return;
    }
    start(op);
}

void Exporter::start(const std::shared_ptr<Op>& op)
{
    const auto cmd = static_cast<nbd::Cmd>(op->h.cmd);
    if (cmd == nbd::Cmd::read)
        op->data = std::make_shared<std::vector<std::byte>>(op->h.length);  // inside the window
    ++current_ops_;
    if (DiskRing* ring = pool_.ring_for(op->h.length);
        ring != nullptr &&
        (cmd == nbd::Cmd::read || cmd == nbd::Cmd::write || cmd == nbd::Cmd::flush)) {
        // io_uring from the loop: no thread hop. The op keeps the disk and the buffer.
        auto done = [this, alive = std::weak_ptr<bool>(alive_), op, epoch = epoch_](int err) {
            Done d;
            d.err = err;
            if (alive.lock())
                finished(op, epoch, d);
        };
        if (cmd == nbd::Cmd::read)
            ring->read(*op->disk, op->h.offset, *op->data, std::move(done));
        else if (cmd == nbd::Cmd::write)
            ring->write(
                *op->disk, op->h.offset,
                op->data ? std::span<const std::byte>(*op->data) : std::span<const std::byte>(),
                (op->h.flags & nbd::kCmdFua) != 0, std::move(done));
        else
            ring->flush(*op->disk, std::move(done));
        return;
    }
    pool_.run(
        [disk = op->disk, data = op->data, h = op->h]() {
            Done d;
            const bool fua = (h.flags & nbd::kCmdFua) != 0;
            switch (static_cast<nbd::Cmd>(h.cmd)) {
                case nbd::Cmd::read:
                    d.err = disk->read(h.offset, *data);
                    break;
                case nbd::Cmd::write:
                    d.err = disk->write(
                        h.offset,
                        data ? std::span<const std::byte>(*data) : std::span<const std::byte>(),
                        fua);
                    break;
                case nbd::Cmd::flush:
                    d.err = disk->flush();
                    break;
                case nbd::Cmd::trim:
                    d.err = disk->trim(h.offset, h.length);
                    if (d.err == 0 && fua)
                        d.err = disk->flush();
                    break;
                case nbd::Cmd::write_zeroes:
                    d.err = disk->write_zeroes(h.offset, h.length, (h.flags & nbd::kCmdNoHole) == 0,
                                               fua);
                    break;
                case nbd::Cmd::block_status: {
                    auto extents = disk->extents(h.offset, h.length);
                    if (!extents) {
                        d.err = extents.error();
                        break;
                    }
                    uint64_t total = 0;
                    for (const auto& e : *extents) {
                        if (total >= h.length || d.extents.size() == wire::kMaxExtents)
                            break;
                        const uint64_t len = std::min<uint64_t>(e.length, h.length - total);
                        if (len == 0)
                            continue;
                        d.extents.push_back({static_cast<uint32_t>(len),
                                             e.hole ? nbd::kStateHole | nbd::kStateZero : 0U});
                        total += len;
                        if ((h.flags & nbd::kCmdReqOne) != 0)
                            break;
                    }
                    if (d.extents.empty())
                        d.err = EIO;
                    break;
                }
                default:
                    d.err = EINVAL;
                    break;
            }
            return d;
        },
        [this, alive = std::weak_ptr<bool>(alive_), op, epoch = epoch_](const Done& d) {
            if (alive.lock())
                finished(op, epoch, d);
        });
}

void Exporter::finished(const std::shared_ptr<Op>& op, uint64_t epoch, const Done& d)
{
    if (epoch != epoch_) {
        // Of an earlier epoch: its reply is lost with the link; the importer re-drives it.
        if (--stale_ops_ == 0 && hello_waiting_) {
            hello_waiting_ = false;
            send_exports();
        }
        return;
    }
    --current_ops_;
    const auto cmd = static_cast<nbd::Cmd>(op->h.cmd);
    if (d.err != 0) {
        ++op->stats->errors;
        const std::string m = std::string("disk: ") + std::strerror(d.err);
        reply(op, nbd::from_errno(d.err),
              {reinterpret_cast<const std::byte*>(m.data()),
               reinterpret_cast<const std::byte*>(m.data()) + m.size()});
        return;
    }
    if (cmd == nbd::Cmd::read) {
        op->stats->bytes_read += op->h.length;
        Header h;
        h.type = Type::read_data;
        h.tag = op->h.tag;
        channel_.send_data(h, op->data, limits_.piece,
                           [this, alive = std::weak_ptr<bool>(alive_), op, epoch] {
                               if (alive.lock() && epoch == epoch_)
                                   reply(op, 0, {});
                           });
        return;
    }
    if (cmd == nbd::Cmd::write)
        op->stats->bytes_written += op->h.length;
    reply(
        op, 0,
        cmd == nbd::Cmd::block_status ? wire::encode_extents(d.extents) : std::vector<std::byte>());
}

void Exporter::reply(const std::shared_ptr<Op>& op, uint32_t error, std::vector<std::byte> payload)
{
    if (payload.size() > wire::kMaxMessage &&
        op->h.cmd != static_cast<uint16_t>(nbd::Cmd::block_status))
        payload.resize(wire::kMaxMessage);
    Header h;
    h.type = Type::reply;
    h.tag = op->h.tag;
    h.length = error;
    channel_.send_control(h, std::move(payload));
    release(op);
}

void Exporter::release(const std::shared_ptr<Op>& op)
{
    auto it = ops_.find(op->h.tag);
    if (it == ops_.end() || it->second != op)
        return;
    ops_.erase(it);
    window_used_ -= op->window;
    --op->stats->in_flight;
}

nlohmann::json Exporter::status() const
{
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : exports_) {
        list.push_back({{"name", e.info.name},
                        {"read_only", e.spec.read_only},
                        {"size", e.info.size},
                        {"in_flight", e.stats->in_flight},
                        {"requests", e.stats->requests},
                        {"bytes_read", e.stats->bytes_read},
                        {"bytes_written", e.stats->bytes_written},
                        {"errors", e.stats->errors}});
    }
    return {{"exports", list}, {"stale_disk_ops", stale_ops_}, {"hello", hello_seen_}};
}

}  // namespace ismd::block
