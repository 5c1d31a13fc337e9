// SPDX-License-Identifier: MIT
#include "tools/ismctl/format.hpp"

#include <cstdarg>
#include <cstdio>

namespace ismd::tools {

namespace {

__attribute__((format(printf, 1, 2))) std::string printf_string(const char* fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

std::string str(const nlohmann::json& j, const char* key)
{
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string("-");
}

uint64_t num(const nlohmann::json& j, const char* key)
{
    const auto it = j.find(key);
    return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// The block service's exports and imports, one line each, when there are any.
std::string format_block(const nlohmann::json& peers)
{
    std::string out;
    for (const auto& p : peers) {
        const auto block = p.find("block");
        if (block == p.end() || !block->is_object())
            continue;
        for (const char* side : {"exports", "imports"}) {
            const auto list = block->find(side);
            if (list == block->end() || !list->is_array())
                continue;
            for (const auto& e : *list) {
                if (out.empty())
                    out = printf_string("\n%-16s %-6s %-16s %10s %-3s %7s %9s %12s %12s %7s  %s\n",
                                        "PEER", "SIDE", "EXPORT", "SIZE", "RW", "CLIENTS",
                                        "IN FLIGHT", "READ", "WRITTEN", "ERRORS", "WHERE");
                const bool exporting = std::string(side) == "exports";
                const std::string where = e.contains("error")
                                              ? "error: " + str(e, "error")
                                              : str(e, exporting ? "path" : "socket");
                out += printf_string(
                    "%-16s %-6s %-16s %10s %-3s %7s %9llu %12s %12s %7llu  %s\n",
                    str(p, "name").c_str(), exporting ? "export" : "import", str(e, "name").c_str(),
                    format_bytes(static_cast<double>(num(e, "size"))).c_str(),
                    e.value("read_only", false) ? "ro" : "rw",
                    exporting ? "-" : std::to_string(num(e, "connections")).c_str(),
                    static_cast<unsigned long long>(num(e, "in_flight")),
                    format_bytes(static_cast<double>(num(e, "bytes_read"))).c_str(),
                    format_bytes(static_cast<double>(num(e, "bytes_written"))).c_str(),
                    static_cast<unsigned long long>(num(e, "errors")), where.c_str());
            }
        }
    }
    return out;
}

}  // namespace

std::string format_bytes(double bytes)
{
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        ++u;
    }
    return u == 0 ? printf_string("%.0f B", bytes) : printf_string("%.1f %s", bytes, units[u]);
}

std::string format_status(const nlohmann::json& s)
{
    std::string out = "ismd " + str(s, "gid") + ": " + str(s, "summary") + "\n";
    const auto& peers = s.at("peers");
    if (peers.empty())
        return out + "no peers configured\n";
    out += printf_string("\n%-16s %-18s %-5s %6s %5s %12s %12s %7s  %s\n", "PEER", "GID", "LINK",
                         "EPOCH", "UPS", "SENT", "RECEIVED", "ERRORS", "LAST HANDSHAKE");
    for (const auto& p : peers) {
        const std::string last = str(p, "last_handshake");
        const uint64_t failures = num(p, "sends_failed") + num(p, "resets");
        out += printf_string("%-16s %-18s %-5s %6llu %5llu %12s %12s %7llu  %s\n",
                             str(p, "name").c_str(), str(p, "gid").c_str(), str(p, "link").c_str(),
                             static_cast<unsigned long long>(num(p, "epoch")),
                             static_cast<unsigned long long>(num(p, "handshakes")),
                             format_bytes(static_cast<double>(num(p, "bytes_sent"))).c_str(),
                             format_bytes(static_cast<double>(num(p, "bytes_received"))).c_str(),
                             static_cast<unsigned long long>(failures),
                             last.empty() ? "never" : last.c_str());
    }
    for (const auto& p : peers) {
        const std::string err = str(p, "last_error");
        if (!err.empty() && err != "-")
            out += printf_string("%s: last loss %s: %s\n", str(p, "name").c_str(),
                                 str(p, "last_loss").c_str(), err.c_str());
        for (const auto& [key, value] : p.items()) {
            if (!value.is_object() || !value.contains("summary"))
                continue;
            out += str(p, "name") + ": " + key + ": " + str(value, "summary") + "\n";
        }
    }
    out += format_block(peers);
    return out;
}

std::string format_peers(const nlohmann::json& peers)
{
    std::string out = printf_string("%-16s %-18s %-5s %s\n", "PEER", "GID", "LINK", "FILE");
    for (const auto& p : peers)
        out += printf_string("%-16s %-18s %-5s %s\n", str(p, "name").c_str(), str(p, "gid").c_str(),
                             str(p, "link").c_str(), str(p, "file").c_str());
    return out;
}

std::string format_check(const std::string& peer, const nlohmann::json& c)
{
    const auto& r = c.at("rtt_us");
    std::string out = printf_string(
        "%s: %llu round trips of %llu B: min %.1f us, p50 %.1f us, p90 %.1f us, p99 %.1f us, max "
        "%.1f us\n",
        peer.c_str(), static_cast<unsigned long long>(num(c, "round_trips")),
        static_cast<unsigned long long>(num(c, "size")), r.value("min", 0.0), r.value("p50", 0.0),
        r.value("p90", 0.0), r.value("p99", 0.0), r.value("max", 0.0));
    out += printf_string("%s: throughput %.0f MB/s (%s in %s messages)\n", peer.c_str(),
                         c.value("throughput_MBps", 0.0),
                         format_bytes(c.value("bulk_bytes", 0.0)).c_str(),
                         format_bytes(c.value("bulk_message", 0.0)).c_str());
    return out;
}

}  // namespace ismd::tools
