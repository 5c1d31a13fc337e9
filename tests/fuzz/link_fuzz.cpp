// SPDX-License-Identifier: MIT
// libFuzzer target: the link's real state machine (ism::link::Link) with a hostile peer.
//
// The fuzzer plays the peer. It completes an honest handshake first, then the input is a
// program of operations: bytes written anywhere into our DMB (the peer's only way in),
// cursors and record headers placed where they count, events with any info, time
// passing, the device reporting the peer gone, stores into the peer that fail, and the
// application sending and receiving on message and stream channels. Whatever it does,
// the link may only refuse it: any crash, sanitizer report or broken invariant is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <span>
#include <vector>

#include "ism/byte_order.hpp"
#include "ism/link/link.hpp"

namespace {

using namespace ism;
using namespace ism::link;

constexpr std::size_t kDmbSize = 32 * 1024;
constexpr uint32_t kChannels = 4;
constexpr uint64_t kPeerToken = 0x0000'0005'0000'0000ULL;
constexpr uint16_t kPeerEpoch = 7;

class Input {
public:
    Input(const uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    [[nodiscard]] bool empty() const { return pos_ >= size_; }
    uint64_t take(unsigned bytes)
    {
        uint64_t v = 0;
        for (unsigned i = 0; i < bytes; ++i)
            v = (v << 8) | (pos_ < size_ ? data_[pos_++] : 0);
        return v;
    }
    std::span<const std::byte> bytes(std::size_t n)
    {
        n = std::min(n, size_ - std::min(pos_, size_));
        auto s = std::span(reinterpret_cast<const std::byte*>(data_ + pos_), n);
        pos_ += n;
        return s;
    }

private:
    const uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

// Our DMBs live here; stores into the peer go to a scratch buffer (or fail on request).
class FuzzPort final : public Port {
public:
    Result<OwnDmb> register_dmb(std::size_t size) override
    {
        const uint64_t token = (next_++) << 32;
        auto& mem = dmbs_[token];
        mem.assign(size / 8, 0);
        current = token;
        return OwnDmb{token, std::as_writable_bytes(std::span(mem))};
    }
    void unregister_dmb(uint64_t token) override
    {
        dmbs_.erase(token);
        if (current == token)
            current = 0;
    }
    Result<void> store(uint64_t, uint64_t offset, std::span<const std::byte> data, bool) override
    {
        if (fail_stores)
            return fail(errc::hw_unknown_token);
        if (offset > peer_.size() || data.size() > peer_.size() - offset)
            std::abort();  // the link stored outside the DMB it was offered
        std::memcpy(peer_.data() + offset, data.data(), data.size());
        return {};
    }
    Result<void> send_event(uint32_t, uint64_t) override { return {}; }

    std::span<std::byte> dmb()
    {
        if (current == 0)
            return {};
        return std::as_writable_bytes(std::span(dmbs_.at(current)));
    }

    uint64_t current = 0;
    bool fail_stores = false;

private:
    uint64_t next_ = 1;
    std::map<uint64_t, std::vector<uint64_t>> dmbs_;
    std::vector<std::byte> peer_ = std::vector<std::byte>(kDmbSize);
};

// The honest half of a handshake: our OFFER in, our control block into the link's DMB.
void handshake(Link& link, FuzzPort& port, Clock::time_point now)
{
    const Offer offer{kPeerToken, kPeerEpoch, kProtocolVersion, kProtocolVersion, kDmbSize};
    link.on_event(kEventOffer, offer.pack(), now);
    auto dmb = port.dmb();
    if (dmb.empty())
        return;
    ControlBlock cb;
    cb.nr_channels = kChannels;
    cb.writer_epoch = kPeerEpoch;
    cb.peer_epoch = link.epoch();
    cb.ring_size = ring_size_for(kDmbSize, kChannels);
    cb.writer_token = kPeerToken;
    cb.max_message = 64 * 1024;
    // Channels 0 and 1 in message mode, 2 in stream mode, as the link has them: the
    // records and bytes the fuzzer writes there are read. Channel 3 is open in the other
    // mode than the link's (a channel error, not a reset).
    cb.channels = ChannelSet{0b1111, 0b1100};
    cb.encode(dmb.first<kControlBlockSize>());
    link.poll(now);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size)
{
    Input in(data, size);
    FuzzPort port;
    LinkOptions options;
    options.dmb_size = kDmbSize;
    options.channels = kChannels;
    options.max_message = 64 * 1024;
    auto now = Clock::time_point{} + std::chrono::hours(1);
    Link link(port, options);
    Channel* message = &link.open_channel(0, ChannelMode::message);
    Channel* message2 = &link.open_channel(1, ChannelMode::message);
    Channel* stream = &link.open_channel(2, ChannelMode::stream);
    (void)link.open_channel(3, ChannelMode::message);  // the peer has it as a stream
    if (!link.start(now))
        return 0;
    handshake(link, port, now);

    std::vector<std::byte> send_buf(70 * 1024, std::byte{0x5A});
    std::vector<std::byte> read_buf(4096);
    int outstanding = 0;  // handlers owed: each must run exactly once, by the end
    auto done_send = [&outstanding](std::error_code) { --outstanding; };
    auto done_recv = [&outstanding](std::error_code, std::vector<std::byte>) { --outstanding; };
    auto done_read = [&outstanding](std::error_code, std::size_t) { --outstanding; };

    for (int steps = 0; !in.empty() && steps < 4096; ++steps) {
        auto dmb = port.dmb();
        const uint32_t ring = ring_size_for(kDmbSize, kChannels);
        switch (in.take(1) % 12) {
            case 0: {  // raw bytes anywhere in the DMB
                const std::size_t off = in.take(2) % kDmbSize;
                auto bytes = in.bytes(in.take(1));
                if (!dmb.empty())
                    std::memcpy(dmb.data() + off, bytes.data(),
                                std::min(bytes.size(), kDmbSize - off));
                break;
            }
            case 1: {  // a producer or consumer cursor
                const uint64_t c = in.take(1) % 32;
                const bool prod = (c & 1) != 0;
                const uint64_t v = in.take(1) % 2 ? in.take(8) : in.take(2);
                if (!dmb.empty())
                    store_be64(
                        dmb,
                        (prod ? kProducerCursorsOffset : kConsumerCursorsOffset) + 8 * (c >> 1), v);
                link.poll(now);
                break;
            }
            case 2: {  // a record header inside a ring
                const uint64_t c = in.take(1) % kChannels;
                const std::size_t off = (in.take(2) * 8) % ring;
                auto h = in.bytes(8);
                if (!dmb.empty())
                    std::memcpy(dmb.data() + kRingAreaOffset + c * ring + off, h.data(), h.size());
                break;
            }
            case 3:
                link.poll(now);
                break;
            case 4:
                now += std::chrono::milliseconds(in.take(2));
                link.tick(now);
                break;
            case 5: {
                const uint32_t code = in.take(1) % 2 ? kEventOffer : kEventReset;
                link.on_event(code, in.take(8), now);
                break;
            }
            case 6:
                link.on_peer_disabled(now);
                break;
            case 7:
                port.fail_stores = !port.fail_stores;
                break;
            case 8: {
                const std::size_t n = in.take(3) % send_buf.size();
                ++outstanding;
                (in.take(1) % 2 ? message : message2)
                    ->async_send(std::span(send_buf).first(n), done_send);
                break;
            }
            case 9:
                ++outstanding;
                if (in.take(1) % 2) {
                    message->async_receive(done_recv);
                } else {
                    ++outstanding;
                    stream->async_send(std::span(send_buf).first(in.take(2) % send_buf.size()),
                                       done_send);
                    stream->async_read_some(std::span(read_buf).first(1 + in.take(2) % 4096),
                                            done_read);
                }
                break;
            case 10:
                handshake(link, port, now);
                break;
            case 11:
                message2->async_receive(done_recv);
                ++outstanding;
                break;
        }
    }
    // Tearing the link down must settle every waiter exactly once.
    port.fail_stores = false;
    handshake(link, port, now);
    link.on_peer_disabled(now);
    if (outstanding != 0)
        std::abort();
    return 0;
}
