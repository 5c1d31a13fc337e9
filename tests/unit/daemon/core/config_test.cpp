// SPDX-License-Identifier: MIT
// The configuration as an administrator writes it: every mistake gives one exact line
// that names the file, the key and what was wrong; good files give the values.
#include "core/config.hpp"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "core/config_section.hpp"

namespace ismd {
namespace {

namespace fs = std::filesystem;

constexpr const char* kGlobal = R"({
  "device": {"emulated": {"fabric": "demo", "function": "lpar1"}},
  "link": {"dmb_size": 65536, "channels": 4, "keepalive_ms": 500, "poll": "interrupt"},
  "control": {"socket": "/run/ismd/control.sock", "group": "ismd"},
  "log_level": "debug"
})";

// A stand-in service section: {"enabled": bool}.
ConfigSchema test_schema()
{
    ConfigSchema schema;
    schema.services["console"] =
        [](const nlohmann::json& raw, const ConfigPlace& place,
           const GlobalConfig&) -> ConfigResult<std::shared_ptr<const void>> {
        try {
            Section s(raw, place);
            auto enabled = s.boolean("enabled").value_or(false);
            s.finish();
            return std::make_shared<const bool>(enabled);
        } catch (const ConfigException& e) {
            return tl::unexpected(e.error);
        }
    };
    return schema;
}

class ConfigTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        dir_ = fs::temp_directory_path() /
               ("ismd-config-test-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_ / "peers.d");
        write("ismd.json", kGlobal);
    }
    void TearDown() override { fs::remove_all(dir_); }

    void write(const std::string& name, const std::string& text)
    {
        std::ofstream(dir_ / name) << text;
    }

    ConfigResult<Config> load() { return load_config(dir_ / "ismd.json", test_schema()); }

    // The one error line, with the global file's directory cut off the front.
    std::string error()
    {
        auto c = load();
        if (c)
            return "(loaded)";
        std::string text = c.error().text;
        const std::string prefix = (dir_ / "").string();
        if (text.rfind(prefix, 0) == 0)
            text = text.substr(prefix.size());
        return text;
    }

    fs::path dir_;
};

TEST_F(ConfigTest, GoodFilesGiveTheirValues)
{
    write("peers.d/lpar2.json", R"({"name": "lpar2", "gid": "0x00000000DEADBEEF",
                                   "console": {"enabled": true}})");
    write("peers.d/lpar3.json", R"({"name": "lpar3", "emulated_function": "lpar3"})");
    write("peers.d/README", "not a peer");
    auto c = load();
    ASSERT_TRUE(c) << c.error().text;
    const auto& emu = std::get<EmulatedDevice>(c->global.device);
    EXPECT_EQ(emu.fabric, "demo");
    EXPECT_EQ(emu.function, "lpar1");
    EXPECT_EQ(c->global.link.dmb_size, 65536U);
    EXPECT_EQ(c->global.link.channels, 4U);
    EXPECT_EQ(c->global.link.keepalive.count(), 500);
    EXPECT_EQ(c->global.link.dead_after.count(), 1500);  // three keepalives by default
    EXPECT_EQ(c->global.link.poll, PollMode::interrupt);
    EXPECT_EQ(c->global.control.group, "ismd");
    EXPECT_EQ(c->global.log_level, LogLevel::debug);
    EXPECT_EQ(c->global.peers_dir, dir_ / "peers.d");
    ASSERT_EQ(c->peers.size(), 2U);
    EXPECT_EQ(c->peers[0].name, "lpar2");
    EXPECT_EQ(c->peers[0].gid, 0xDEADBEEFU);
    ASSERT_TRUE(c->peers[0].services.contains("console"));
    EXPECT_TRUE(*static_cast<const bool*>(c->peers[0].services.at("console").parsed.get()));
    EXPECT_EQ(c->peers[1].gid, emulated_gid("lpar3"));
    EXPECT_TRUE(c->peers[1].services.empty());
}

TEST_F(ConfigTest, DefaultsWhenOptionalSectionsAreAbsent)
{
    write("ismd.json", R"({"device": {"pci": "0001:00:00.0"}})");
    auto c = load();
    ASSERT_TRUE(c) << c.error().text;
    EXPECT_EQ(std::get<VfioDevice>(c->global.device).pci, "0001:00:00.0");
    EXPECT_EQ(c->global.link.dmb_size, std::size_t{1} << 20);
    EXPECT_EQ(c->global.link.poll, PollMode::adaptive);
    EXPECT_EQ(c->global.control.socket, "/run/ismd/control.sock");
    EXPECT_TRUE(c->peers.empty());
}

