// SPDX-License-Identifier: MIT
// Suites LinkMessageReader and LinkMessageReaderHostile.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
#include "ism/link/message_reader.hpp"

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ism/byte_order.hpp"

namespace {

using namespace ism::link;
using ism::errc;

constexpr uint32_t kRing = 4096;

// Writes records into a ring image as an honest peer would.
struct Writer {
    std::vector<std::byte> ring = std::vector<std::byte>(kRing);
    uint64_t prod = 0;

    void record(uint8_t flags, const std::string& payload) { record_bytes(flags, payload); }
    // The first piece of a message of several: the message's total, then its data.
    void first(uint64_t total, const std::string& data)
    {
        std::string payload(kRecordTotalSize, '\0');
        std::array<std::byte, kRecordTotalSize> raw;
        ism::store_be64(raw, 0, total);
        std::memcpy(payload.data(), raw.data(), raw.size());
        record_bytes(kRecordFirst, payload + data);
    }
    void record_bytes(uint8_t flags, const std::string& payload)
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
    w.first(117, std::string(50, 'b'));  // fits before the end
    w.record(0, std::string(60, 'c'));   // padding, then from offset 0
    w.record(kRecordLast, std::string(7, 'd'));
    ASSERT_TRUE(r.poll(w, w.prod));
    ASSERT_EQ(r.got.size(), 2U);
    EXPECT_EQ(r.got[1], std::string(50, 'b') + std::string(60, 'c') + std::string(7, 'd'));
}

TEST(LinkMessageReader, KeepsAPartialMessageUntilItsLastPiece)
{
    Writer w;
    Reader r;
    w.first(16, "part one ");
    ASSERT_TRUE(r.poll(w, w.prod));
    EXPECT_TRUE(r.got.empty());
    EXPECT_EQ(r.reader.partial_size(), 9U);
    w.record(kRecordLast, "and two");
    ASSERT_TRUE(r.poll(w, w.prod));
    ASSERT_EQ(r.got.size(), 1U);
    EXPECT_EQ(r.got[0], "part one and two");
}

TEST(LinkMessageReader, AMessageOfSeveralPiecesIsAllocatedOnceAtItsTotal)
{
    Writer w;
    Reader r;
    const std::string a(1000, 'a'), b(1500, 'b'), c(700, 'c');
    w.first(3200, a);
    ASSERT_TRUE(r.poll(w, w.prod));
    EXPECT_EQ(r.reader.partial_capacity(), 3200U) << "the whole message, from its first piece";
    w.record(0, b);
    ASSERT_TRUE(r.poll(w, w.prod));
    EXPECT_EQ(r.reader.partial_capacity(), 3200U) << "no reallocation for a later piece";
    std::size_t capacity = 0;
    w.record(kRecordLast, c);
    ASSERT_TRUE(r.rx.update_producer(w.prod));
    ASSERT_TRUE(r.reader.poll(w.ring, r.rx, [&](std::vector<std::byte>&& m) {
        capacity = m.capacity();
        r.got.emplace_back(reinterpret_cast<const char*>(m.data()), m.size());
    }));
    ASSERT_EQ(r.got.size(), 1U);
    EXPECT_EQ(r.got[0], a + b + c);
    EXPECT_EQ(capacity, 3200U);
}

TEST(LinkMessageReader, AMessageNotAdmittedStaysUnreadInTheRing)
{
    Writer w;
    Reader r;
    w.record(kRecordFirst | kRecordLast, "small");
    w.first(2000, std::string(1000, 'x'));
    w.record(kRecordLast, std::string(1000, 'y'));
    ASSERT_TRUE(r.rx.update_producer(w.prod));
    std::vector<std::pair<std::size_t, bool>> asked;
    bool admit = false;
    const MessageReader::Admit gate = [&](std::size_t total, bool whole) {
        asked.emplace_back(total, whole);
        return total < 100 || admit;
    };
    const MessageReader::Deliver keep = [&](std::vector<std::byte>&& m) {
        r.got.emplace_back(reinterpret_cast<const char*>(m.data()), m.size());
    };
    ASSERT_TRUE(r.reader.poll(w.ring, r.rx, gate, keep));
    ASSERT_EQ(r.got.size(), 1U);
    EXPECT_FALSE(r.reader.in_message());
    EXPECT_EQ(r.rx.cursor(), 16U) << "stopped before the refused message's first record";
    ASSERT_TRUE(r.reader.poll(w.ring, r.rx, gate, keep));
    EXPECT_EQ(r.got.size(), 1U);
    admit = true;
    ASSERT_TRUE(r.reader.poll(w.ring, r.rx, gate, keep));
    ASSERT_EQ(r.got.size(), 2U);
    EXPECT_EQ(r.got[1], std::string(1000, 'x') + std::string(1000, 'y'));
    const std::vector<std::pair<std::size_t, bool>> expect{
        {5, true}, {2000, false}, {2000, false}, {2000, false}};
    EXPECT_EQ(asked, expect) << "asked once per message per poll, with its total";
}

TEST(LinkMessageReader, AReceiveIntoABufferSkipsTheTotal)
{
    Writer w;
    Reader r;
    w.first(9, "abcd");
    w.record(kRecordLast, "efghi");
    ASSERT_TRUE(r.rx.update_producer(w.prod));
    std::vector<std::byte> into(64);
    std::size_t length = 0;
    auto done = r.reader.poll_into(w.ring, r.rx, into, length);
    ASSERT_TRUE(done);
    EXPECT_TRUE(*done);
    ASSERT_EQ(length, 9U);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(into.data()), length), "abcdefghi");
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
    w.first(2, "a");
    w.record(kRecordFirst | kRecordLast, "b");
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
}

