// SPDX-License-Identifier: MIT
// A peer file's "block" section as an administrator writes it: good sections give the
// values, every mistake one line naming the key and what was wrong.
#include "block/block_config.hpp"

#include <string>

#include <gtest/gtest.h>

namespace ismd::block {
namespace {

ConfigResult<std::shared_ptr<const void>> parse(const std::string& text)
{
    return block_config_parser()(nlohmann::json::parse(text), {"peers.d/lpar2.json", "/block"},
                                 GlobalConfig{});
}

const BlockConfig& value(const ConfigResult<std::shared_ptr<const void>>& r)
{
    return *static_cast<const BlockConfig*>(r->get());
}

std::string error(const std::string& text)
{
    auto r = parse(text);
    return r ? std::string("(accepted)") : r.error().text;
}

TEST(BlockConfig, EmptySectionImportsAndExportsNothing)
{
    auto r = parse("{}");
    ASSERT_TRUE(r) << r.error().text;
    EXPECT_TRUE(value(r).exports.empty());
    EXPECT_TRUE(value(r).import.enabled);
    EXPECT_EQ(value(r).import.deadline, std::chrono::milliseconds(60000));
}

TEST(BlockConfig, ExportsAndImportAsWritten)
{
    auto r = parse(R"({
        "exports": [
            {"name": "data", "path": "/var/lib/ismd/data.img", "description": "scratch"},
            {"name": "boot-1.img", "path": "/dev/dasdb", "read_only": true, "direct": true}
        ],
        "import": {"enabled": true, "deadline_ms": 5000,
                   "tcp": {"data": 10809, "boot-1.img": "[::1]:10810"}}
    })");
    ASSERT_TRUE(r) << r.error().text;
    const BlockConfig& c = value(r);
    ASSERT_EQ(c.exports.size(), 2U);
    EXPECT_EQ(c.exports[0].name, "data");
    EXPECT_EQ(c.exports[0].path, "/var/lib/ismd/data.img");
    EXPECT_EQ(c.exports[0].description, "scratch");
    EXPECT_FALSE(c.exports[0].read_only);
    EXPECT_TRUE(c.exports[1].read_only);
    EXPECT_TRUE(c.exports[1].direct);
    EXPECT_EQ(c.import.deadline, std::chrono::milliseconds(5000));
    ASSERT_EQ(c.import.tcp.size(), 2U);
    EXPECT_EQ(c.import.tcp.at("data"), "10809");
    EXPECT_EQ(c.import.tcp.at("boot-1.img"), "[::1]:10810");
}

struct BadSection {
    const char* text;
    const char* error;
};

class BlockConfigBad : public ::testing::TestWithParam<BadSection> {};

TEST_P(BlockConfigBad, NamesTheKeyAndWhatWasWrong)
{
    EXPECT_EQ(error(GetParam().text), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Sections, BlockConfigBad,
    ::testing::Values(
        BadSection{R"({"exports": {"name": "data"}})",
                   "peers.d/lpar2.json: /block/exports: expected an array of exports, found an "
                   "object"},
        BadSection{R"({"exports": [{"path": "/a"}]})",
                   "peers.d/lpar2.json: /block/exports/0/name: expected a non-empty string, found "
                   "nothing"},
        BadSection{R"({"exports": [{"name": "../etc", "path": "/a"}]})",
                   "peers.d/lpar2.json: /block/exports/0/name: expected 1 to 64 of A-Z a-z 0-9 . "
                   "_ - (it names a socket file), found \"../etc\""},
        BadSection{R"({"exports": [{"name": "data", "path": "data.img"}]})",
                   "peers.d/lpar2.json: /block/exports/0/path: expected an absolute path, found "
                   "\"data.img\""},
        BadSection{R"({"exports": [{"name": "a", "path": "/a"}, {"name": "a", "path": "/b"}]})",
                   "peers.d/lpar2.json: /block/exports/1/name: expected a name not used by "
                   "another export, found \"a\" twice"},
        BadSection{R"({"exports": [{"name": "a", "path": "/a", "readonly": true}]})",
                   "peers.d/lpar2.json: /block/exports/0/readonly: unknown key (this object "
                   "takes: description, direct, name, path, read_only)"},
        BadSection{R"({"import": {"deadline_ms": -1}})",
                   "peers.d/lpar2.json: /block/import/deadline_ms: expected an integer from 0 to "
                   "86400000, found -1"},
        BadSection{R"({"import": {"tcp": {"data": 70000}}})",
                   "peers.d/lpar2.json: /block/import/tcp/data: expected a port 1..65535 or "
                   "\"address:port\" with an IP address, found 70000"},
        BadSection{R"({"import": {"tcp": {"data": "localhost:10809"}}})",
                   "peers.d/lpar2.json: /block/import/tcp/data: expected a port 1..65535 or "
                   "\"address:port\" with an IP address, found \"localhost:10809\""},
        BadSection{R"({"imports": {}})",
                   "peers.d/lpar2.json: /block/imports: unknown key (this object takes: exports, "
                   "import)"}));

}  // namespace
}  // namespace ismd::block
