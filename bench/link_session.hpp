// SPDX-License-Identifier: MIT
// One side of ism-bench-link: an emulated ISM function, its device, an Endpoint on an
// io_context of its own and one link to the other process.
#pragma once

#include <csignal>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "ism/device/ism_device.hpp"
#include "ism/link/endpoint.hpp"
#include "ism/link/link.hpp"

namespace ism::bench {

using link::Clock;

// Every step of the conversation must finish within this, or the run fails.
inline constexpr auto kStepTimeout = std::chrono::seconds(30);
inline constexpr auto kUpTimeout = std::chrono::seconds(15);
// The DMB the peer registers for the device-ceiling yardstick.
inline constexpr std::size_t kYardstickDmbSize = std::size_t{1} << 20;

/// Set by SIGINT/SIGTERM: the run stops at the next step and still cleans up its fabric.
extern volatile std::sig_atomic_t g_interrupted;

class Session {
public:
    Session(std::string fabric, std::string name, std::string peer,
            link::EndpointOptions endpoint_options, uint32_t link_channels);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    /// Opens the function, the device, the Endpoint and the link (not yet up).
    bool open();

    bool fail(const char* what, std::error_code ec);
    void fail(std::string what);
    /// The first error, and what the link reported about it.
    [[nodiscard]] std::string error() const;
    [[nodiscard]] bool failed() const noexcept { return !error_.empty(); }

    /// Runs the event loop until `done()` holds; false on an error or after `timeout`.
    template <class Pred>
    bool run_until(Pred done, Clock::duration timeout)
    {
        const auto deadline = Clock::now() + timeout;
        while (!done()) {
            if (g_interrupted != 0)
                fail("interrupted");
            if (!error_.empty())
                return false;
            const auto now = Clock::now();
            if (now > deadline) {
                fail("timed out");
                return false;
            }
            io_.run_one_for(deadline - now);
        }
        return error_.empty();
    }
    /// Runs the event loop for `d` whatever happens (idle measurements).
    bool run_for(Clock::duration d);
    bool wait_up();

    /// Keeps `obj` alive as long as the link, which may hold handlers that point into it.
    template <class T>
    T& keep(std::shared_ptr<T> obj)
    {
        T& ref = *obj;
        kept_.push_back(std::move(obj));
        return ref;
    }

    /// Peer side: registers a DMB that the benchmark side may store into (the device
    /// ceiling yardstick); its token, or 0.
    uint64_t register_yardstick_dmb();
    /// Benchmark side: bytes per second IsmDevice::move stores into the peer's yardstick
    /// DMB, `size`-byte messages in `piece`-byte moves without the signal flag, as the
    /// link stores its data.
    double move_rate(uint64_t token, std::size_t size, std::size_t piece, double seconds);

    [[nodiscard]] link::Link& link() noexcept { return *link_; }
    [[nodiscard]] link::Endpoint& endpoint() noexcept { return *endpoint_; }
    [[nodiscard]] uint32_t data_channels() const noexcept { return link_channels_ - 1; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

private:
    std::string fabric_;
    std::string name_;
    std::string peer_;
    link::EndpointOptions endpoint_options_;
    uint32_t link_channels_;
    boost::asio::io_context io_;
    std::vector<std::shared_ptr<void>> kept_;
    std::unique_ptr<device::IsmDevice> device_;
    std::unique_ptr<link::Endpoint> endpoint_;
    link::Link* link_ = nullptr;
    std::string error_;
    std::string link_events_;
};

/// Removes the fabric however the run ends (after every function on it is closed).
class FabricGuard {
public:
    explicit FabricGuard(std::string name) : name_(std::move(name)) {}
    FabricGuard(const FabricGuard&) = delete;
    FabricGuard& operator=(const FabricGuard&) = delete;
    ~FabricGuard();
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

private:
    std::string name_;
};

}  // namespace ism::bench
