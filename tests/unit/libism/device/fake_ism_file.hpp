// SPDX-License-Identifier: MIT
// A scripted DeviceFile for the device layer's unit tests.
//
// It records every store and DMA operation and answers commands from a table the test
// can change. Its offsets are its own, written from docs/hardware.md, so that a layout
// mistake in the device layer shows up as a mismatch here. Byte order is
// ism/byte_order.hpp, pinned to literal bytes by byte_order_test.cpp.
#pragma once

#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ism/byte_order.hpp"
#include "ism/vfio/device_file.hpp"

namespace ism::testing {

inline std::vector<std::byte> bytes(std::initializer_list<int> l)
{
    std::vector<std::byte> v;
    for (int b : l)
        v.push_back(static_cast<std::byte>(b));
    return v;
}

class FakeDma final : public vfio::DmaMemory {
public:
    FakeDma(const FakeDma&) = delete;
    FakeDma& operator=(const FakeDma&) = delete;
    explicit FakeDma(std::size_t size)
        : DmaMemory(static_cast<std::byte*>(std::aligned_alloc(4096, size)), size)
    {
        std::memset(data(), 0xA5, size);  // not zeroed: the driver must zero what it needs
    }
    ~FakeDma() override { std::free(data()); }
};

struct Store {
    uint64_t offset;
    std::vector<std::byte> data;
};

struct Command {
    uint32_t cmd;
    uint16_t len;
    std::vector<std::byte> payload;  // request bytes after the header
};

class FakeIsmFile final : public vfio::DeviceFile {
public:
    static constexpr uint64_t kBar2 = uint64_t{2} << 48;
    static constexpr uint64_t kConfig = uint64_t{7} << 48;

    // What the test can change.
    uint16_t vendor = 0x1014;
    uint16_t device = 0x04ED;
    vfio::ZpciInfo zpci{.start_dma = 0x100000000ULL,
                        .end_dma = 0x1FFFFFFFFULL,
                        .pchid = 0xFF00,
                        .pft = 5,
                        .has_group = true,
                        .maxstbl = 128,
                        .imaxstbl = 4096,
                        .noi = 1};
    uint64_t gid = 0x1122334455667788ULL;
    uint64_t next_token = 0x0001'0000'0000ULL;
    std::map<uint32_t, uint16_t> return_codes;  // cmd -> ret to answer
    int fail_store_at = -1;                     // index of a BAR0 store that fails with EIO
    // Called with each response (header included) before the driver reads it: a test may
    // change any byte, or the length, to play a device that answers differently.
    std::function<void(uint32_t cmd, std::vector<std::byte>& response)> rewrite;

    // What the test can inspect.
    std::vector<Store> bar0_stores;
    std::vector<Command> commands;
    // "cmd 0x0a", "map IOVA", "unmap IOVA", "msi on/off"; shared so that a test can read it
    // after the device (which owns this fake) is gone.
    std::shared_ptr<std::vector<std::string>> log = std::make_shared<std::vector<std::string>>();
    std::map<uint64_t, const vfio::DmaMemory*> mappings;
    uint64_t irq_count = 0;

    std::byte* dma_at(uint64_t iova)
    {
        for (auto& [start, mem] : mappings) {
            if (iova >= start && iova < start + mem->size())
                return mem->data() + (iova - start);
        }
        return nullptr;
    }

    [[nodiscard]] std::string describe() const override { return "fake ism"; }
    Result<vfio::DeviceInfo> device_info() override { return vfio::DeviceInfo{0x83, 9, 5}; }
    Result<vfio::RegionInfo> region_info(uint32_t index) override
    {
        constexpr uint32_t kRw = vfio::kRegionFlagRead | vfio::kRegionFlagWrite;
        switch (index) {
            case 0:
                return vfio::RegionInfo{0, kRw, uint64_t{1} << 48, 0};
            case 2:
                return vfio::RegionInfo{2, kRw, 4096, kBar2};
            case 7:
                return vfio::RegionInfo{7, kRw, 4096, kConfig};
            default:
                return vfio::RegionInfo{index, 0, 0, uint64_t{index} << 48};
        }
    }
    Result<vfio::IrqInfo> irq_info(uint32_t index) override
    {
        return vfio::IrqInfo{index, 1, index == 1 ? 1U : 0U};
    }
    Result<vfio::ZpciInfo> zpci_info() override { return zpci; }

