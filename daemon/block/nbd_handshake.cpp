// SPDX-License-Identifier: MIT
#include "block/nbd_handshake.hpp"

#include <algorithm>

namespace ismd::block::nbd {

namespace {

const std::string kBaseAllocation = "base:allocation";

std::string text(std::span<const std::byte> b)
{
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::vector<std::byte> message(const std::string& s)
{
    std::vector<std::byte> v;
    for (char c : s)
        v.push_back(static_cast<std::byte>(c));
    return v;
}

}  // namespace

Handshake::State Handshake::feed(std::span<const std::byte> in, std::vector<std::byte>& out)
{
    // Discard the rest of an option that was too long to keep.
    while (skip_ > 0 && !in.empty()) {
        const auto n = static_cast<std::size_t>(std::min<uint64_t>(skip_, in.size()));
        skip_ -= n;
        in = in.subspan(n);
    }
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(used_));
    used_ = 0;
    buffer_.insert(buffer_.end(), in.begin(), in.end());

    for (;;) {
        const std::span<const std::byte> avail = std::span(buffer_).subspan(used_);
        if (!have_client_flags_) {
            if (avail.size() < 4)
                return State::more;
            const uint32_t flags = get_u32(avail);
            used_ += 4;
            if ((flags & kFlagFixedNewstyle) == 0)
                return fail("the client does not speak the fixed newstyle handshake");
            if ((flags & ~uint32_t{kFlagFixedNewstyle | kFlagNoZeroes}) != 0)
                return fail("the client sent unknown handshake flags");
            no_zeroes_ = (flags & kFlagNoZeroes) != 0;
            have_client_flags_ = true;
            continue;
        }
        if (avail.size() < kOptionHeaderSize)
            return State::more;
        const auto header = decode_option(avail.first<kOptionHeaderSize>());
        if (!header)
            return fail("bad option magic");
        if (++options_ > kMaxOptions)
            return fail("more than 1024 options without choosing an export");
        if (header->length > kMaxOptionData) {
            used_ += kOptionHeaderSize;
            const uint64_t have = std::min<uint64_t>(header->length, buffer_.size() - used_);
            used_ += static_cast<std::size_t>(have);
            skip_ = header->length - have;
            append_option_reply(out, header->option, Rep::err_too_big,
                                message("option data longer than 64 KiB"));
            if (header->option == static_cast<uint32_t>(Opt::export_name))
                return fail("NBD_OPT_EXPORT_NAME with a name longer than 64 KiB");
            if (skip_ > 0)
                return State::more;
            continue;
        }
        if (avail.size() < kOptionHeaderSize + header->length)
            return State::more;
        const auto data = avail.subspan(kOptionHeaderSize, header->length);
        used_ += kOptionHeaderSize + header->length;
        const State s = option(header->option, data, out);
        if (s != State::more)
            return s;
    }
}

Handshake::State Handshake::option(uint32_t opt, std::span<const std::byte> data,
                                   std::vector<std::byte>& out)
{
    switch (static_cast<Opt>(opt)) {
        case Opt::export_name: {
            auto e = catalog_.find(text(data));
            if (!e)
                return fail("NBD_OPT_EXPORT_NAME: no export named \"" + text(data) + "\"");
            chosen_ = *e;
            // Old clients get no structured replies here: the option came after it.
            append_export_name_reply(out, e->size, e->flags, no_zeroes_);
            return State::transmission;
        }
        case Opt::abort:
            append_option_reply(out, opt, Rep::ack);
            return State::abort;
        case Opt::list:
            if (!data.empty()) {
                append_option_reply(out, opt, Rep::err_invalid,
                                    message("NBD_OPT_LIST takes no data"));
                return State::more;
            }
            for (const auto& e : catalog_.list())
                append_server_reply(out, e.name, e.description);
            append_option_reply(out, opt, Rep::ack);
            return State::more;
        case Opt::info:
        case Opt::go:
            return info_or_go(opt, data, out);
        case Opt::structured_reply:
            if (!data.empty()) {
                append_option_reply(out, opt, Rep::err_invalid,
                                    message("NBD_OPT_STRUCTURED_REPLY takes no data"));
                return State::more;
            }
            structured_ = true;
            append_option_reply(out, opt, Rep::ack);
            return State::more;
        case Opt::list_meta_context:
        case Opt::set_meta_context:
            meta_context(opt, data, out);
            return State::more;
        default:
            append_option_reply(out, opt, Rep::err_unsup, message("option not supported"));
            return State::more;
    }
}

Handshake::State Handshake::info_or_go(uint32_t opt, std::span<const std::byte> data,
                                       std::vector<std::byte>& out)
{
    if (data.size() < 6) {
        append_option_reply(out, opt, Rep::err_invalid, message("truncated NBD_OPT_INFO/GO"));
        return State::more;
    }
    const uint32_t name_len = get_u32(data);
    if (name_len > data.size() - 6) {
        append_option_reply(out, opt, Rep::err_invalid,
                            message("export name runs past the option"));
        return State::more;
    }
    const std::string name = text(data.subspan(4, name_len));
    const auto rest = data.subspan(4 + name_len);
    const uint16_t n = get_u16(rest);
    if (rest.size() != 2 + 2 * std::size_t{n}) {
        append_option_reply(out, opt, Rep::err_invalid,
                            message("information request count does not match"));
        return State::more;
    }
    auto e = catalog_.find(name);
    if (!e) {
        append_option_reply(out, opt, Rep::err_unknown,
                            message("no export named \"" + name + "\""));
        return State::more;
    }
    bool want_name = false;
    bool want_description = false;
    for (uint16_t i = 0; i < n; ++i) {
        const auto type = static_cast<Info>(get_u16(rest.subspan(2 + 2 * std::size_t{i})));
        want_name |= type == Info::name;
        want_description |= type == Info::description;
    }
    append_info_export(out, opt, e->size, e->flags);
    // Block sizes are advertised, never required.
    append_info_block_size(out, opt, e->min_block, e->preferred_block, e->max_block);
    if (want_name)
        append_info_text(out, opt, Info::name, e->name);
    if (want_description && !e->description.empty())
        append_info_text(out, opt, Info::description, e->description);
    append_option_reply(out, opt, Rep::ack);
    if (static_cast<Opt>(opt) == Opt::go) {
        chosen_ = *e;
        return State::transmission;
    }
    return State::more;
}

void Handshake::meta_context(uint32_t opt, std::span<const std::byte> data,
                             std::vector<std::byte>& out)
{
    const bool set = static_cast<Opt>(opt) == Opt::set_meta_context;
    if (set && !structured_) {
        append_option_reply(out, opt, Rep::err_invalid,
                            message("NBD_OPT_SET_META_CONTEXT needs structured replies"));
        return;
    }
    auto invalid = [&] {
        append_option_reply(out, opt, Rep::err_invalid, message("malformed meta context request"));
    };
    if (data.size() < 8)
        return invalid();
    const uint32_t name_len = get_u32(data);
    if (name_len > data.size() - 8)
        return invalid();
    const std::string name = text(data.subspan(4, name_len));
    auto q = data.subspan(4 + name_len);
    const uint32_t count = get_u32(q);
    q = q.subspan(4);
    std::vector<std::string> queries;
    for (uint32_t i = 0; i < count; ++i) {
        if (q.size() < 4 || get_u32(q) > q.size() - 4)
            return invalid();
        const uint32_t len = get_u32(q);
        queries.push_back(text(q.subspan(4, len)));
        q = q.subspan(4 + len);
    }
    if (!q.empty())
        return invalid();
    if (!catalog_.find(name)) {
        append_option_reply(out, opt, Rep::err_unknown,
                            message("no export named \"" + name + "\""));
        return;
    }
    bool base = false;
    if (queries.empty()) {
        base = !set;  // LIST with no query lists everything; SET with none selects nothing
    } else {
        for (const auto& query : queries)
            base |= query == kBaseAllocation || (!set && query == "base:");
    }
    if (set)
        base_allocation_ = base;
    if (base) {
        std::vector<std::byte> p;
        put_u32(p, kBaseAllocationId);
        for (char c : kBaseAllocation)
            p.push_back(static_cast<std::byte>(c));
        append_option_reply(out, opt, Rep::meta_context, p);
    }
    append_option_reply(out, opt, Rep::ack);
}

}  // namespace ismd::block::nbd
