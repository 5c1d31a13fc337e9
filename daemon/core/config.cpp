// SPDX-License-Identifier: MIT
#include "core/config.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <system_error>

#include "core/config_section.hpp"
#include "ism/sim/fabric.hpp"

namespace ismd {

namespace fs = std::filesystem;

namespace {

// A peer's name becomes part of socket paths and log lines.
const std::regex kPeerName("[A-Za-z0-9][A-Za-z0-9._-]{0,31}");
const std::regex kPciAddress("[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]");
const std::regex kHex64("0x[0-9a-fA-F]{1,16}");
const std::regex kSimName("[A-Za-z0-9._-]{1,63}");

struct FileText {
    std::string shown;  // the path as error messages show it
    std::string text;
};

FileText read_file(const fs::path& path, const std::string& shown)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const std::error_code ec(errno, std::system_category());
        throw ConfigException{ConfigError{shown + ": cannot read: " + ec.message()}};
    }
    std::ostringstream out;
    out << in.rdbuf();
    return {shown, out.str()};
}

nlohmann::json parse(const FileText& file)
{
    try {
        return nlohmann::json::parse(file.text);
    } catch (const nlohmann::json::parse_error& e) {
        // "[json.exception.parse_error.101] parse error at line 3, column 5: ..." becomes
        // "file: not valid JSON: line 3, column 5: ...".
        std::string what = e.what();
        const auto at = what.find(" at ");
        what = at == std::string::npos ? what : what.substr(at + 4);
        throw ConfigException{ConfigError{file.shown + ": not valid JSON: " + what}};
    }
}

DeviceConfig read_device(Section device)
{
    const int kinds = int(device.has("pci")) + int(device.has("fid")) + int(device.has("emulated"));
    if (kinds != 1)
        config_fail(device.place(),
                    "expected exactly one of \"pci\", \"fid\" or \"emulated\", found " +
                        std::to_string(kinds) + " of them");
    for (const char* key : {"pci", "fid", "emulated"})
        device.allow(key);
    DeviceConfig result;
    if (auto pci = device.string("pci")) {
        if (!std::regex_match(*pci, kPciAddress))
            device.fail("pci", "a PCI address such as \"0001:00:00.0\"");
        result = VfioDevice{*pci, std::nullopt};
    } else if (auto fid = device.integer("fid", 0, UINT32_MAX)) {
        result = VfioDevice{"", static_cast<uint32_t>(*fid)};
    } else if (auto emu = device.object("emulated")) {
        EmulatedDevice e;
        e.fabric = emu->required_string("fabric");
        if (!std::regex_match(e.fabric, kSimName))
            emu->fail("fabric", "a fabric name of letters, digits, '.', '_' or '-'");
        e.function = emu->required_string("function");
        if (!std::regex_match(e.function, kSimName))
            emu->fail("function", "a function name of letters, digits, '.', '_' or '-'");
        emu->finish();
        result = e;
    }
    device.finish();
    return result;
}

LinkConfig read_link(Section link)
{
    LinkConfig c;
    if (auto v = link.integer("dmb_size", 16384, 1048576)) {
        if ((*v & (*v - 1)) != 0)
            link.fail("dmb_size", "a power of two from 16384 to 1048576");
        c.dmb_size = static_cast<std::size_t>(*v);
    }
    if (auto v = link.integer("channels", 1, 32))
        c.channels = static_cast<uint32_t>(*v);
    if (auto v = link.integer("keepalive_ms", 10, 60000))
        c.keepalive = std::chrono::milliseconds(*v);
    if (auto v = link.integer("dead_after_ms", 30, 600000))
        c.dead_after = std::chrono::milliseconds(*v);
    else
        c.dead_after = 3 * c.keepalive;
    if (c.dead_after < 2 * c.keepalive)
        link.fail("dead_after_ms",
                  "at least twice keepalive_ms (" + std::to_string(2 * c.keepalive.count()) + ")");
    if (auto v = link.choice("poll", {"interrupt", "adaptive", "polling"}))
        c.poll = *v == "interrupt"  ? PollMode::interrupt
                 : *v == "adaptive" ? PollMode::adaptive
                                    : PollMode::polling;
    if (auto v = link.integer("poll_window_us", 1, 100000))
        c.poll_window = std::chrono::microseconds(*v);
    link.finish();
    return c;
}

ControlConfig read_control(Section control)
{
    ControlConfig c;
    if (auto v = control.string("socket")) {
        if (!fs::path(*v).is_absolute())
            control.fail("socket", "an absolute path");
        c.socket = *v;
    }
    if (auto v = control.string("group"))
        c.group = *v;
    control.finish();
    return c;
}

std::string shown_path(const fs::path& path, const fs::path& base)
{
    const fs::path rel = path.lexically_relative(base);
    if (!rel.empty() && *rel.begin() != "..")
        return rel.string();
    return path.string();
}

