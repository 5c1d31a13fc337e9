// SPDX-License-Identifier: MIT
#include "core/config_section.hpp"

#include <algorithm>

namespace ismd {

void config_fail(const ConfigPlace& place, const std::string& message)
{
    std::string text = place.file;
    text += ": ";
    text += place.pointer.empty() ? std::string("/") : place.pointer;
    text += ": ";
    text += message;
    throw ConfigException{ConfigError{std::move(text)}};
}

std::string describe_value(const nlohmann::json& value)
{
    switch (value.type()) {
        case nlohmann::json::value_t::object:
            return "an object";
        case nlohmann::json::value_t::array:
            return "an array";
        case nlohmann::json::value_t::null:
            return "null";
        default:
            break;
    }
    std::string text = value.dump();
    constexpr std::size_t kMax = 60;
    if (text.size() > kMax)
        text = text.substr(0, kMax) + "...";
    return text;
}

Section::Section(const nlohmann::json& value, ConfigPlace place)
    : value_(&value), place_(std::move(place))
{
    if (!value.is_object())
        config_fail(place_, "expected an object, found " + describe_value(value));
}

ConfigPlace Section::place_of(const std::string& key) const
{
    return {place_.file, (nlohmann::json::json_pointer(place_.pointer) / key).to_string()};
}

bool Section::has(const std::string& key) const
{
    return value_->contains(key);
}

void Section::allow(const std::string& key)
{
    known_.insert(key);
}

void Section::fail(const std::string& key, const std::string& expected) const
{
    const auto it = value_->find(key);
    std::string found = it == value_->end() ? "nothing" : describe_value(*it);
    config_fail(place_of(key), "expected " + expected + ", found " + found);
}

const nlohmann::json* Section::raw(const std::string& key)
{
    known_.insert(key);
    const auto it = value_->find(key);
    return it == value_->end() ? nullptr : &*it;
}

std::optional<std::string> Section::string(const std::string& key)
{
    const nlohmann::json* v = raw(key);
    if (v == nullptr)
        return std::nullopt;
    if (!v->is_string() || v->get_ref<const std::string&>().empty())
        fail(key, "a non-empty string");
    return v->get<std::string>();
}

std::string Section::required_string(const std::string& key)
{
    if (!has(key))
        fail(key, "a non-empty string");
    return *string(key);
}

std::optional<bool> Section::boolean(const std::string& key)
{
    const nlohmann::json* v = raw(key);
    if (v == nullptr)
        return std::nullopt;
    if (!v->is_boolean())
        fail(key, "true or false");
    return v->get<bool>();
}

std::optional<uint64_t> Section::integer(const std::string& key, uint64_t min, uint64_t max)
{
    const nlohmann::json* v = raw(key);
    if (v == nullptr)
        return std::nullopt;
    const std::string range =
        "an integer from " + std::to_string(min) + " to " + std::to_string(max);
    if (!v->is_number_integer())
        fail(key, range);
    if (v->is_number_unsigned()) {
        const auto n = v->get<uint64_t>();
        if (n < min || n > max)
            fail(key, range);
        return n;
    }
    const auto n = v->get<int64_t>();
    if (n < 0 || static_cast<uint64_t>(n) < min || static_cast<uint64_t>(n) > max)
        fail(key, range);
    return static_cast<uint64_t>(n);
}

std::optional<std::vector<std::string>> Section::strings(const std::string& key)
{
    const nlohmann::json* v = raw(key);
    if (v == nullptr)
        return std::nullopt;
    const bool ok = v->is_array() && !v->empty() &&
                    std::all_of(v->begin(), v->end(), [](const nlohmann::json& e) {
                        return e.is_string() && !e.get_ref<const std::string&>().empty();
                    });
    if (!ok)
        fail(key, "a non-empty array of non-empty strings");
    return v->get<std::vector<std::string>>();
}

std::optional<std::string> Section::choice(const std::string& key,
                                           const std::vector<std::string>& choices)
{
    const nlohmann::json* v = raw(key);
    if (v == nullptr)
        return std::nullopt;
    if (v->is_string() && std::find(choices.begin(), choices.end(),
                                    v->get_ref<const std::string&>()) != choices.end())
        return v->get<std::string>();
    std::string expected = "one of ";
    for (std::size_t i = 0; i < choices.size(); ++i) {
        expected += i == 0 ? "" : (i + 1 == choices.size() ? " or " : ", ");
        expected += '"' + choices[i] + '"';
    }
    fail(key, expected);
}

std::optional<Section> Section::object(const std::string& key)
{
    const nlohmann::json* v = raw(key);
    if (v == nullptr)
        return std::nullopt;
    if (!v->is_object())
        fail(key, "an object");
    return Section(*v, place_of(key));
}

void Section::finish() const
{
    for (const auto& [key, value] : value_->items()) {
        if (known_.contains(key))
            continue;
        std::string known;
        for (const auto& k : known_)
            known += (known.empty() ? "" : ", ") + k;
        config_fail(place_of(key),
                    "unknown key" +
                        (known.empty() ? std::string() : " (this object takes: " + known + ")"));
    }
}

}  // namespace ismd
