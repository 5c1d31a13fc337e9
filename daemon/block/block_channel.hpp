// SPDX-License-Identifier: MIT
// BlockChannel: the block service's one stream-mode channel to a peer (docs/protocol.md
// section 11): framing both ways, the sender's scheduler, and routing of frames by type to
// the two roles that share the channel (the Exporter answers HELLO, REQUEST, WRITE_DATA;
// the Importer takes EXPORTS, READ_DATA, REPLY).
//
// One copy per side: a header is read into a 32-byte buffer, a payload straight into the
// place the role names (a request's buffer at the piece's offset); a frame is sent as two
// writes, header and payload, with no assembly copy.
//
// No head-of-line blocking: control frames (HELLO, EXPORTS, REQUEST, REPLY) go out before
// data pieces; pieces go round-robin across the requests that have data to send; at most
// kDataInFlight pieces are in the link at a time, so a control frame waits behind at most
// that many pieces.
//
// A frame that breaks the protocol closes the channel: nothing more is read or sent, both
// roles are told the channel is down, the owner is told why, and the link is reset
// (Link::reset, reason 8): the importer's requests wait for the new epoch, which starts
// clean at once, and are re-driven there (or fail at their deadline).
//
// Threading: everything on the link owner's thread (the io_context that runs the link).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "block/block_proto.hpp"
#include "ism/link/link.hpp"

namespace ismd::block {

/// Where a data piece's payload goes.
struct DataTarget {
    std::span<std::byte> into;   // exactly the piece's payload size
    std::shared_ptr<void> keep;  // keeps `into` alive while the read runs
    bool discard = false;        // read and drop (a request already refused)
    std::string violation;       // non-empty: the piece breaks the protocol
};

/// One side of the protocol on a BlockChannel.
class BlockRole {
public:
    virtual ~BlockRole() = default;
    /// A HELLO, EXPORTS, REQUEST or REPLY with its whole payload. Returns a violation
    /// (empty: fine).
    virtual std::string on_control(const wire::Header& h, std::span<const std::byte> payload) = 0;
    /// A WRITE_DATA or READ_DATA header: where its payload goes.
    virtual DataTarget on_data(const wire::Header& h) = 0;
    /// That payload is in place.
    virtual void on_data_done(const wire::Header& h) = 0;
    /// The channel became usable (link up) or stopped being so (link down, violation).
    virtual void on_channel(bool up) = 0;
};

struct BlockChannelStats {
    uint64_t frames_in = 0;
    uint64_t frames_out = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    uint64_t violations = 0;
};

class BlockChannel {
public:
    using Buffer = std::shared_ptr<const std::vector<std::byte>>;
    using Violation = std::function<void(const std::string& why)>;

    /// Data pieces in the link at a time.
    static constexpr unsigned kDataInFlight = 2;
    /// Control frames in the link at a time (each is one or two of the link's writes).
    static constexpr unsigned kControlInFlight = 128;

    /// Opens channel `index` of `link` in stream mode. `on_violation` hears why the link
    /// was reset (for the log). The link outlives the BlockChannel, and the
    /// BlockChannel its roles.
    BlockChannel(ism::link::Link& link, uint32_t index, Violation on_violation = {});
    ~BlockChannel();
    BlockChannel(const BlockChannel&) = delete;
    BlockChannel& operator=(const BlockChannel&) = delete;

    /// The roles; null detaches. A role is told on_channel(true) at once when the channel
    /// is up, and an exporter attached after the peer's HELLO hears that HELLO then.
    /// Without an exporter HELLO is answered with no exports and REQUEST is a violation;
    /// without an importer EXPORTS is dropped and READ_DATA and REPLY are violations.
    void set_exporter(BlockRole* role);
    void set_importer(BlockRole* role);

    /// Queues a control frame (its payload size is set from `payload`). `issued` runs once
    /// the frame is handed to the link (used to queue what must follow it).
    void send_control(wire::Header h, std::vector<std::byte> payload = {},
                      std::function<void()> issued = {});
    /// Queues `data` as pieces of at most `piece` bytes (headers from `h` with offset and
    /// payload set per piece); `issued_last` runs once the last piece is handed to the
    /// link (at once, through the queue, when `data` is empty).
    void send_data(wire::Header h, Buffer data, uint32_t piece, std::function<void()> issued_last);

    /// The link is up and the channel not closed by a violation.
    [[nodiscard]] bool up() const noexcept { return link_up_ && !broken_; }
    [[nodiscard]] const BlockChannelStats& stats() const noexcept { return stats_; }
    [[nodiscard]] ism::link::Link& link() const noexcept { return link_; }

    /// Closes the channel and resets the link (a role found a violation outside a callback).
    void violation(const std::string& why);

private:
    struct Control {
        wire::Header h;
        std::vector<std::byte> payload;
        std::function<void()> issued;
    };
    struct Source {
        wire::Header h;
        Buffer data;
        uint32_t piece = 0;
        std::size_t next = 0;
        std::function<void()> issued_last;
    };

    void on_state(bool up);
    void pump();
    void issue(const wire::Header& h, std::span<const std::byte> payload,
               std::shared_ptr<const void> keep, bool data);
    void arm_read();
    void on_read(std::error_code ec, std::size_t n);
    void reset_rx(uint64_t stream);
    void header_complete();
    void payload_complete();
    void answer_hello_without_exporter();

    ism::link::Link& link_;
    ism::link::Channel& channel_;
    Violation on_violation_;
    BlockRole* exporter_ = nullptr;
    BlockRole* importer_ = nullptr;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

    bool link_up_ = false;
    bool broken_ = false;
    bool hello_seen_ = false;  // the peer's importer said HELLO in this epoch
    uint64_t epoch_ = 0;       // +1 at every loss: completions of an older epoch are ignored

    // Sending.
    std::deque<Control> control_;
    std::deque<Source> sources_;
    unsigned data_in_flight_ = 0;
    unsigned control_in_flight_ = 0;
    bool pumping_ = false;

    // Receiving: a header, then its payload into `target_` (or `control_payload_`).
    enum class Rx : uint8_t { header, control, data, discard };
    bool read_pending_ = false;
    ism::link::Channel::OpId read_op_ = 0;
    uint64_t rx_stream_ = 0;  // the link epoch (Link::ups()) the receive state belongs to
    Rx rx_ = Rx::header;
    wire::HeaderBytes header_bytes_{};
    wire::Header header_;
    std::size_t have_ = 0;  // bytes of the current header or payload read
    std::vector<std::byte> control_payload_;
    DataTarget target_;
    BlockRole* target_role_ = nullptr;
    std::vector<std::byte> scratch_;

    BlockChannelStats stats_;
};

}  // namespace ismd::block
