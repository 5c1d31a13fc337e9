// SPDX-License-Identifier: MIT
// ControlClient: a blocking client of ismd's control socket (docs/control.md), for
// ismctl and ism-console.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "ism/unique_fd.hpp"

namespace ismd::tools {

/// The socket path: $ISMD_CONTROL_SOCKET, else the default.
std::string default_control_socket();

class ControlClient {
public:
    /// Connects; the error is a line for the person ("cannot reach ismd at ...: ...").
    static tl::expected<ControlClient, std::string> connect(const std::string& path);

    /// Sends {"v": 1, "op": op, ...args} and returns the reply's "result", or its
    /// "error" (also ismd's refusal of our credentials).
    tl::expected<nlohmann::json, std::string> call(const std::string& op,
                                                   nlohmann::json args = nlohmann::json::object());

    /// Sends a request line without waiting (for ops that turn into a stream).
    bool send(const nlohmann::json& request);
    /// Reads one reply line; bytes after it stay in leftover().
    tl::expected<nlohmann::json, std::string> read_reply();
    [[nodiscard]] std::string& leftover() noexcept { return buffer_; }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    explicit ControlClient(ism::UniqueFd fd, std::string path)
        : fd_(std::move(fd)), path_(std::move(path))
    {
    }

    ism::UniqueFd fd_;
    std::string path_;
    std::string buffer_;
};

}  // namespace ismd::tools
