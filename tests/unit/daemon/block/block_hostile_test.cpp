// SPDX-License-Identifier: MIT
// Suite BlockLinkInMemoryHostile.
// Suites are named subject, tier, variant (README, Tests): no tier word = one piece on bytes
// (unit), InMemory = links in one process (unit), TwoProcess = integration; Hostile = the test
// is a broken or hostile peer.
// A peer that writes frames by hand at a real Exporter or Importer: every broken frame
// closes the block channel (named in the violation), never crashes or makes the victim
// allocate what the frame asks for; the victim resets the link (reason 8), and the next
// epoch starts clean.
#include <cstring>
#include <functional>

#include "block_link_fixture.hpp"

namespace ismd::block::test {
namespace {

using wire::Header;
using wire::Type;

std::vector<std::byte> frame(Header h, std::size_t payload_bytes = 0,
                             std::size_t claimed = SIZE_MAX)
{
    h.payload = static_cast<uint32_t>(claimed == SIZE_MAX ? payload_bytes : claimed);
    const auto b = wire::encode(h);
    std::vector<std::byte> out(b.begin(), b.end());
    out.resize(out.size() + payload_bytes, std::byte{0x5a});
    return out;
}

Header hdr(Type t, uint64_t tag = 0)
{
    Header h;
    h.type = t;
    h.tag = tag;
    return h;
}

Header request(nbd::Cmd cmd, uint64_t tag, uint64_t offset, uint32_t length)
{
    Header h = hdr(Type::request, tag);
    h.cmd = static_cast<uint16_t>(cmd);
    h.offset = offset;
    h.length = length;
    return h;
}

using Frames = std::vector<std::vector<std::byte>>;

struct Case {
    const char* name;
    bool at_exporter;  // false: the hand-written frames go to an Importer
    std::function<Frames()> frames;
    const char* expect;  // a word of the violation
};

// NOLINTNEXTLINE(readability-identifier-naming): the name GoogleTest looks for
void PrintTo(const Case& c, std::ostream* os)
{
    *os << c.name;
}

std::vector<std::byte> valid_exports()
{
    wire::ExportsPayload p;
    wire::ExportEntry e;
    e.id = 3;
    e.info.name = "disk";
    e.info.size = 1 << 20;
    p.exports.push_back(e);
    return wire::encode_exports(p);
}

Frames exports_then(std::vector<std::byte> last)
{
    auto payload = valid_exports();
    auto f = frame(hdr(Type::exports), payload.size());
    std::memcpy(f.data() + wire::kHeaderSize, payload.data(), payload.size());
    return {f, std::move(last)};
}

const Case kCases[] = {
    {"UnknownType", true,
     [] {
         Header h = hdr(Type::hello);
         h.type = static_cast<Type>(9);
         return Frames{frame(h)};
     },
     "unknown type"},
    {"OtherVersion", true,
     [] {
         Header h = hdr(Type::hello);
         h.version = 2;
         return Frames{frame(h)};
     },
     "version"},
    {"RequestBeforeHello", true, [] { return Frames{frame(request(nbd::Cmd::read, 1, 0, 4096))}; },
     "before HELLO"},
    {"HugeControlPayload", true, [] { return Frames{frame(hdr(Type::hello), 0, 0xFFFFFFFFU)}; },
     "payload"},
    {"HelloWithPayload", true, [] { return Frames{frame(hdr(Type::hello), 8)}; }, "payload"},
    {"WriteDataForAnUnknownTag", true,
     [] {
         return Frames{frame(hdr(Type::hello)), frame(hdr(Type::write_data, 77), 16)};
     },
     "77"},
    {"WriteDataPieceOutOfOrder", true,
     [] {
         Header d = hdr(Type::write_data, 1);
         d.offset = 4000;
         return Frames{frame(hdr(Type::hello)), frame(request(nbd::Cmd::write, 1, 0, 4096)),
                       frame(d, 96)};
     },
     "piece"},
    {"WriteDataPastTheRequest", true,
     [] {
         return Frames{frame(hdr(Type::hello)), frame(request(nbd::Cmd::write, 1, 0, 4096)),
                       frame(hdr(Type::write_data, 1), 5000)};
     },
     "piece"},
    {"HugeDataPiece", true,
     [] {
         return Frames{frame(hdr(Type::hello)), frame(request(nbd::Cmd::write, 1, 0, 4096)),
                       frame(hdr(Type::write_data, 1), 0, 64U << 20)};
     },
     "payload"},
    {"RequestAboveMaxPayload", true,
     [] {
         return Frames{frame(hdr(Type::hello)), frame(request(nbd::Cmd::read, 1, 0, 64U << 20))};
     },
     "above"},
    {"RequestsBeyondTheWindow", true,
     [] {
         Frames f{frame(hdr(Type::hello))};
         for (uint64_t t = 1; t <= 3; ++t)  // 3 x 24 MiB > 64 MiB
             f.push_back(frame(request(nbd::Cmd::read, t, 0, 24U << 20)));
         return f;
     },
     "window"},
    {"TagReused", true,
     [] {
         return Frames{frame(hdr(Type::hello)), frame(request(nbd::Cmd::read, 5, 0, 4096)),
                       frame(request(nbd::Cmd::read, 5, 0, 4096))};
     },
     "in flight"},
    {"ReplyForAnUnknownTag", false, [] { return exports_then(frame(hdr(Type::reply, 42))); }, "42"},
    {"ReadDataForAnUnknownTag", false,
     [] { return exports_then(frame(hdr(Type::read_data, 42), 100)); }, "42"},
    {"ExportsWithTrailingBytes", false,
     [] {
         auto payload = valid_exports();
         payload.push_back(std::byte{1});
         auto f = frame(hdr(Type::exports), payload.size());
         std::memcpy(f.data() + wire::kHeaderSize, payload.data(), payload.size());
         return Frames{f};
     },
     "trailing"},
    {"RequestToAnImporter", false, [] { return Frames{frame(request(nbd::Cmd::read, 1, 0, 512))}; },
     "role"},
};

class BlockLinkInMemoryHostile : public BlockLinkInMemory,
                                 public ::testing::WithParamInterface<Case> {
protected:
    void start_raw(bool at_exporter)
    {
        Side& victim = at_exporter ? exp_ : imp_;
        Side& raw = at_exporter ? imp_ : exp_;
        auto& violations = at_exporter ? exp_violations_ : imp_violations_;
        victim_ = std::make_unique<BlockChannel>(
            *victim.link, kChannel,
            [&violations](const std::string& why) { violations.push_back(why); });
        if (at_exporter)
            exporter_ = std::make_unique<Exporter>(*victim_, *pool_,
                                                   std::vector<ExportSpec>{spec("disk", disk_)});
        else
            importer_ = Importer::create(*victim_, io_.get_executor(), {}, [] {});
        raw_ = &raw.link->open_channel(kChannel, ism::link::ChannelMode::stream);
        arm();
        ASSERT_TRUE(run_until([this] { return imp_.link->up() && exp_.link->up(); }, 10s));
    }

    void arm()
    {
        raw_->async_read_some(rx_buf_, [this, alive = std::weak_ptr<bool>(alive_)](
                                           std::error_code ec, std::size_t n) {
            const auto a = alive.lock();
            if (!a || !*a || ec == std::errc::operation_canceled)
                return;
            if (!ec)
                got_.insert(got_.end(), rx_buf_.begin(), rx_buf_.begin() + static_cast<long>(n));
            arm();
        });
    }

    void send(Frames frames)
    {
        for (auto& f : frames) {
            auto keep = std::make_shared<std::vector<std::byte>>(std::move(f));
            raw_->async_write(*keep, [keep](std::error_code) {});
        }
    }

    void TearDown() override
    {
        *alive_ = false;
        importer_.reset();
        exporter_.reset();
        victim_.reset();
        BlockLinkInMemory::TearDown();
    }

    std::unique_ptr<BlockChannel> victim_;
    ism::link::Channel* raw_ = nullptr;
    std::array<std::byte, 4096> rx_buf_{};
    std::vector<std::byte> got_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

TEST_P(BlockLinkInMemoryHostile, ABrokenFrameResetsTheLinkAndTheNextEpochStartsClean)
{
    const Case& c = GetParam();
    ASSERT_NO_FATAL_FAILURE(start_raw(c.at_exporter));
    auto& violations = c.at_exporter ? exp_violations_ : imp_violations_;
    ASSERT_NO_FATAL_FAILURE(hold_pool());  // requests that got in stay in flight
    const uint64_t ups = imp_.link->ups();
    send(c.frames());
    ASSERT_TRUE(run_until([&] { return !violations.empty(); }, 10s)) << "no violation seen";
    EXPECT_EQ(violations.size(), 1U);
    EXPECT_NE(violations[0].find(c.expect), std::string::npos) << violations[0];
    EXPECT_EQ(victim_->stats().violations, 1U);
    // The victim reset the link: both sides are in a new epoch without anyone's help.
    ASSERT_TRUE(run_until(
        [&] { return imp_.link->ups() > ups && imp_.link->up() && exp_.link->up(); }, 10s))
        << "the link was not reset";
    release_pool();
    ASSERT_TRUE(run_until([&] { return victim_->up(); }, 5s));
    if (c.at_exporter) {
        got_.clear();
        send({frame(hdr(Type::hello))});
        ASSERT_TRUE(run_until([&] { return got_.size() >= wire::kHeaderSize; }, 5s));
        EXPECT_EQ(got_[0], static_cast<std::byte>(Type::exports));
    } else {
        send({exports_then({}).front()});
        ASSERT_TRUE(run_until([&] { return importer_->ready(); }, 5s));
    }
    EXPECT_EQ(violations.size(), 1U);
}

INSTANTIATE_TEST_SUITE_P(Frames, BlockLinkInMemoryHostile, ::testing::ValuesIn(kCases),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace ismd::block::test