TEST(LinkMessageReaderHostile, MessageLongerThanTheLimitIsRefused)
{
    Writer w;
    Reader r;
    r.reader = MessageReader(100);
    w.record(kRecordFirst | kRecordLast, std::string(101, 'x'));
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
}

TEST(LinkMessageReaderHostile, TotalAboveTheLimitIsRefusedAtTheFirstPiece)
{
    Writer w;
    Reader r;
    r.reader = MessageReader(100);
    w.first(101, std::string(60, 'x'));  // the rest never needs to come
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
    EXPECT_EQ(r.reader.partial_capacity(), 0U) << "nothing allocated for it";
}

TEST(LinkMessageReaderHostile, FirstPieceWithoutItsTotalIsRefused)
{
    Writer w;
    Reader r;
    // A version-2 first piece: 8 bytes of data where the total belongs, nothing after.
    w.record(kRecordFirst, "12345678");
    w.record(kRecordLast, "9");
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
}

TEST(LinkMessageReaderHostile, TotalNotAboveTheFirstPieceIsRefused)
{
    Writer w;
    Reader r;
    w.first(5, "hello");  // a message of several pieces, all of it in the first one
    w.record(kRecordLast, "!");
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
}

TEST(LinkMessageReaderHostile, PiecesPastTheTotalAreRefused)
{
    Writer w;
    Reader r;
    w.first(10, "hello");
    w.record(kRecordLast, "world!");  // 11 bytes
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
    EXPECT_TRUE(r.got.empty());
}

TEST(LinkMessageReaderHostile, ALastPieceShortOfTheTotalIsRefused)
{
    Writer w;
    Reader r;
    w.first(12, "hello");
    w.record(kRecordLast, "world");  // 10 bytes
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
    EXPECT_TRUE(r.got.empty());
}

TEST(LinkMessageReaderHostile, APieceReachingTheTotalWithoutLastIsRefused)
{
    Writer w;
    Reader r;
    w.first(10, "hello");
    w.record(0, "world");  // the total, but not LAST
    EXPECT_EQ(r.poll(w, w.prod).error(), errc::bad_record);
}

TEST(LinkMessageReaderHostile, TheTotalIsCheckedInAReceiveIntoABuffer)
{
    Writer w;
    Reader r;
    std::vector<std::byte> into(64);
    std::size_t length = 0;
    w.first(10, "hello");
    w.record(kRecordLast, "world!");
    ASSERT_TRUE(r.rx.update_producer(w.prod));
    EXPECT_EQ(r.reader.poll_into(w.ring, r.rx, into, length).error(), errc::bad_record);
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