struct BadCase {
    const char* what;
    const char* file;  // "ismd.json" or a peer file
    const char* text;
    const char* message;
};

// Each case breaks one thing; the message is the whole line ismd prints.
const BadCase kBadCases[] = {
    {"gid as a number", "peers.d/lpar2.json", R"({"name": "lpar2", "gid": 12})",
     "peers.d/lpar2.json: /gid: expected a non-empty string, found 12"},
    {"gid not hex", "peers.d/lpar2.json", R"({"name": "lpar2", "gid": "lpar2"})",
     "peers.d/lpar2.json: /gid: expected a 64-bit hex string, found \"lpar2\""},
    {"gid too long", "peers.d/lpar2.json", R"({"name": "lpar2", "gid": "0x11112222333344445"})",
     "peers.d/lpar2.json: /gid: expected a 64-bit hex string, found \"0x11112222333344445\""},
    {"gid zero", "peers.d/lpar2.json", R"({"name": "lpar2", "gid": "0x0"})",
     "peers.d/lpar2.json: /gid: expected a non-zero GID, found \"0x0\""},
    {"typo in a peer key", "peers.d/lpar2.json", R"({"name": "lpar2", "gid": "0x1", "consle": {}})",
     "peers.d/lpar2.json: /consle: unknown key (this object takes: console, emulated_function, "
     "gid, name)"},
    {"typo in a global key", "ismd.json", R"({"device": {"fid": 1}, "lnk": {}})",
     "ismd.json: /lnk: unknown key (this object takes: control, device, link, log_level, "
     "peers_dir)"},
    {"typo inside a service section", "peers.d/lpar2.json",
     R"({"name": "lpar2", "gid": "0x1", "console": {"enabld": true}})",
     "peers.d/lpar2.json: /console/enabld: unknown key (this object takes: enabled)"},
    {"no name", "peers.d/lpar2.json", R"({"gid": "0x1"})",
     "peers.d/lpar2.json: /name: expected a non-empty string, found nothing"},
    {"name with a slash", "peers.d/lpar2.json", R"({"name": "../x", "gid": "0x1"})",
     "peers.d/lpar2.json: /name: expected a name of up to 32 letters, digits, '.', '_' or '-', "
     "found \"../x\""},
    {"gid and function both", "peers.d/lpar2.json",
     R"({"name": "lpar2", "gid": "0x1", "emulated_function": "lpar2"})",
     "peers.d/lpar2.json: /: expected exactly one of \"gid\" or \"emulated_function\""},
    {"our own GID", "peers.d/lpar2.json", R"({"name": "lpar2", "emulated_function": "lpar1"})",
     "peers.d/lpar2.json: /emulated_function: expected another function than our own, found "
     "our own GID 0x"},
    {"not JSON", "peers.d/lpar2.json", R"({"name": "lpar2",})",
     "peers.d/lpar2.json: not valid JSON: line 1, column 18: syntax error while parsing object "
     "key - unexpected '}'; expected string literal"},
    {"top level not an object", "peers.d/lpar2.json", R"(["lpar2"])",
     "peers.d/lpar2.json: /: expected an object, found an array"},
    {"no device", "ismd.json", R"({"link": {}})",
     "ismd.json: /device: expected an object naming the ISM function (\"pci\", \"fid\" or "
     "\"emulated\"), found nothing"},
    {"two devices", "ismd.json", R"({"device": {"fid": 1, "pci": "0001:00:00.0"}})",
     "ismd.json: /device: expected exactly one of \"pci\", \"fid\" or \"emulated\", found 2 of "
     "them"},
    {"bad PCI address", "ismd.json", R"({"device": {"pci": "00:01.0"}})",
     "ismd.json: /device/pci: expected a PCI address such as \"0001:00:00.0\", found \"00:01.0\""},
    {"fid negative", "ismd.json", R"({"device": {"fid": -1}})",
     "ismd.json: /device/fid: expected an integer from 0 to 4294967295, found -1"},
    {"DMB size not a power of two", "ismd.json",
     R"({"device": {"fid": 1}, "link": {"dmb_size": 100000}})",
     "ismd.json: /link/dmb_size: expected a power of two from 16384 to 1048576, found 100000"},
    {"too many channels", "ismd.json", R"({"device": {"fid": 1}, "link": {"channels": 33}})",
     "ismd.json: /link/channels: expected an integer from 1 to 32, found 33"},
    {"poll mode unknown", "ismd.json", R"({"device": {"fid": 1}, "link": {"poll": "busy"}})",
     "ismd.json: /link/poll: expected one of \"interrupt\", \"adaptive\" or \"polling\", found "
     "\"busy\""},
    {"dead peer detection shorter than two keepalives", "ismd.json",
     R"({"device": {"fid": 1}, "link": {"keepalive_ms": 1000, "dead_after_ms": 1500}})",
     "ismd.json: /link/dead_after_ms: expected at least twice keepalive_ms (2000), found 1500"},
    {"relative socket path", "ismd.json",
     R"({"device": {"fid": 1}, "control": {"socket": "ismd.sock"}})",
     "ismd.json: /control/socket: expected an absolute path, found \"ismd.sock\""},
    {"log level unknown", "ismd.json", R"({"device": {"fid": 1}, "log_level": "verbose"})",
     "ismd.json: /log_level: expected one of \"err\", \"warning\", \"notice\", \"info\" or "
     "\"debug\", found \"verbose\""},
    {"emulated function on real hardware", "ismd.json",
     R"({"device": {"fid": 1}, "peers_dir": "peers.d"})", nullptr},  // see below
};

