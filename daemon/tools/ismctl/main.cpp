// SPDX-License-Identifier: MIT
// ismctl: status and administration of ismd (man ismctl(8)).
//
//   ismctl status [--json]       ismctl peers [--json]       ismctl reload
//   ismctl check PEER [--count N] [--size BYTES] [--json]
//   ismctl bind PCI-ADDRESS      (hand an ISM function to ism_vfio_pci)
//
// Everything but bind goes through ismd's control socket ($ISMD_CONTROL_SOCKET or
// --socket, default /run/ismd/control.sock).
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/common/control_client.hpp"
#include "tools/ismctl/bind.hpp"
#include "tools/ismctl/format.hpp"

namespace {

using ismd::tools::ControlClient;

int fail(const std::string& message)
{
    std::fprintf(stderr, "ismctl: %s\n", message.c_str());
    return 1;
}

int run_cli(int argc, char** argv)
{
    CLI::App app{"ismctl: status and administration of ismd"};
    app.require_subcommand(1);
    std::string socket = ismd::tools::default_control_socket();
    app.add_option("-s,--socket", socket, "ismd's control socket")->capture_default_str();

    bool json = false;
    auto* status = app.add_subcommand("status", "Links, channels, traffic and sessions per peer");
    status->add_flag("--json", json, "Print the JSON ismd sent");
    auto* peers = app.add_subcommand("peers", "The configured peers and their links");
    peers->add_flag("--json", json, "Print the JSON ismd sent");
    app.add_subcommand("reload", "Reload the configuration (as SIGHUP)");
    auto* check = app.add_subcommand("check", "Round-trip latency and throughput to a peer");
    std::string peer;
    uint32_t count = 1000;
    uint32_t size = 64;
    check->add_option("peer", peer, "The peer's name")->required();
    check->add_option("-n,--count", count, "Round trips")
        ->check(CLI::Range(1U, 1000000U))
        ->capture_default_str();
    check->add_option("--size", size, "Bytes per round trip")
        ->check(CLI::Range(9U, 1U << 20))
        ->capture_default_str();
    check->add_flag("--json", json, "Print the JSON ismd sent");
    auto* bind = app.add_subcommand("bind", "Hand an ISM PCI function to ism_vfio_pci");
    std::string address;
    std::string sysfs = "/sys";
    bind->add_option("address", address, "PCI address, e.g. 0001:00:00.0")->required();
    bind->add_option("--sysfs", sysfs, "Where sysfs is mounted")->group("");
    CLI11_PARSE(app, argc, argv);

    if (bind->parsed()) {
        auto r = ismd::tools::bind_function(sysfs, address);
        if (!r)
            return fail(r.error());
        std::printf("%s\n", r->c_str());
        return 0;
    }

    auto client = ControlClient::connect(socket);
    if (!client)
        return fail(client.error());
    const std::string op = app.get_subcommands().front()->get_name();
    nlohmann::json args = nlohmann::json::object();
    if (check->parsed())
        args = {{"peer", peer}, {"count", count}, {"size", size}};
    auto result = client->call(op, args);
    if (!result)
        return fail(result.error());
    if (json) {
        std::printf("%s\n", result->dump(2).c_str());
        return 0;
    }
    std::string text;
    if (status->parsed())
        text = ismd::tools::format_status(*result);
    else if (peers->parsed())
        text = ismd::tools::format_peers(*result);
    else if (check->parsed())
        text = ismd::tools::format_check(peer, *result);
    else
        text = "reloaded: " + std::to_string(result->value("peers", 0)) + " peer(s)\n";
    std::fputs(text.c_str(), stdout);
    return 0;
}

}  // namespace

// The CLI edge, the one place that catches: an exception (out of memory, a CLI11 bug)
// ends the program with a message instead of std::terminate.
int main(int argc, char** argv)
{
    try {
        return run_cli(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ismctl: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "ismctl: %s\n", "unknown exception");
    }
    return 1;
}
