// SPDX-License-Identifier: MIT
// Helpers for the emulated-device tests: big-endian byte building, the command-area
// exchange, and functions on a fabric unique to the test. Written from docs/hardware.md
// alone: nothing here comes from the device layer (byte order is ism/byte_order.hpp).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ism/byte_order.hpp"
#include "ism/return_codes.hpp"
#include "ism/sim/fabric.hpp"
#include "ism/sim/sim_device_file.hpp"

namespace simtest {

using Bytes = std::vector<std::byte>;

using ism::load_be;
using ism::store_be;

/// Stores `v` as the `n`-byte big-endian field at `off` of a request, growing it to fit.
inline void put_be(Bytes& b, std::size_t off, std::size_t n, uint64_t v)
{
    if (b.size() < off + n)
        b.resize(off + n);
    store_be(std::span(b).subspan(off, n), v);
}

inline uint8_t byte_at(const std::byte* p, std::size_t off)
{
    return std::to_integer<uint8_t>(p[off]);
}

struct Response {
    uint32_t cmd = 0;
    uint16_t rc = 0xFFFF;
    uint16_t len = 0;
    Bytes payload;  // bytes 8..len
};

/// A fabric name unique to this test and process.
inline std::string unique_fabric()
{
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string full = std::string(info->test_suite_name()) + "." + info->name();
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : full)
        h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    // Bounded: the fabric name limit is 64 characters.
    return "t" + std::to_string(::getpid()) + "-" + std::to_string(h % 1000000007ULL) + "-" +
           std::string(info->name()).substr(0, 32);
}

inline constexpr uint64_t kIovaBase = ism::sim::kDmaWindowStart;

/// One emulated function driven by hand through the DeviceFile interface.
class Fn {
public:
    Fn(const std::string& fabric, const std::string& name, uint16_t store_limit = 4096,
       uint32_t max_dmbs = 64, bool gid_disabled_events = false)
    {
        ism::sim::FunctionOptions o;
        o.fabric = fabric;
        o.name = name;
        o.store_limit = store_limit;
        o.max_dmbs = max_dmbs;
        o.gid_disabled_events = gid_disabled_events;
        auto d = ism::sim::open_function(o);
        EXPECT_TRUE(d) << d.error().message();
        if (d)
            dev = std::move(*d);
        gid = ism::sim::gid_for_name(name);
    }

    uint64_t bar(uint32_t index) { return dev->region_info(index)->offset; }

    Response cmd(uint32_t code, const Bytes& payload = {}, uint16_t len_override = 0)
    {
        const uint64_t b2 = bar(2);
        if (!payload.empty()) {
            EXPECT_TRUE(dev->write(b2 + 8, payload));
        }
        Bytes hdr;
        put_be(hdr, 0, 4, code);
        put_be(hdr, 4, 2, 0);
        put_be(hdr, 6, 2, len_override != 0 ? len_override : 8 + payload.size());
        EXPECT_TRUE(dev->write(b2, hdr));
        Bytes rh(8);
        EXPECT_TRUE(dev->read(b2, rh));
        Response r;
        r.cmd = static_cast<uint32_t>(load_be({rh.data(), 4}));
        r.rc = static_cast<uint16_t>(load_be({rh.data() + 4, 2}));
        r.len = static_cast<uint16_t>(load_be({rh.data() + 6, 2}));
        if (r.len > 8) {
            r.payload.resize(r.len - 8u);
            EXPECT_TRUE(dev->read(b2 + 8, r.payload));
        }
        return r;
    }

    /// DMA memory mapped at the next free IOVA.
    std::pair<std::unique_ptr<ism::vfio::DmaMemory>, uint64_t> dma(std::size_t size)
    {
        auto m = dev->alloc_dma(size);
        EXPECT_TRUE(m);
        const uint64_t iova = next_iova_;
        next_iova_ += ((*m)->size() + 0xFFFFF) / 0x100000 * 0x100000;
        EXPECT_TRUE(dev->map_dma(**m, iova));
        return {std::move(*m), iova};
    }