GlobalConfig read_global(const nlohmann::json& json, const ConfigPlace& place, const fs::path& base)
{
    Section top(json, place);
    GlobalConfig g;
    if (auto device = top.object("device"))
        g.device = read_device(*device);
    else
        top.fail("device", "an object naming the ISM function (\"pci\", \"fid\" or \"emulated\")");
    if (auto link = top.object("link"))
        g.link = read_link(*link);
    if (auto control = top.object("control"))
        g.control = read_control(*control);
    const std::string dir = top.string("peers_dir").value_or("peers.d");
    g.peers_dir = (base / dir).lexically_normal();
    if (auto level = top.choice("log_level", {"err", "warning", "notice", "info", "debug"})) {
        g.log_level = *level == "err"       ? LogLevel::err
                      : *level == "warning" ? LogLevel::warning
                      : *level == "notice"  ? LogLevel::notice
                      : *level == "info"    ? LogLevel::info
                                            : LogLevel::debug;
    }
    top.finish();
    return g;
}

PeerConfig read_peer(const FileText& file, const fs::path& path, const GlobalConfig& global,
                     const ConfigSchema& schema)
{
    const nlohmann::json json = parse(file);
    Section top(json, {file.shown, ""});
    PeerConfig p;
    p.file = path;
    p.file_text = file.text;
    p.name = top.required_string("name");
    if (!std::regex_match(p.name, kPeerName))
        top.fail("name", "a name of up to 32 letters, digits, '.', '_' or '-'");

    const auto* emulated = std::get_if<EmulatedDevice>(&global.device);
    top.allow("gid");
    top.allow("emulated_function");
    if (top.has("gid") == top.has("emulated_function"))
        config_fail(top.place(), "expected exactly one of \"gid\" or \"emulated_function\"");
    if (auto gid = top.string("gid")) {
        if (!std::regex_match(*gid, kHex64))
            top.fail("gid", "a 64-bit hex string");
        p.gid = std::stoull(*gid, nullptr, 16);
        if (p.gid == 0)
            top.fail("gid", "a non-zero GID");
    } else if (auto function = top.string("emulated_function")) {
        if (emulated == nullptr)
            top.fail("emulated_function",
                     "no emulated_function: the device is a real ISM function, give \"gid\"");
        if (!std::regex_match(*function, kSimName))
            top.fail("emulated_function", "a function name of letters, digits, '.', '_' or '-'");
        p.gid = emulated_gid(*function);
    }
    p.gid_pointer = top.has("gid") ? "/gid" : "/emulated_function";
    if (emulated != nullptr && p.gid == emulated_gid(emulated->function))
        config_fail(
            {file.shown, p.gid_pointer},
            "expected another function than our own, found our own GID " + format_gid(p.gid));

    for (const auto& [key, parser] : schema.services) {
        const nlohmann::json* raw = top.raw(key);
        if (raw == nullptr)
            continue;
        ServiceSection section;
        section.raw = *raw;
        auto parsed = parser(*raw, top.place_of(key), global);
        if (!parsed)
            throw ConfigException{parsed.error()};
        section.parsed = std::move(*parsed);
        p.services.emplace(key, std::move(section));
    }
    top.finish();
    return p;
}

}  // namespace

uint64_t emulated_gid(const std::string& function)
{
    return ism::sim::gid_for_name(function);
}

std::string format_gid(uint64_t gid)
{
    char buf[19];
    std::snprintf(buf, sizeof buf, "0x%016" PRIx64, gid);
    return buf;
}

const char* to_string(PollMode mode) noexcept
{
    switch (mode) {
        case PollMode::interrupt:
            return "interrupt";
        case PollMode::adaptive:
            return "adaptive";
        case PollMode::polling:
            return "polling";
    }
    return "?";
}

ConfigResult<Config> load_config(const fs::path& file, const ConfigSchema& schema)
{
    try {
        Config config;
        config.file = file;
        const fs::path base = fs::absolute(file).parent_path();
        const FileText text = read_file(file, file.string());
        config.global = read_global(parse(text), {text.shown, ""}, base);

        const fs::path& dir = config.global.peers_dir;
        const std::string dir_shown = shown_path(dir, base);
        std::error_code ec;
        std::vector<fs::path> files;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            const fs::path& p = it->path();
            const std::string name = p.filename().string();
            if (p.extension() == ".json" && name.front() != '.')
                files.push_back(p);
        }
        if (ec)
            return tl::unexpected(
                ConfigError{dir_shown + ": cannot read the peers directory: " + ec.message()});
        std::sort(files.begin(), files.end());

        std::map<std::string, std::string> by_name;  // name -> file shown
        std::map<uint64_t, std::string> by_gid;
        for (const fs::path& p : files) {
            const FileText peer_text = read_file(p, shown_path(p, base));
            PeerConfig peer = read_peer(peer_text, p, config.global, schema);
            if (auto [it, fresh] = by_name.emplace(peer.name, peer_text.shown); !fresh)
                config_fail({peer_text.shown, "/name"}, "expected a name of its own, found \"" +
                                                            peer.name + "\", also the name in " +
                                                            it->second);
            if (auto [it, fresh] = by_gid.emplace(peer.gid, peer_text.shown); !fresh)
                config_fail({peer_text.shown, peer.gid_pointer},
                            "expected a GID of its own, found " + format_gid(peer.gid) +
                                ", also the GID in " + it->second);
            config.peers.push_back(std::move(peer));
        }
        std::sort(config.peers.begin(), config.peers.end(),
                  [](const PeerConfig& a, const PeerConfig& b) { return a.name < b.name; });
        return config;
    } catch (const ConfigException& e) {
        return tl::unexpected(e.error);
    }
}

}  // namespace ismd
