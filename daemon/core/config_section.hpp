// SPDX-License-Identifier: MIT
// Section: strict reading of one JSON object of the configuration.
//
// Every getter checks the type and range of one key and remembers that the key was
// read; finish() then rejects every key nobody read, so a typo is an error. Errors are
// thrown as ConfigException while a file is read and turned into a ConfigError at
// load_config()'s boundary; their text always has the form
// "<file>: <json pointer>: expected <what>, found <value>".
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"

namespace ismd {

struct ConfigException {
    ConfigError error;
};

/// Throws the error "<file>: <pointer>: <message>".
[[noreturn]] void config_fail(const ConfigPlace& place, const std::string& message);

/// "12", "\"abc\"", "an object", ... : how a found value is shown in an error.
std::string describe_value(const nlohmann::json& value);

class Section {
public:
    /// Fails unless `value` is an object.
    Section(const nlohmann::json& value, ConfigPlace place);

    [[nodiscard]] const ConfigPlace& place() const noexcept { return place_; }
    [[nodiscard]] ConfigPlace place_of(const std::string& key) const;
    [[nodiscard]] bool has(const std::string& key) const;

    /// The raw value of `key` (marked read), or nullptr when absent.
    const nlohmann::json* raw(const std::string& key);

    std::optional<std::string> string(const std::string& key);
    std::string required_string(const std::string& key);
    std::optional<bool> boolean(const std::string& key);
    /// An integer in [min, max].
    std::optional<uint64_t> integer(const std::string& key, uint64_t min, uint64_t max);
    /// A non-empty array of non-empty strings.
    std::optional<std::vector<std::string>> strings(const std::string& key);
    /// One of `choices`.
    std::optional<std::string> choice(const std::string& key,
                                      const std::vector<std::string>& choices);
    std::optional<Section> object(const std::string& key);

    /// Accepts `key` without reading it (another part reads it).
    void allow(const std::string& key);
    /// Rejects the first key that no getter read.
    void finish() const;

    [[noreturn]] void fail(const std::string& key, const std::string& expected) const;

private:
    const nlohmann::json* value_;
    ConfigPlace place_;
    std::set<std::string> known_;  // keys a getter asked for: the others are typos
};

}  // namespace ismd
