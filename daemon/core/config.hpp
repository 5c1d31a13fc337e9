// SPDX-License-Identifier: MIT
// ismd's configuration: one global JSON file and one JSON file per peer (man ismd.json(5)).
//
// load_config() reads and checks everything before ismd touches the device: every error
// names the file, the key as a JSON pointer, what was expected and what was found
// ("peers.d/lpar2.json: /gid: expected a 64-bit hex string, found 12"). Unknown keys
// are errors, so a typo is never silently ignored. Paths in messages are relative to
// the global file's directory when they lie inside it.
//
// A service (console, block) owns the section of the peer file named after it; the core
// hands the raw JSON to the service's parser (ServiceConfigParser) so that adding a
// service does not touch the core's schema.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

namespace ismd {

/// A configuration error, already formatted for a person: "file: /pointer: message".
struct ConfigError {
    std::string text;
};

template <class T>
using ConfigResult = tl::expected<T, ConfigError>;

/// Device: a real ISM function (PCI address or function id) or an emulated one.
struct VfioDevice {
    std::string pci;              // "0001:00:00.0", or empty
    std::optional<uint32_t> fid;  // zPCI function id
};
struct EmulatedDevice {
    std::string fabric;    // emulated fabric name
    std::string function;  // our function's name on it (its GID derives from it)
};
using DeviceConfig = std::variant<VfioDevice, EmulatedDevice>;

enum class PollMode : uint8_t { interrupt, adaptive, polling };

struct LinkConfig {
    std::size_t dmb_size = std::size_t{1} << 20;
    uint32_t channels = 8;
    std::chrono::milliseconds keepalive{1000};
    std::chrono::milliseconds dead_after{3000};
    PollMode poll = PollMode::adaptive;
    std::chrono::microseconds poll_window{50};
};

struct ControlConfig {
    std::string socket = "/run/ismd/control.sock";
    std::string group;  // empty: root only
};

enum class LogLevel : uint8_t { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

struct GlobalConfig {
    DeviceConfig device = EmulatedDevice{"default", ""};
    LinkConfig link;
    ControlConfig control;
    std::filesystem::path peers_dir;  // absolute
    LogLevel log_level = LogLevel::info;
};

/// What a service's parser returns for its section: an opaque, comparable value.
struct ServiceSection {
    nlohmann::json raw;  // the section as written (kept for reload diffs)
    std::shared_ptr<const void> parsed;
};

struct PeerConfig {
    std::string name;
    uint64_t gid = 0;
    std::string gid_pointer;     // "/gid" or "/emulated_function": where the GID was given
    std::filesystem::path file;  // where it came from
    std::string file_text;       // exact contents: an unchanged file keeps its peer on reload
    std::map<std::string, ServiceSection> services;  // by section name ("console", ...)
};

struct Config {
    std::filesystem::path file;
    GlobalConfig global;
    std::vector<PeerConfig> peers;  // sorted by name
};

/// Where a value sits, for error messages: the file (as shown) and the JSON pointer.
struct ConfigPlace {
    std::string file;
    std::string pointer;
};

/// Reads and checks one service's section of a peer file. `place` names the section.
using ServiceConfigParser = std::function<ConfigResult<std::shared_ptr<const void>>(
    const nlohmann::json& section, const ConfigPlace& place, const GlobalConfig& global)>;

struct ConfigSchema {
    std::map<std::string, ServiceConfigParser> services;
};

/// Loads the global file and every `*.json` in its peers directory.
ConfigResult<Config> load_config(const std::filesystem::path& file, const ConfigSchema& schema);

/// The GID an emulated function of this name has (the fabric derives it from the name).
uint64_t emulated_gid(const std::string& function);

/// "0x" and 16 hex digits.
std::string format_gid(uint64_t gid);

const char* to_string(PollMode mode) noexcept;

}  // namespace ismd
