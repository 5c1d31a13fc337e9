// SPDX-License-Identifier: MIT
// ismd: the ISM console and block daemon (man ismd(8)).
//
//   ismd [--config /etc/ismd/ismd.json] [--check-config]
//
// The services it runs are listed here and nowhere else in core/.
#include <cstdio>
#include <exception>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <CLI/CLI.hpp>

#include "block/block_service.hpp"
#include "console/console_service.hpp"
#include "core/config.hpp"
#include "core/daemon.hpp"
#include "core/log.hpp"

namespace {

std::vector<std::unique_ptr<ismd::Service>> make_services()
{
    std::vector<std::unique_ptr<ismd::Service>> services;
    services.push_back(std::make_unique<ismd::console::ConsoleService>());
    services.push_back(std::make_unique<ismd::block::BlockService>());
    return services;
}

int run_cli(int argc, char** argv)
{
    std::string config_file = "/etc/ismd/ismd.json";
    bool check_only = false;
    CLI::App app{"ismd: remote console and block device between LPARs over ISM"};
    app.add_option("-c,--config", config_file, "The global configuration file")
        ->capture_default_str();
    app.add_flag("-t,--check-config", check_only,
                 "Check the configuration, print what is wrong, and exit (0: good)");
    app.set_version_flag("--version", "ismd 0.1.0");
    CLI11_PARSE(app, argc, argv);

    auto services = make_services();
    auto config = ismd::load_config(config_file, ismd::make_schema(services));
    if (!config) {
        if (check_only)
            std::fprintf(stderr, "%s\n", config.error().text.c_str());
        else
            ismd::log(ismd::LogLevel::err, "%s", config.error().text.c_str());
        return 1;
    }
    if (check_only) {
        std::printf("%s: good, %zu peer(s)\n", config_file.c_str(), config->peers.size());
        return 0;
    }

    boost::asio::io_context io(1);
    ismd::Daemon daemon(io, config_file, std::move(*config), std::move(services));
    if (auto r = daemon.start(); !r) {
        ismd::log(ismd::LogLevel::err, "cannot start: %s", r.error().c_str());
        return 1;
    }
    io.run();
    ismd::log(ismd::LogLevel::notice, "stopped");
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
        ismd::log(ismd::LogLevel::err, "%s", e.what());
    } catch (...) {
        ismd::log(ismd::LogLevel::err, "%s", "unknown exception");
    }
    return 1;
}
