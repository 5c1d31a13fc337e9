// SPDX-License-Identifier: MIT
#include "block/block_channel.hpp"

#include <algorithm>

#include "ism/result.hpp"

namespace ismd::block {

using ism::link::ChannelMode;
using wire::Header;
using wire::Type;

namespace {

constexpr std::size_t kScratch = 64 << 10;

bool is_data(Type t)
{
    return t == Type::write_data || t == Type::read_data;
}

// Who takes a frame of type `t`: the exporter takes what importers send.
bool for_exporter(Type t)
{
    return t == Type::hello || t == Type::request || t == Type::write_data;
}

}  // namespace

BlockChannel::BlockChannel(ism::link::Link& link, uint32_t index, Violation on_violation)
    : link_(link),
      channel_(link.open_channel(index, ChannelMode::stream)),
      on_violation_(std::move(on_violation))
{
    channel_.set_state_handler([this, alive = std::weak_ptr<bool>(alive_)](bool up) {
        if (alive.lock())
            on_state(up);
    });
    link_up_ = link_.up();
    rx_stream_ = link_up_ ? link_.ups() : link_.ups() + 1;
    arm_read();
}

BlockChannel::~BlockChannel()
{
    *alive_ = false;
    channel_.set_state_handler(nullptr);
    // The pending read points into this object: it must not take bytes after it is gone.
    if (read_pending_)
        (void)channel_.cancel(read_op_);
}

void BlockChannel::set_exporter(BlockRole* role)
{
    exporter_ = role;
    if (role == nullptr || !up())
        return;
    role->on_channel(true);
    if (hello_seen_) {
        // The importer said HELLO before this exporter was attached (and got an empty
        // list): the exporter hears it now and answers with its own.
        Header h;
        h.type = Type::hello;
        const std::string why = role->on_control(h, {});
        if (!why.empty())
            violation(why);
    }
}

void BlockChannel::set_importer(BlockRole* role)
{
    importer_ = role;
    if (role != nullptr && up())
        role->on_channel(true);
}

void BlockChannel::on_state(bool up)
{
    if (up == link_up_)
        return;
    link_up_ = up;
    if (!up) {
        // The stream starts afresh in the next epoch: nothing half read or queued survives.
        ++epoch_;
        hello_seen_ = false;
        const bool was_broken = broken_;
        broken_ = false;
        control_.clear();
        sources_.clear();
        data_in_flight_ = 0;
        control_in_flight_ = 0;
        reset_rx(link_.ups() + 1);
        if (!was_broken) {
            for (BlockRole* r : {exporter_, importer_})
                if (r != nullptr)
                    r->on_channel(false);
        }
        return;
    }
    arm_read();
    for (BlockRole* r : {exporter_, importer_})
        if (r != nullptr)
            r->on_channel(true);
}

void BlockChannel::violation(const std::string& why)
{
    if (broken_ || !link_up_)
        return;
    broken_ = true;
    ++stats_.violations;
    control_.clear();
    sources_.clear();
    target_ = {};
    target_role_ = nullptr;
    for (BlockRole* r : {exporter_, importer_})
        if (r != nullptr)
            r->on_channel(false);
    if (on_violation_)
        on_violation_(why);
    // The peer broke the protocol: reset the link (reason 8), so that both sides start
    // the next epoch clean now, not when the link happens to go down. Last, because the
    // link may run our state handler before it returns.
    link_.reset(channel_.index(), std::make_error_code(std::errc::protocol_error));
}

void BlockChannel::send_control(Header h, std::vector<std::byte> payload,
                                std::function<void()> issued)
{
    if (!up())
        return;
    h.version = wire::kVersion;
    h.payload = static_cast<uint32_t>(payload.size());
    control_.push_back(Control{h, std::move(payload), std::move(issued)});
    pump();
}

void BlockChannel::send_data(Header h, Buffer data, uint32_t piece,
                             std::function<void()> issued_last)
{
    if (!up())
        return;
    h.version = wire::kVersion;
    sources_.push_back(
        Source{h, std::move(data), std::max<uint32_t>(piece, 1), 0, std::move(issued_last)});
    pump();
}

void BlockChannel::pump()
{
    if (pumping_)
        return;  // a callback of the loop below queued more: the loop takes it
    pumping_ = true;
    while (up()) {
        if (!control_.empty() && control_in_flight_ < kControlInFlight) {
            Control c = std::move(control_.front());
            control_.pop_front();
            auto payload = std::make_shared<std::vector<std::byte>>(std::move(c.payload));
            issue(c.h, *payload, payload, false);
            if (c.issued)
                c.issued();
            continue;
        }
        if (!sources_.empty() && data_in_flight_ < kDataInFlight) {
            Source s = std::move(sources_.front());
            sources_.pop_front();
            const std::size_t size = s.data ? s.data->size() : 0;
            if (s.next < size) {
                const std::size_t n = std::min<std::size_t>(s.piece, size - s.next);
                Header h = s.h;
                h.offset = s.next;
                h.payload = static_cast<uint32_t>(n);
                issue(h, std::span(*s.data).subspan(s.next, n), s.data, true);
                s.next += n;
            }
            if (s.next < size) {
                sources_.push_back(std::move(s));  // round-robin: the others go first
            } else if (s.issued_last) {
                s.issued_last();
            }
            continue;
        }
        break;
    }
    pumping_ = false;
}

void BlockChannel::issue(const Header& h, std::span<const std::byte> payload,
                         std::shared_ptr<const void> keep, bool data)
{
    auto header = std::make_shared<wire::HeaderBytes>(wire::encode(h));
    (data ? data_in_flight_ : control_in_flight_) += 1;
    ++stats_.frames_out;
    stats_.bytes_out += wire::kHeaderSize + payload.size();
    // Writes complete in order: the frame is out of our hands when its last write is.
    auto done = [this, alive = std::weak_ptr<bool>(alive_), epoch = epoch_,
                 data](std::error_code ec) {
        if (!alive.lock() || epoch != epoch_)
            return;
        (data ? data_in_flight_ : control_in_flight_) -= 1;
        if (ec && ec != ism::errc::peer_gone && ec != ism::errc::link_reset &&
            ec != std::errc::operation_canceled && link_up_) {
            violation(std::string("sending on the block channel failed: ") + ec.message());
            return;
        }
        pump();
    };
    if (payload.empty()) {
        channel_.async_write(*header, [header, done](std::error_code ec) { done(ec); });
        return;
    }
    channel_.async_write(*header, [header](std::error_code) {});
    channel_.async_write(payload, [keep = std::move(keep), done](std::error_code ec) { done(ec); });
}

void BlockChannel::arm_read()
{
    if (read_pending_ || broken_)
        return;
    std::span<std::byte> into;
    switch (rx_) {
        case Rx::header:
            into = std::span(header_bytes_).subspan(have_);
            break;
        case Rx::control:
            into = std::span(control_payload_).subspan(have_);
            break;
        case Rx::data:
            into = target_.into.subspan(have_);
            break;
        case Rx::discard:
            if (scratch_.empty())
                scratch_.resize(kScratch);
            into =
                std::span(scratch_).first(std::min<std::size_t>(kScratch, header_.payload - have_));
            break;
    }
    read_pending_ = true;
    // The stream epoch these bytes belong to: a read issued while the link is down waits
    // for the next one.
    const uint64_t stream = link_.up() ? link_.ups() : link_.ups() + 1;
    read_op_ = channel_.async_read_some(
        into, [this, alive = std::weak_ptr<bool>(alive_), stream,
               keep = rx_ == Rx::data ? target_.keep : nullptr](std::error_code ec, std::size_t n) {
            if (!alive.lock())
                return;
            read_pending_ = false;
            if (!ec && stream != rx_stream_) {
                if (stream < rx_stream_) {
                    // Bytes of an older epoch: the stream restarted since.
                    if (link_.up())
                        arm_read();
                    return;
                }
                reset_rx(stream);  // the first bytes of a new epoch
            }
            on_read(ec, n);
        });
}

void BlockChannel::reset_rx(uint64_t stream)
{
    rx_stream_ = stream;
    rx_ = Rx::header;
    have_ = 0;
    target_ = {};
    target_role_ = nullptr;
}

void BlockChannel::on_read(std::error_code ec, std::size_t n)
{
    if (ec) {
        // Lost: the state handler re-arms when the link is back. Another error makes the
        // channel unusable until then.
        if (ec != ism::errc::peer_gone && ec != ism::errc::link_reset &&
            ec != std::errc::operation_canceled && link_.up())
            violation(std::string("reading the block channel failed: ") + ec.message());
        else if (link_.up())
            arm_read();
        return;
    }
    if (broken_)
        return;
    stats_.bytes_in += n;
    have_ += n;
    switch (rx_) {
        case Rx::header:
            if (have_ == wire::kHeaderSize)
                header_complete();
            break;
        case Rx::control:
            if (have_ == control_payload_.size())
                payload_complete();
            break;
        case Rx::data:
            if (have_ == target_.into.size())
                payload_complete();
            break;
        case Rx::discard:
            if (have_ == header_.payload)
                payload_complete();
            break;
    }
    if (!broken_)
        arm_read();
}

void BlockChannel::header_complete()
{
    const uint8_t type = std::to_integer<uint8_t>(header_bytes_[0]);
    if (!wire::known_type(type))
        return violation("frame of unknown type " + std::to_string(type));
    header_ = wire::decode(header_bytes_);
    if (header_.version != wire::kVersion)
        return violation("frame of version " + std::to_string(header_.version) +
                         " (this side speaks " + std::to_string(wire::kVersion) + ")");
    ++stats_.frames_in;
    have_ = 0;
    BlockRole* role = for_exporter(header_.type) ? exporter_ : importer_;
    if (is_data(header_.type)) {
        if (header_.payload == 0 || header_.payload > wire::kMaxPiece)
            return violation(std::string(wire::type_name(header_.type)) + " with a payload of " +
                             std::to_string(header_.payload) + " bytes");
        if (role == nullptr)
            return violation(std::string(wire::type_name(header_.type)) +
                             " for a role this side does not play");
        DataTarget t = role->on_data(header_);
        if (!t.violation.empty())
            return violation(t.violation);
        if (broken_)
            return;
        if (!t.discard && t.into.size() != header_.payload)
            return violation("data target of the wrong size");  // a role's bug, not the peer's
        rx_ = t.discard ? Rx::discard : Rx::data;
        target_ = std::move(t);
        target_role_ = role;
        return;
    }
    if (header_.payload > wire::kMaxControlPayload)
        return violation(std::string(wire::type_name(header_.type)) + " with a payload of " +
                         std::to_string(header_.payload) + " bytes");
    control_payload_.resize(header_.payload);
    rx_ = Rx::control;
    if (header_.payload == 0)
        payload_complete();
}

void BlockChannel::payload_complete()
{
    const Rx was = rx_;
    rx_ = Rx::header;
    have_ = 0;
    if (was == Rx::data || was == Rx::discard) {
        BlockRole* role = target_role_;
        target_ = {};
        target_role_ = nullptr;
        if (role != nullptr)
            role->on_data_done(header_);
        return;
    }
    if (header_.type == Type::hello)
        hello_seen_ = true;
    BlockRole* role = for_exporter(header_.type) ? exporter_ : importer_;
    if (role == nullptr) {
        if (header_.type == Type::hello)
            answer_hello_without_exporter();
        else if (header_.type != Type::exports)
            violation(std::string(wire::type_name(header_.type)) +
                      " for a role this side does not play");
        return;
    }
    std::string why = role->on_control(header_, control_payload_);
    if (!why.empty())
        violation(why);
}

void BlockChannel::answer_hello_without_exporter()
{
    Header h;
    h.type = Type::exports;
    send_control(h, wire::encode_exports({}));
}

}  // namespace ismd::block