    Result<void> read(uint64_t offset, std::span<std::byte> out) override
    {
        if (offset == kConfig && out.size() == 4) {
            out[0] = static_cast<std::byte>(vendor & 0xFF);
            out[1] = static_cast<std::byte>(vendor >> 8);
            out[2] = static_cast<std::byte>(device & 0xFF);
            out[3] = static_cast<std::byte>(device >> 8);
            return {};
        }
        if (offset >= kBar2 && offset + out.size() <= kBar2 + response_.size()) {
            std::memcpy(out.data(), response_.data() + (offset - kBar2), out.size());
            return {};
        }
        return tl::unexpected(std::error_code(EINVAL, std::system_category()));
    }

    Result<void> write(uint64_t offset, std::span<const std::byte> in) override
    {
        if (offset == kBar2 + 8) {
            payload_.assign(in.begin(), in.end());
            return {};
        }
        if (offset == kBar2 && in.size() == 8) {
            execute(static_cast<uint32_t>(load_be({in.data(), 4})),
                    static_cast<uint16_t>(load_be({in.data() + 6, 2})));
            return {};
        }
        if (offset < (uint64_t{1} << 48)) {
            if (static_cast<int>(bar0_stores.size()) == fail_store_at)
                return tl::unexpected(std::error_code(EIO, std::system_category()));
            bar0_stores.push_back({offset, {in.begin(), in.end()}});
            return {};
        }
        return tl::unexpected(std::error_code(EINVAL, std::system_category()));
    }

    Result<std::unique_ptr<vfio::DmaMemory>> alloc_dma(std::size_t size) override
    {
        return std::make_unique<FakeDma>((size + 4095) & ~std::size_t{4095});
    }
    Result<void> map_dma(const vfio::DmaMemory& mem, uint64_t iova) override
    {
        mappings[iova] = &mem;
        log->push_back("map " + std::to_string(iova));
        return {};
    }
    Result<void> unmap_dma(uint64_t iova, std::size_t /*size*/) override
    {
        mappings.erase(iova);
        log->push_back("unmap " + std::to_string(iova));
        return {};
    }
    Result<void> enable_msi() override
    {
        log->emplace_back("msi on");
        return {};
    }
    Result<void> disable_msi() override
    {
        log->emplace_back("msi off");
        return {};
    }
    [[nodiscard]] int irq_fd() const override { return -1; }
    Result<uint64_t> consume_irq() override { return std::exchange(irq_count, 0); }
    Result<void> reset() override { return {}; }

private:
    void execute(uint32_t cmd, uint16_t len)
    {
        std::vector<std::byte> payload;
        if (len > 8)
            payload.assign(payload_.begin(), payload_.begin() + (len - 8));
        commands.push_back({cmd, len, payload});
        char name[16];
        std::snprintf(name, sizeof(name), "cmd 0x%02x", cmd);
        log->emplace_back(name);
        response_.assign(8, std::byte{0});
        store_be({response_.data(), 4}, cmd);
        auto rc = return_codes.find(cmd);
        if (rc != return_codes.end() && rc->second != 0) {
            store_be({response_.data() + 4, 2}, rc->second);
            store_be({response_.data() + 6, 2}, 8);
            return;
        }
        if (cmd == 0x03) {  // READ_GID
            response_.resize(16);
            store_be({response_.data() + 8, 8}, gid);
        } else if (cmd == 0x08) {  // QUERY_INFO
            response_.resize(200);
            store_be({response_.data() + 24, 8}, gid);
        } else if (cmd == 0x0A) {  // REG_DMB
            response_.resize(16);
            store_be({response_.data() + 8, 8}, next_token);
            next_token += uint64_t{1} << 32;
        }
        store_be({response_.data() + 6, 2}, response_.size());
        if (rewrite)
            rewrite(cmd, response_);
    }

    std::vector<std::byte> payload_;
    std::vector<std::byte> response_;
};

}  // namespace ism::testing