class ConfigBadCase : public ConfigTest, public ::testing::WithParamInterface<BadCase> {};

TEST_P(ConfigBadCase, RefusesWithItsMessage)
{
    const BadCase& bad = GetParam();
    if (bad.message == nullptr) {
        write("ismd.json", bad.text);
        write("peers.d/lpar2.json", R"({"name": "lpar2", "emulated_function": "lpar2"})");
        EXPECT_EQ(error(),
                  "peers.d/lpar2.json: /emulated_function: expected no emulated_function: the "
                  "device is a real ISM function, give \"gid\", found \"lpar2\"");
        return;
    }
    write(bad.file, bad.text);
    const std::string got = error();
    const std::string want = bad.message;
    if (want.ends_with("GID 0x"))
        EXPECT_EQ(got, want + format_gid(emulated_gid("lpar1")).substr(2)) << bad.what;
    else
        EXPECT_EQ(got, want) << bad.what;
}

INSTANTIATE_TEST_SUITE_P(Config, ConfigBadCase, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& param_info) {
                             std::string name;
                             for (const char* c = param_info.param.what; *c != '\0'; ++c)
                                 name +=
                                     std::isalnum(static_cast<unsigned char>(*c)) != 0 ? *c : '_';
                             return name;
                         });

TEST_F(ConfigTest, TwoPeersWithOneNameNameBothFiles)
{
    write("peers.d/a.json", R"({"name": "lpar2", "gid": "0x1"})");
    write("peers.d/b.json", R"({"name": "lpar2", "gid": "0x2"})");
    EXPECT_EQ(error(),
              "peers.d/b.json: /name: expected a name of its own, found \"lpar2\", also "
              "the name in peers.d/a.json");
}

TEST_F(ConfigTest, TwoPeersWithOneGidNameBothFiles)
{
    write("peers.d/a.json", R"({"name": "lpar2", "gid": "0x2a"})");
    write("peers.d/b.json", R"({"name": "lpar3", "gid": "0x002A"})");
    EXPECT_EQ(error(),
              "peers.d/b.json: /gid: expected a GID of its own, found 0x000000000000002a, "
              "also the GID in peers.d/a.json");
}

TEST_F(ConfigTest, MissingFilesAreNamed)
{
    fs::remove(dir_ / "ismd.json");
    EXPECT_EQ(error(), "ismd.json: cannot read: No such file or directory");
    write("ismd.json", R"({"device": {"fid": 1}, "peers_dir": "nowhere"})");
    EXPECT_EQ(error(), "nowhere: cannot read the peers directory: No such file or directory");
}

}  // namespace
}  // namespace ismd
