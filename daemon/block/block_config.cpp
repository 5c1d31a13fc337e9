// SPDX-License-Identifier: MIT
#include "block/block_config.hpp"

#include <filesystem>
#include <set>

#include "block/nbd_endpoint.hpp"
#include "core/config_section.hpp"

namespace ismd::block {

namespace {

constexpr std::size_t kMaxNameLength = 64;
constexpr std::size_t kMaxDescriptionLength = 1024;
constexpr uint64_t kMaxDeadlineMs = 24ULL * 3600 * 1000;

bool good_name(const std::string& name)
{
    if (name.empty() || name.size() > kMaxNameLength || name == "." || name == "..")
        return false;
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

ExportConfig read_export(const nlohmann::json& raw, const ConfigPlace& place)
{
    Section s(raw, place);
    ExportConfig e;
    e.name = s.required_string("name");
    if (!good_name(e.name))
        s.fail("name", "1 to 64 of A-Z a-z 0-9 . _ - (it names a socket file)");
    e.path = s.required_string("path");
    if (!std::filesystem::path(e.path).is_absolute())
        s.fail("path", "an absolute path");
    e.description = s.string("description").value_or("");
    if (e.description.size() > kMaxDescriptionLength)
        s.fail("description", "at most 1024 bytes");
    e.read_only = s.boolean("read_only").value_or(false);
    e.direct = s.boolean("direct").value_or(false);
    s.finish();
    return e;
}

ImportConfig read_import(Section& import)
{
    ImportConfig config;
    config.enabled = import.boolean("enabled").value_or(true);
    if (auto ms = import.integer("deadline_ms", 0, kMaxDeadlineMs))
        config.deadline = std::chrono::milliseconds(*ms);
    if (const nlohmann::json* raw = import.raw("tcp")) {
        Section tcp(*raw, import.place_of("tcp"));
        for (const auto& [name, value] : raw->items()) {
            tcp.allow(name);
            if (!good_name(name))
                tcp.fail(name, "an export name (A-Z a-z 0-9 . _ -) as the key");
            std::string address;
            if (value.is_number_unsigned())
                address = std::to_string(value.get<uint64_t>());
            else if (value.is_string())
                address = value.get<std::string>();
            else
                tcp.fail(name, "a port or \"address:port\"");
            auto parsed = parse_tcp_address(address);
            if (!parsed || parsed->second == 0)
                tcp.fail(name, "a port 1..65535 or \"address:port\" with an IP address");
            config.tcp[name] = address;
        }
        tcp.finish();
    }
    import.finish();
    return config;
}

}  // namespace

ServiceConfigParser block_config_parser()
{
    return [](const nlohmann::json& raw, const ConfigPlace& place,
              const GlobalConfig&) -> ConfigResult<std::shared_ptr<const void>> {
        try {
            Section block(raw, place);
            auto config = std::make_shared<BlockConfig>();
            if (const nlohmann::json* exports = block.raw("exports")) {
                if (!exports->is_array())
                    block.fail("exports", "an array of exports");
                std::set<std::string> names;
                for (std::size_t i = 0; i < exports->size(); ++i) {
                    const ConfigPlace at{place.file,
                                         place.pointer + "/exports/" + std::to_string(i)};
                    ExportConfig e = read_export((*exports)[i], at);
                    if (!names.insert(e.name).second)
                        config_fail({at.file, at.pointer + "/name"},
                                    "expected a name not used by another export, found \"" +
                                        e.name + "\" twice");
                    config->exports.push_back(std::move(e));
                }
            }
            if (auto import = block.object("import"))
                config->import = read_import(*import);
            block.finish();
            return std::shared_ptr<const void>(config);
        } catch (const ConfigException& e) {
            return tl::unexpected(e.error);
        }
    };
}

}  // namespace ismd::block
