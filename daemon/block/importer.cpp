// SPDX-License-Identifier: MIT
#include "block/importer.hpp"

#include <algorithm>

#include <boost/asio/post.hpp>

namespace ismd::block {

using wire::Header;
using wire::Type;

namespace {

bool carries_data(nbd::Cmd cmd)
{
    return cmd == nbd::Cmd::read || cmd == nbd::Cmd::write;
}

IoResult failure(uint32_t error, std::string message)
{
    IoResult r;
    r.error = error;
    r.message = std::move(message);
    return r;
}

}  // namespace

// The Export the local NBD endpoint serves: a name on the importer.
class Importer::Imported final : public Export {
public:
    Imported(std::weak_ptr<Importer> importer, boost::asio::any_io_executor executor,
             nbd::ExportInfo info)
        : importer_(std::move(importer)), executor_(std::move(executor)), info_(std::move(info))
    {
    }

    [[nodiscard]] nbd::ExportInfo info() const override
    {
        if (auto imp = importer_.lock())
            if (const auto* e = imp->find(info_.name))
                return e->info;
        return info_;
    }

    void submit(IoRequest request, Done done) override
    {
        if (auto imp = importer_.lock()) {
            imp->submit(info_.name, std::move(request), std::move(done));
            return;
        }
        boost::asio::post(executor_, [done = std::move(done)] {
            done(failure(nbd::kEshutdown, "the import is gone"));
        });
    }

private:
    std::weak_ptr<Importer> importer_;
    boost::asio::any_io_executor executor_;
    nbd::ExportInfo info_;
};

std::shared_ptr<Importer> Importer::create(BlockChannel& channel,
                                           const boost::asio::any_io_executor& executor,
                                           ImporterOptions options, ExportsChanged exports_changed)
{
    auto imp =
        std::make_shared<Importer>(Key{}, channel, executor, options, std::move(exports_changed));
    imp->arm_deadline();  // requests submitted before the first EXPORTS wait this long
    channel.set_importer(imp.get());
    return imp;
}

Importer::Importer(Key, BlockChannel& channel, const boost::asio::any_io_executor& executor,
                   ImporterOptions options, ExportsChanged exports_changed)
    : channel_(channel),
      executor_(executor),
      options_(options),
      exports_changed_(std::move(exports_changed)),
      deadline_(executor)
{
    options_.piece = std::clamp<uint32_t>(options_.piece, 1, wire::kMaxPiece);
}

Importer::~Importer()  // NOLINT(bugprone-exception-escape): out of memory only, see the .hpp
{
    channel_.set_importer(nullptr);
    ++deadline_gen_;
    deadline_.cancel();
    auto reqs = std::move(reqs_);
    for (auto& [tag, r] : reqs)
        boost::asio::post(executor_, [done = std::move(r->done)] {
            done(failure(nbd::kEshutdown, "the import is gone"));
        });
}

std::vector<nbd::ExportInfo> Importer::exports() const
{
    std::vector<nbd::ExportInfo> out;
    out.reserve(exports_.size());
    for (const auto& e : exports_)
        out.push_back(e.info);
    return out;
}

const wire::ExportEntry* Importer::find(const std::string& name) const
{
    const auto it = std::find_if(exports_.begin(), exports_.end(),
                                 [&](const auto& e) { return e.info.name == name; });
    return it == exports_.end() ? nullptr : &*it;
}

std::shared_ptr<Export> Importer::open(const std::string& name)
{
    const auto* e = find(name);
    if (e == nullptr)
        return nullptr;
    return std::make_shared<Imported>(weak_from_this(), executor_, e->info);
}

std::shared_ptr<Importer::Stats> Importer::stats_for(const std::string& name)
{
    auto& s = stats_[name];
    if (!s)
        s = std::make_shared<Stats>();
    return s;
}

void Importer::on_channel(bool up)
{
    if (up) {
        Header h;
        h.type = Type::hello;
        channel_.send_control(h);
        return;
    }
    // Everything unanswered stays, to be sent again when EXPORTS comes back.
    ready_ = false;
    for (auto& [tag, r] : reqs_) {
        r->sent = false;
        r->received = 0;
    }
    waiting_.clear();
    outstanding_ = 0;
    window_used_ = 0;
    arm_deadline();
}

void Importer::arm_deadline()
{
    if (deadline_armed_)
        return;
    deadline_armed_ = true;
    deadline_.expires_after(options_.deadline);
    deadline_.async_wait(
        [weak = weak_from_this(), gen = ++deadline_gen_](boost::system::error_code ec) {
            auto self = weak.lock();
            if (!self || ec || gen != self->deadline_gen_)
                return;
            self->expire();
        });
}

void Importer::expire()
{
    deadline_armed_ = false;
    if (ready_)
        return;
    expired_ = true;
    waiting_.clear();
    auto reqs = std::move(reqs_);
    reqs_.clear();
    for (auto& [tag, r] : reqs)
        fail(r, nbd::kEshutdown,
             "the link to the peer was down for longer than the deadline of " +
                 std::to_string(options_.deadline.count()) + " ms");
}

void Importer::submit(const std::string& name, IoRequest io, Export::Done done)
{
    auto r = std::make_shared<Req>();
    r->tag = next_tag_++;
    r->name = name;
    r->cmd = io.cmd;
    r->flags = io.flags;
    r->offset = io.offset;
    r->length = io.length;
    r->done = std::move(done);
    r->stats = stats_for(name);
    ++r->stats->requests;
    if (expired_ && !ready_)
        return fail(r, nbd::kEshutdown, "the link to the peer is down");
    switch (io.cmd) {
        case nbd::Cmd::read:
            io.data.resize(io.length);
            break;
        case nbd::Cmd::write:
            if (io.data.size() != io.length)
                return fail(r, nbd::kEinval, "write payload does not match its length");
            break;
        case nbd::Cmd::flush:
        case nbd::Cmd::trim:
        case nbd::Cmd::write_zeroes:
        case nbd::Cmd::block_status:
            break;
        default:
            return fail(r, nbd::kEinval, "command not supported over the link");
    }
    if (carries_data(io.cmd))
        r->data = std::make_shared<std::vector<std::byte>>(std::move(io.data));
    reqs_.emplace(r->tag, r);
    if (ready_) {
        waiting_.push_back(r->tag);
        pump();
    }
}

void Importer::pump()
{
    while (ready_ && channel_.up() && !waiting_.empty()) {
        const auto it = reqs_.find(waiting_.front());
        if (it == reqs_.end()) {
            waiting_.pop_front();
            continue;
        }
        auto r = it->second;
        const uint32_t w = carries_data(r->cmd) ? r->length : 0;
        const auto* e = find(r->name);
        if (e == nullptr || w > limits_.max_payload || w > limits_.window_bytes) {
            waiting_.pop_front();
            if (e == nullptr)
                fail(r, nbd::kEio, "the peer no longer offers " + r->name);
            else
                fail(r, nbd::kEinval, "request larger than the exporter takes");
            continue;
        }
        if (outstanding_ >= limits_.max_requests || window_used_ + w > limits_.window_bytes)
            break;  // first in, first out: the rest wait for replies
        waiting_.pop_front();
        r->sent = true;
        r->received = 0;
        if (r->ever_sent)
            ++r->stats->redriven;
        r->ever_sent = true;
        ++outstanding_;
        window_used_ += w;
        Header h;
        h.type = Type::request;
        h.cmd = static_cast<uint16_t>(r->cmd);
        h.flags = r->flags;
        h.export_id = e->id;
        h.tag = r->tag;
        h.offset = r->offset;
        h.length = r->length;
        std::function<void()> then;
        if (r->cmd == nbd::Cmd::write && r->length > 0) {
            const uint32_t piece = std::min(options_.piece, limits_.piece);
            then = [this, r, piece] {
                Header d;
                d.type = Type::write_data;
                d.tag = r->tag;
                channel_.send_data(d, r->data, piece, {});
            };
        }
        channel_.send_control(h, {}, std::move(then));
    }
}

std::string Importer::on_control(const Header& h, std::span<const std::byte> payload)
{
    if (h.type == Type::exports)
        return take_exports(payload);
    return take_reply(h, payload);
}

std::string Importer::take_exports(std::span<const std::byte> payload)
{
    std::string why;
    auto p = wire::decode_exports(payload, why);
    if (!p)
        return why;
    limits_ = p->limits;
    const bool changed = p->exports.size() != exports_.size() ||
                         !std::equal(p->exports.begin(), p->exports.end(), exports_.begin(),
                                     [](const auto& a, const auto& b) {
                                         return a.info.name == b.info.name &&
                                                a.info.size == b.info.size &&
                                                a.info.flags == b.info.flags &&
                                                a.info.description == b.info.description &&
                                                a.info.min_block == b.info.min_block &&
                                                a.info.preferred_block == b.info.preferred_block &&
                                                a.info.max_block == b.info.max_block;
                                     });
    exports_ = std::move(p->exports);
    if (!ready_) {
        ready_ = true;
        expired_ = false;
        deadline_armed_ = false;
        ++deadline_gen_;
        deadline_.cancel();
        // Everything unanswered goes (again) in its original order.
        waiting_.clear();
        for (const auto& [tag, r] : reqs_)
            if (!r->sent)
                waiting_.push_back(tag);
    }
    pump();
    if (changed && exports_changed_)
        exports_changed_();
    return {};
}

std::string Importer::take_reply(const Header& h, std::span<const std::byte> payload)
{
    const auto it = reqs_.find(h.tag);
    if (it == reqs_.end() || !it->second->sent)
        return "REPLY for tag " + std::to_string(h.tag) + ", which is not in flight";
    auto r = it->second;
    IoResult result;
    result.error = h.length;
    if (result.error != 0) {
        if (payload.size() > wire::kMaxMessage)
            return "REPLY with an error message of " + std::to_string(payload.size()) + " bytes";
        result.message.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
    } else if (r->cmd == nbd::Cmd::read) {
        if (r->received != r->length)
            return "REPLY to a READ of " + std::to_string(r->length) + " bytes after " +
                   std::to_string(r->received);
        result.data = std::move(*r->data);
    } else if (r->cmd == nbd::Cmd::block_status) {
        auto extents = wire::decode_extents(payload);
        uint64_t total = 0;
        if (extents)
            for (const auto& e : *extents)
                total += e.length;
        if (!extents || total > r->length)
            return "REPLY to BLOCK_STATUS with malformed extents";
        result.extents = std::move(*extents);
    } else if (!payload.empty()) {
        return "REPLY of success with a payload";
    }
    complete(r, std::move(result));
    return {};
}

DataTarget Importer::on_data(const Header& h)
{
    DataTarget t;
    const auto it = reqs_.find(h.tag);
    if (it == reqs_.end() || !it->second->sent || it->second->cmd != nbd::Cmd::read) {
        t.violation = "READ_DATA for tag " + std::to_string(h.tag) + ", no READ in flight";
        return t;
    }
    Req& r = *it->second;
    if (h.offset != r.received || h.payload > r.length - r.received) {
        t.violation = "READ_DATA piece at " + std::to_string(h.offset) + "+" +
                      std::to_string(h.payload) + " of a " + std::to_string(r.length) +
                      "-byte READ with " + std::to_string(r.received) + " bytes received";
        return t;
    }
    t.into = std::span(*r.data).subspan(h.offset, h.payload);
    t.keep = r.data;
    return t;
}

void Importer::on_data_done(const Header& h)
{
    const auto it = reqs_.find(h.tag);
    if (it != reqs_.end())
        it->second->received += h.payload;
}

void Importer::complete(const std::shared_ptr<Req>& r, IoResult result)
{
    const auto it = reqs_.find(r->tag);
    if (it != reqs_.end() && it->second == r) {
        reqs_.erase(it);
        if (r->sent) {
            --outstanding_;
            window_used_ -= carries_data(r->cmd) ? r->length : 0;
        }
    }
    if (result.error != 0)
        ++r->stats->errors;
    else if (r->cmd == nbd::Cmd::read)
        r->stats->bytes_read += r->length;
    else if (r->cmd == nbd::Cmd::write)
        r->stats->bytes_written += r->length;
    boost::asio::post(executor_, [done = std::move(r->done), result = std::move(result)]() mutable {
        done(std::move(result));
    });
    pump();
}

void Importer::fail(const std::shared_ptr<Req>& r, uint32_t error, std::string message)
{
    complete(r, failure(error, std::move(message)));
}

std::size_t Importer::in_flight(const std::string& name) const
{
    std::size_t n = 0;
    for (const auto& [tag, r] : reqs_)
        n += (r->name == name && r->sent) ? 1U : 0U;
    return n;
}

nlohmann::json Importer::status() const
{
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : exports_) {
        const auto it = stats_.find(e.info.name);
        const Stats s = it == stats_.end() ? Stats{} : *it->second;
        std::size_t waiting = 0;
        for (const auto& [tag, r] : reqs_)
            waiting += (r->name == e.info.name && !r->sent) ? 1U : 0U;
        list.push_back({{"name", e.info.name},
                        {"size", e.info.size},
                        {"read_only", (e.info.flags & nbd::kReadOnly) != 0},
                        {"in_flight", in_flight(e.info.name)},
                        {"waiting", waiting},
                        {"requests", s.requests},
                        {"bytes_read", s.bytes_read},
                        {"bytes_written", s.bytes_written},
                        {"errors", s.errors},
                        {"redriven", s.redriven}});
    }
    return {{"ready", ready_}, {"expired", expired_}, {"imports", list}};
}

}  // namespace ismd::block