    /// REG_SBA + REG_IEQ (SBA page, then IEQ at the next page) and MSI.
    void init()
    {
        auto [m, iova] = dma(8192);
        sba = m->data();
        ieq = m->data() + 4096;
        Bytes p;
        put_be(p, 0, 8, iova);
        EXPECT_EQ(cmd(0x01, p).rc, 0);
        Bytes q;
        put_be(q, 0, 8, iova + 4096);
        put_be(q, 8, 8, 512);
        EXPECT_EQ(cmd(0x02, q).rc, 0);
        EXPECT_TRUE(dev->enable_msi());
        mem.push_back(std::move(m));
    }

    /// REG_DMB of `len` bytes writable by `rgid`; returns {rc, token}.
    std::pair<uint16_t, uint64_t> reg_dmb(uint64_t rgid, uint32_t len, uint32_t sba_idx = 0)
    {
        auto [m, iova] = dma(len);
        dmb_mem.push_back(m->data());
        mem.push_back(std::move(m));
        return reg_dmb_at(iova, rgid, len, sba_idx);
    }

    std::pair<uint16_t, uint64_t> reg_dmb_at(uint64_t iova, uint64_t rgid, uint32_t len,
                                             uint32_t sba_idx)
    {
        Bytes p;
        put_be(p, 0, 8, iova);
        put_be(p, 8, 4, len);
        put_be(p, 12, 4, sba_idx);
        put_be(p, 16, 4, 0);
        put_be(p, 20, 4, 0);
        put_be(p, 24, 8, rgid);
        const Response r = cmd(0x0A, p);
        return {r.rc, r.payload.size() >= 8 ? load_be({r.payload.data(), 8}) : 0};
    }

    ism::Result<void> store(uint64_t token, uint32_t dmbe, bool sf, uint64_t off, const Bytes& data)
    {
        const uint64_t addr = token | (uint64_t{dmbe} << 24) | (uint64_t{sf} << 23) | off;
        return dev->write(bar(0) + addr, data);
    }

    uint16_t signal(uint64_t rgid, uint32_t code, uint64_t info)
    {
        Bytes p;
        put_be(p, 0, 8, rgid);
        put_be(p, 8, 4, 1);
        put_be(p, 12, 4, code);
        put_be(p, 16, 8, info);
        return cmd(0x0E, p).rc;
    }

    uint64_t irqs()
    {
        auto n = dev->consume_irq();
        EXPECT_TRUE(n);
        return n ? *n : 0;
    }

    std::unique_ptr<ism::vfio::DeviceFile> dev;
    uint64_t gid = 0;
    std::byte* sba = nullptr;
    std::byte* ieq = nullptr;
    std::vector<std::byte*> dmb_mem;
    std::vector<std::unique_ptr<ism::vfio::DmaMemory>> mem;

private:
    uint64_t next_iova_ = kIovaBase;
};

/// Fixture: two functions "a" and "b" on a fabric of their own, removed afterwards.
class SimPair : public ::testing::Test {
protected:
    void SetUp() override
    {
        fabric_ = unique_fabric();
        a_ = std::make_unique<Fn>(fabric_, "a");
        b_ = std::make_unique<Fn>(fabric_, "b");
    }

    void TearDown() override
    {
        a_.reset();
        b_.reset();
        extra_.clear();
        EXPECT_TRUE(ism::sim::remove_fabric(fabric_));
    }

    std::string fabric_;
    std::unique_ptr<Fn> a_;
    std::unique_ptr<Fn> b_;
    std::vector<std::unique_ptr<Fn>> extra_;
};

inline Bytes bytes(std::initializer_list<int> v)
{
    Bytes b;
    for (const int x : v)
        b.push_back(static_cast<std::byte>(x));
    return b;
}

}  // namespace simtest
