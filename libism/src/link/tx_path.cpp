// SPDX-License-Identifier: MIT
// The send path: records and bytes into the peer's rings, cursors published, sends
// completed by the peer's consumer cursor or failed (docs/protocol.md sections 5 and 6).
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <utility>

#include "link_detail.hpp"

namespace ism::link {

using namespace detail;

bool Link::service_tx(ChannelImpl& ch)
{
    if (!ch.tx_)
        return true;
    while (!ch.unsent_.empty()) {
        ChannelImpl::SendOp& op = ch.unsent_.front();
        // While the modes disagree only a send begun (to its end) and marks go out.
        if (ch.mismatch_ && !op.fin && !op.started && op.done == 0)
            return true;
        bool ok = false;
        if (op.fin)
            ok = write_fin(ch);
        else
            ok = op.mode == ChannelMode::message ? write_message(ch) : write_stream(ch);
        if (!up_)
            return false;
        if (!ok)
            return true;  // out of credit: wait for the peer's consumer cursor
        if (op.fin) {
            ch.unsent_.pop_front();
            continue;
        }
        op.end = ch.tx_->producer();
        if (op.when_written && op.handler)
            defer([h = std::move(op.handler)] { h({}); });
        ch.unconfirmed_.push_back(std::move(op));
        ch.unsent_.pop_front();
        // An empty stream send ends where the peer already confirmed.
        complete_sends(ch, ch.tx_->consumer());
    }
    return true;
}

bool Link::write_fin(ChannelImpl& ch)
{
    // One mark in flight: the next waits until the peer passed the last (its consumer
    // cursor reached its end), so that the peer never misses one.
    const ChannelImpl::SendOp& op = ch.unsent_.front();
    TxRing& tx = *ch.tx_;
    if (tx.consumer() < ch.fin_end_ || tx.free_space() < kFinMarkSize)
        return false;
    const bool close = op.fin_close;
    tx.produce(kFinMarkSize);
    const uint64_t end = tx.producer();
    const uint64_t word =
        end | (close ? kFinClose : 0) | (op.mode == ChannelMode::stream ? kFinStream : 0);
    // For a close: the set saying so, the word, the producer cursor covering the mark,
    // and only then the set of a reopened end (a reader that sees it sees the mark).
    if (close) {
        ch.set_open_ = false;
        if (!announce_channels())
            return false;
    }
    if (!store_peer(fin_offset(ch.index_), be64_bytes(word), false))
        return false;
    ch.fin_end_ = end;
    ch.prod_dirty_ = true;
    if (!close)
        return true;
    const std::size_t at = prod_offset(ch.index_);
    store_be64(cursor_shadow_, at - kProducerCursorsOffset, end);
    if (!store_peer(at, std::span(cursor_shadow_).subspan(at - kProducerCursorsOffset, 8), true))
        return false;
    tx.mark_published();
    ch.prod_dirty_ = false;
    ch.close_pending_ = false;
    ch.skip_ = true;  // from now on the peer knows: drop what it sent, to its mark
    if (ch.open_) {
        ch.set_open_ = true;
        ch.set_mode_ = ch.mode_;
        return announce_channels();
    }
    return true;
}

bool Link::store_peer(uint64_t offset, std::span<const std::byte> data, bool signal)
{
    auto r = port_.store(peer_.token, offset, data, signal);
    if (!r) {
        lose(r.error());
        return false;
    }
    return true;
}

bool Link::write_message(ChannelImpl& ch)
{
    ChannelImpl::SendOp& op = ch.unsent_.front();
    TxRing& tx = *ch.tx_;
    const uint64_t base = kRingAreaOffset + uint64_t{ch.index_} * tx_ring_;
    while (!op.started || op.done < op.data.size()) {
        const std::size_t remaining = op.data.size() - op.done;
        const std::size_t at = tx.write_offset();
        const std::size_t to_end = tx_ring_ - at;
        const std::size_t room = std::min(tx.free_space(), to_end);
        // The first piece of a message longer than one record can take here carries the
        // message's total length before its data (docs/protocol.md section 5), and needs
        // room for it and 8 bytes of data.
        const std::size_t fits =
            room < kRecordHeaderSize
                ? 0
                : std::min((room - kRecordHeaderSize) & ~std::size_t{7}, pipeline_piece());
        const bool several = !op.started && remaining > fits;
        const std::size_t total = several ? kRecordTotalSize : 0;
        const std::size_t need = remaining == 0 ? kRecordHeaderSize : kRecordHeaderSize + total + 8;
        if (to_end < need) {
            // Too little room before the ring's end: pad to it, go on at offset 0.
            if (tx.free_space() < to_end)
                return false;
            static const std::array<std::byte, kRecordHeaderSize> padding{};
            if (!store_peer(base + at, padding, false))
                return false;
            tx.produce(to_end);
            ch.prod_dirty_ = true;
            continue;
        }
        if (room < need)
            return false;
        // Pieces of at most a quarter ring, each published as it is written once a quarter
        // is pending: the reader copies one out while the next goes in.
        const std::size_t piece =
            std::min({remaining, ((room - kRecordHeaderSize) & ~std::size_t{7}) - total,
                      pipeline_piece() - total});
        RecordHeader h;
        h.length = static_cast<uint32_t>(total + piece);
        h.flags = static_cast<uint8_t>((op.started ? 0 : kRecordFirst) |
                                       (piece == remaining ? kRecordLast : 0));
        const std::size_t head = kRecordHeaderSize + total;  // header, and the total if any
        std::array<std::byte, kRecordHeaderSize + kSmallPiece> record;
        h.encode(std::span(record).first<kRecordHeaderSize>());
        if (several)
            store_be64(record, kRecordHeaderSize, op.data.size());
        if (total + piece <= kSmallPiece) {
            // Header and payload in one store: small messages cost one store, not two.
            if (piece > 0)
                std::memcpy(record.data() + head, op.data.data() + op.done, piece);
            if (!store_peer(base + at, std::span(record).first(head + piece), false))
                return false;
        } else {
            if (!store_peer(base + at, std::span(record).first(head), false) ||
                !store_peer(base + at + head, op.data.subspan(op.done, piece), false))
                return false;
        }
        tx.produce(h.footprint());
        op.done += piece;
        op.started = true;
        ch.prod_dirty_ = true;
        if (!publish_early(ch))
            return false;
    }
    return true;
}

bool Link::write_stream(ChannelImpl& ch)
{
    ChannelImpl::SendOp& op = ch.unsent_.front();
    TxRing& tx = *ch.tx_;
    const uint64_t base = kRingAreaOffset + uint64_t{ch.index_} * tx_ring_;
    while (op.done < op.data.size()) {
        const std::size_t n =
            std::min({op.data.size() - op.done, tx.free_space(), tx_ring_ - tx.write_offset()});
        if (n == 0)
            return false;
        if (!store_peer(base + tx.write_offset(), op.data.subspan(op.done, n), false))
            return false;
        tx.produce(n);
        op.done += n;
        ch.prod_dirty_ = true;
        if (!publish_early(ch))
            return false;
    }
    return true;
}

std::size_t Link::pipeline_piece() const noexcept
{
    return std::max<std::size_t>(tx_ring_ / 4 - kRecordHeaderSize, kSmallPiece) & ~std::size_t{7};
}

bool Link::publish_early(ChannelImpl& ch)
{
    // A quarter ring written and not yet published: publish it now, with the signal, so
    // that the reader starts on it. The rest of the batch still goes out with one signal.
    const uint64_t prod = ch.tx_->producer();
    if (prod - ch.tx_->published() < tx_ring_ / 4)
        return true;
    const std::size_t at = prod_offset(ch.index_);
    store_be64(cursor_shadow_, at - kProducerCursorsOffset, prod);
    if (!store_peer(at, std::span(cursor_shadow_).subspan(at - kProducerCursorsOffset, 8), true))
        return false;
    ch.tx_->mark_published();
    ch.prod_dirty_ = false;
    return true;
}

void Link::flush_cursors()
{
    // Every cursor of the batch goes out with one signal, so that one interrupt covers
    // the whole batch. Each area (producer, consumer cursors) goes out in one store
    // spanning from its first changed cursor to its last, the unchanged ones between
    // rewritten from the shadow of what we published (we are the only writer of the
    // peer's cursor area); the signal rides on the last store. Two stores rather than
    // one span across both areas: that span (a channel that sent and received, its two
    // cursors 256 bytes apart) rewrote five cache lines the peer polls, of which it then
    // had to fetch all five again instead of two.
    std::array<std::size_t, 2> lo{cursor_shadow_.size(), cursor_shadow_.size()};
    std::array<std::size_t, 2> hi{0, 0};
    auto put = [&](std::size_t area, std::size_t offset, uint64_t value) {
        const std::size_t at = offset - kProducerCursorsOffset;
        store_be64(cursor_shadow_, at, value);
        lo[area] = std::min(lo[area], at);
        hi[area] = std::max(hi[area], at + 8);
    };
    for (auto& ch : channels_) {
        if (ch->prod_dirty_ && ch->tx_) {
            put(0, prod_offset(ch->index_), ch->tx_->producer());
            ch->tx_->mark_published();
            ch->prod_dirty_ = false;
        }
        if (ch->cons_dirty_ && ch->rx_) {
            put(1, cons_offset(ch->index_), ch->rx_->publish());
            ch->cons_dirty_ = false;
        }
    }
    const bool both = hi[0] > lo[0] && hi[1] > lo[1];
    for (std::size_t area = 0; area < 2; ++area) {
        if (hi[area] <= lo[area])
            continue;
        const bool signal = area == 1 || !both;
        if (!store_peer(kProducerCursorsOffset + lo[area],
                        std::span(cursor_shadow_).subspan(lo[area], hi[area] - lo[area]), signal))
            return;
    }
}

void Link::complete_sends(ChannelImpl& ch, uint64_t cons)
{
    while (!ch.unconfirmed_.empty() && ch.unconfirmed_.front().end <= cons) {
        auto op = std::move(ch.unconfirmed_.front());
        ch.unconfirmed_.pop_front();
        ++ch.stats_.messages_sent;
        ch.stats_.bytes_sent += op.data.size();
        if (op.handler)
            defer([h = std::move(op.handler)] { h({}); });
    }
}

void Link::harvest_confirmations()
{
    // The peer may have confirmed sends just before it went: those were delivered and
    // complete as such; only the rest fail. A cursor that does not validate confirms
    // nothing.
    // A cursor moved by a peer that dropped our data (it closed its end, or has the
    // channel open in the other mode: the fin word and the set are stored before such a
    // cursor, and loaded after it here) confirms nothing either.
    std::array<uint64_t, kMaxChannels> cons{};
    for (auto& ch : channels_)
        cons[ch->index_] = load_cursor(cons_offset(ch->index_));
    const auto set = ChannelSet::unpack(load_cursor(ChannelSet::kOffset), rx_channels_);
    for (auto& ch : channels_) {
        if (!ch->tx_)
            continue;
        const uint32_t c = ch->index_;
        const uint64_t fin = c < rx_channels_ ? load_cursor(fin_offset(c)) : 0;
        const bool closed = fin != ch->peer_fin_word_ && (fin & kFinClose) != 0;
        const bool other_mode =
            !set || ((set->open >> c & 1) != 0 &&
                     ((set->stream >> c & 1) != 0) != (ch->mode_ == ChannelMode::stream));
        if (closed || other_mode)
            continue;
        if (ch->tx_->update_consumer(cons[c]))
            complete_sends(*ch, cons[c]);
    }
}

void Link::fail_waiters(ChannelImpl& ch, std::error_code why)
{
    for (auto& op : ch.unconfirmed_)
        ch.fail_send(op, why);
    for (auto& op : ch.unsent_)
        ch.fail_send(op, why);
    ch.unconfirmed_.clear();
    ch.unsent_.clear();
    fail_receivers(ch, why);
}

void Link::fail_receivers(ChannelImpl& ch, std::error_code why)
{
    for (auto& op : ch.receivers_) {
        if (op.whole)
            defer([h = std::move(op.whole), why] { h(why, {}); });
        else
            defer([h = std::move(op.into), why] { h(why, 0); });
    }
    ch.receivers_.clear();
    for (auto& op : ch.reads_)
        defer([h = std::move(op.handler), why] { h(why, 0); });
    ch.reads_.clear();
}

}  // namespace ism::link
