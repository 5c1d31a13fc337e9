// SPDX-License-Identifier: MIT
// Suites LinkMessageReader and LinkMessageReaderHostile.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
#include "ism/link/message_reader.hpp"

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace ism::link;
using ism::errc;

constexpr uint32_t kRing = 4096;

// Writes records into a ring image as an honest peer would.
struct Writer {
    std::vector<std::byte> ring = std::vector<std::byte>(kRing);
    uint64_t prod = 0;

    void record(uint8_t flags, const std::string& payload)
    {
        const RecordHeader h{static_cast<uint32_t>(payload.size()), flags};
        std::size_t at = prod % kRing;
        if (kRing - at < h.footprint()) {
            RecordHeader{}.encode(std::span<std::byte, 8>(ring.data() + at, 8));
            prod += kRing - at;
            at = 0;
        }
        h.encode(std::span<std::byte, 8>(ring.data() + at, 8));
        std::memcpy(ring.data() + at + 8, payload.data(), payload.size());
        prod += h.footprint();
    }
};

struct Reader {
    RxRing rx{kRing};
    MessageReader reader{64 * 1024};
    std::vector<std::string> got;

    ism::Result<void> poll(const Writer& w, uint64_t prod)
    {
        if (auto r = rx.update_producer(prod); !r)
            return r;
        auto r = reader.poll(w.ring, rx, [this](std::vector<std::byte>&& m) {
            got.emplace_back(reinterpret_cast<const char*>(m.data()), m.size());
        });
        // Every message was handed over: the room goes back to the writer.
        rx.release_all();
        (void)rx.publish();
        return r;
    }
};

TEST(LinkMessageReader, DeliversWholeMessagesInOrder)
{
    Writer w;
    Reader r;
    w.record(kRecordFirst | kRecordLast, "hello");
    w.record(kRecordFirst | kRecordLast, "");
    w.record(kRecordFirst | kRecordLast, std::string(100, 'x'));
    ASSERT_TRUE(r.poll(w, w.prod));
    ASSERT_EQ(r.got.size(), 3U);
    EXPECT_EQ(r.got[0], "hello");
    EXPECT_EQ(r.got[1], "");
    EXPECT_EQ(r.got[2], std::string(100, 'x'));
    EXPECT_EQ(r.rx.available(), 0U);
}

TEST(LinkMessageReader, ReassemblesPiecesAcrossTheRingWrap)
{
    Writer w;
    Reader r;
    w.record(kRecordFirst | kRecordLast, std::string(4000, 'a'));
    ASSERT_TRUE(r.poll(w, w.prod));
    r.rx.consume(0);
    w.record(kRecordFirst, std::string(50, 'b'));  // fits before the end
    w.record(0, std::string(60, 'c'));             // padding, then from offset 0
    w.record(kRecordLast, std::string(7, 'd'));
    ASSERT_TRUE(r.poll(w, w.prod));
    ASSERT_EQ(r.got.size(), 2U);
    EXPECT_EQ(r.got[1], std::string(50, 'b') + std::string(60, 'c') + std::string(7, 'd'));
}

TEST(LinkMessageReader, KeepsAPartialMessageUntilItsLastPiece)
{
    Writer w;
    Reader r;
    w.record(kRecordFirst, "part one ");
    ASSERT_TRUE(r.poll(w, w.prod));
    EXPECT_TRUE(r.got.empty());
    EXPECT_EQ(r.reader.partial_size(), 9U);
    w.record(kRecordLast, "and two");
    ASSERT_TRUE(r.poll(w, w.prod));
    ASSERT_EQ(r.got.size(), 1U);
    EXPECT_EQ(r.got[0], "part one and two");
}

TEST(LinkMessageReaderHostile, ProducerCursorInsideARecordIsRefused)
{
    Writer w;
    Reader r;
    w.record(kRecordFirst | kRecordLast, std::string(40, 'x'));
    EXPECT_EQ(r.poll(w, w.prod - 8).error(), errc::bad_record);
    EXPECT_TRUE(r.got.empty());
}

TEST(LinkMessageReaderHostile, PieceWithoutFirstIsRefused)
{
    Writer w;
    Reader r;
    w.record(kRecordLast, "orphan");
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
}

TEST(LinkMessageReaderHostile, FirstInsideAMessageIsRefused)
{
    Writer w;
    Reader r;
    w.record(kRecordFirst, "a");
    w.record(kRecordFirst | kRecordLast, "b");
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
}

TEST(LinkMessageReaderHostile, MessageLongerThanTheLimitIsRefused)
{
    Writer w;
    Reader r;
    r.reader = MessageReader(100);
    w.record(kRecordFirst, std::string(60, 'x'));
    w.record(kRecordLast, std::string(60, 'x'));
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
}

TEST(LinkMessageReaderHostile, RecordCrossingTheRingEndIsRefused)
{
    Writer w;
    Reader r;
    w.record(kRecordFirst | kRecordLast, std::string(4000, 'a'));
    ASSERT_TRUE(r.poll(w, w.prod));
    // A header at 4008 claiming 200 bytes: it would run past the ring's end.
    RecordHeader{200, kRecordFirst | kRecordLast}.encode(
        std::span<std::byte, 8>(w.ring.data() + 4008, 8));
    EXPECT_EQ(r.poll(w, w.prod + 208).error(), errc::bad_record);
}

TEST(LinkMessageReaderHostile, PaddingBeyondTheProducerIsRefused)
{
    Writer w;
    Reader r;
    w.record(kRecordFirst | kRecordLast, std::string(4000, 'a'));
    ASSERT_TRUE(r.poll(w, w.prod));
    RecordHeader{}.encode(std::span<std::byte, 8>(w.ring.data() + 4008, 8));
    EXPECT_EQ(r.poll(w, w.prod + 8).error(), errc::bad_record);  // padding must reach the end
}

}  // namespace
