// SPDX-License-Identifier: MIT
#include "console/console_service.hpp"

#include <filesystem>
#include <set>

#include "console/peer_console.hpp"
#include "core/config_section.hpp"
#include "core/log.hpp"

namespace ismd::console {

namespace asio = boost::asio;

namespace {

// Programs that ask who you are before they give a shell.
const std::set<std::string> kLoginPrograms = {"login",  "agetty",  "getty", "mingetty",
                                              "mgetty", "sulogin", "ttyrun"};

const std::vector<std::string> kDefaultProgram = {"/sbin/agetty", "--noclear", "-8", "-", "vt220"};

// A peer file without a "console" section: attach, do not serve.
const ConsoleConfig kNoSection{std::nullopt, true};

ServeConfig read_serve(Section& console)
{
    ServeConfig serve;
    serve.program = kDefaultProgram;
    const nlohmann::json* raw = console.raw("serve");
    if (raw->is_boolean())
        return serve;
    Section s(*raw, console.place_of("serve"));
    if (auto program = s.strings("program")) {
        if (!std::filesystem::path(program->front()).is_absolute())
            s.fail("program", "an absolute path as the first element");
        serve.program = *program;
    }
    serve.unauthenticated = s.boolean("unauthenticated").value_or(false);
    const std::string base = std::filesystem::path(serve.program.front()).filename().string();
    if (!serve.unauthenticated && !kLoginPrograms.contains(base))
        config_fail(s.place_of("program"),
                    "expected a login program (login, agetty, getty, ...), found \"" +
                        serve.program.front() +
                        "\"; a program that asks for no password needs \"unauthenticated\": true");
    if (auto r = s.choice("respawn", {"always", "never"}))
        serve.respawn = *r == "always" ? Respawn::always : Respawn::never;
    if (auto n = s.integer("scrollback_bytes", 4096, std::size_t{64} << 20))
        serve.scrollback = static_cast<std::size_t>(*n);
    if (auto t = s.string("transcript")) {
        if (!std::filesystem::path(*t).is_absolute())
            s.fail("transcript", "an absolute path");
        serve.transcript = *t;
    }
    if (auto t = s.string("term"))
        serve.term = *t;
    if (auto l = s.choice("launcher", {"auto", "direct", "systemd"}))
        serve.launcher = *l == "auto"     ? Launcher::automatic
                         : *l == "direct" ? Launcher::direct
                                          : Launcher::systemd;
    s.finish();
    return serve;
}

}  // namespace

ServiceConfigParser ConsoleService::config_parser() const
{
    return [](const nlohmann::json& raw, const ConfigPlace& place,
              const GlobalConfig&) -> ConfigResult<std::shared_ptr<const void>> {
        try {
            Section console(raw, place);
            auto config = std::make_shared<ConsoleConfig>();
            if (const nlohmann::json* serve = console.raw("serve")) {
                if (serve->is_boolean()) {
                    if (serve->get<bool>())
                        config->serve = read_serve(console);
                } else if (serve->is_object()) {
                    config->serve = read_serve(console);
                } else {
                    console.fail("serve", "true, false or an object");
                }
            }
            config->attach = console.boolean("attach").value_or(true);
            console.finish();
            return std::shared_ptr<const void>(config);
        } catch (const ConfigException& e) {
            return tl::unexpected(e.error);
        }
    };
}

void ConsoleService::register_ops(ControlServer& control)
{
    for (const std::string op : {"console.break", "console.hangup"}) {
        control.on(op, [this, op](const ControlRequest& r) -> asio::awaitable<nlohmann::json> {
            const std::string name = r.args.value("peer", std::string());
            const auto it = peers_.find(name);
            if (it == peers_.end())
                throw ControlError{"no peer named \"" + name + "\" (ismctl peers lists them)"};
            if (auto error = it->second->signal_remote(op == "console.break"); !error.empty())
                throw ControlError{error};
            log(LogLevel::notice, "%s: %s asked by uid %u", name.c_str(), op.c_str(),
                static_cast<unsigned>(r.who.uid));
            co_return nlohmann::json::object();
        });
    }
    control.on_stream(
        "console.attach",
        [this](std::shared_ptr<ControlSocket> socket, ControlRequest request,
               std::string leftover) -> asio::awaitable<void> {
            const std::string name = request.args.value("peer", std::string());
            const auto it = peers_.find(name);
            if (it == peers_.end() || stopping_) {
                nlohmann::json reply;
                reply["v"] = control::kVersion;
                reply["ok"] = false;
                reply["error"] = name.empty()
                                     ? std::string("console.attach: \"peer\" missing")
                                     : "no peer named \"" + name + "\" (ismctl peers lists them)";
                co_await send_line(*socket, reply);
                co_return;
            }
            co_await it->second->attach(std::move(socket), std::move(request), std::move(leftover));
        });
}

std::unique_ptr<PeerService> ConsoleService::add_peer(const PeerHandle& peer)
{
    status_changed_ = peer.status_changed;
    const ConsoleConfig& config =
        peer.section != nullptr ? *static_cast<const ConsoleConfig*>(peer.section->parsed.get())
                                : kNoSection;
    auto pc = std::make_unique<PeerConsole>(*this, peer, config);
    peers_[peer.name] = pc.get();
    return pc;
}

void ConsoleService::forget(const std::string& peer)
{
    peers_.erase(peer);
    changed();
}

void ConsoleService::changed()
{
    if (status_changed_ && !stopping_)
        status_changed_();
}

std::string ConsoleService::summary() const
{
    std::size_t attached = 0;
    std::size_t served = 0;
    for (const auto& [name, p] : peers_) {
        attached += p->attached();
        served += p->served();
    }
    std::string s = "console: " + std::to_string(attached) + " attached";
    if (served > 0)
        s += ", " + std::to_string(served) + " served";
    return s;
}

void ConsoleService::stop()
{
    stopping_ = true;
}

}  // namespace ismd::console
