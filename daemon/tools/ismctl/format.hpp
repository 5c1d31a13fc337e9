// SPDX-License-Identifier: MIT
// What ismctl prints for a person, from the JSON ismd answers.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ismd::tools {

std::string format_status(const nlohmann::json& status);
std::string format_peers(const nlohmann::json& peers);
std::string format_check(const std::string& peer, const nlohmann::json& check);
/// 1536 -> "1.5 KiB"
std::string format_bytes(double bytes);

}  // namespace ismd::tools
