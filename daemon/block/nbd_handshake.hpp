// SPDX-License-Identifier: MIT
// Handshake: the server's side of NBD's fixed newstyle negotiation, without I/O.
//
// The endpoint writes greeting(), then feeds every byte the client sends to feed(),
// writing out what feed() appends, until feed() says the client chose an export
// (transmission), gave up (abort) or must be disconnected (error: the reason says why).
// Every length is checked before it is used; an option that is too long is skipped and
// refused; a client that haggles forever is cut off.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "block/nbd_proto.hpp"

namespace ismd::block::nbd {

struct ExportInfo {
    std::string name;
    std::string description;
    uint64_t size = 0;
    uint16_t flags = kHasFlags;  // transmission flags
    uint32_t min_block = 1;
    uint32_t preferred_block = 4096;
    uint32_t max_block = kMaxPayload;
};

/// The exports a handshake may offer.
class Catalog {
public:
    virtual ~Catalog() = default;
    [[nodiscard]] virtual std::vector<ExportInfo> list() const = 0;
    /// The export called `name` ("" is the default export), if any.
    [[nodiscard]] virtual std::optional<ExportInfo> find(const std::string& name) const = 0;
};

class Handshake {
public:
    enum class State : uint8_t { more, transmission, abort, error };

    explicit Handshake(const Catalog& catalog) : catalog_(catalog) {}

    static std::vector<std::byte> greeting() { return nbd::greeting(); }
    State feed(std::span<const std::byte> in, std::vector<std::byte>& out);

    [[nodiscard]] const ExportInfo& chosen() const noexcept { return chosen_; }
    [[nodiscard]] bool structured_replies() const noexcept { return structured_; }
    [[nodiscard]] bool base_allocation() const noexcept { return base_allocation_; }
    [[nodiscard]] const std::string& error() const noexcept { return error_; }
    /// Bytes the client sent after the handshake ended (the first requests).
    [[nodiscard]] std::span<const std::byte> rest() const noexcept
    {
        return std::span(buffer_).subspan(used_);
    }

private:
    State option(uint32_t opt, std::span<const std::byte> data, std::vector<std::byte>& out);
    State info_or_go(uint32_t opt, std::span<const std::byte> data, std::vector<std::byte>& out);
    void meta_context(uint32_t opt, std::span<const std::byte> data, std::vector<std::byte>& out);
    State fail(std::string why)
    {
        error_ = std::move(why);
        return State::error;
    }

    const Catalog& catalog_;
    std::vector<std::byte> buffer_;
    std::size_t used_ = 0;
    bool have_client_flags_ = false;
    bool no_zeroes_ = false;
    bool structured_ = false;
    bool base_allocation_ = false;
    unsigned options_ = 0;
    uint64_t skip_ = 0;  // bytes of an over-long option still to discard
    ExportInfo chosen_;
    std::string error_;
};

}  // namespace ismd::block::nbd
