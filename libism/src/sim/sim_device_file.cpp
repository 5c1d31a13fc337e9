// SPDX-License-Identifier: MIT
// The emulated ISM function behind the DeviceFile interface: regions, config space, the
// command area, BAR0 stores, DMA memory and mappings, and the interrupt socket.
//
// The interrupt fd is a SOCK_DGRAM UNIX socket bound in the abstract namespace to a name
// derived from the fabric file's nonce, the slot and its generation. Any process on the
// fabric raises the interrupt with one sendto() of a 1-byte datagram (no helper process,
// no relay thread); a full queue (EAGAIN) means interrupts are already pending, which is
// MSI's coalescing. The fd is readable while an interrupt is pending, like an eventfd.
#include "ism/sim/sim_device_file.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ism/sim/fabric.hpp"
#include "sim/byte_order.hpp"
#include "sim/commands.hpp"
#include "sim/dma_arena.hpp"
#include "sim/fabric_map.hpp"

namespace ism::sim {
namespace {

using namespace detail;

constexpr uint32_t kNumIrqs = 5;  // INTx, MSI, MSI-X, ERR, REQ
constexpr uint32_t kIrqFlagEventfd = 1;
constexpr uint16_t kPciCommandWritable = 0x0406;  // memory space, bus master, INTx disable
constexpr uint64_t kPciCommandOffset = 4;
constexpr uint64_t kMsiCapOffset = 0x40;

uint64_t region_offset(uint32_t index)
{
    return uint64_t{index} << kRegionShift;
}

// PCI config space is little-endian, unlike the ISM structures.
void put_le(std::span<std::byte> b, std::size_t off, std::size_t n, uint64_t v)
{
    for (std::size_t i = 0; i < n; ++i)
        b[off + i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
}

class SimDeviceFile final : public vfio::DeviceFile {
public:
    SimDeviceFile(const SimDeviceFile&) = delete;
    SimDeviceFile& operator=(const SimDeviceFile&) = delete;
    SimDeviceFile(std::shared_ptr<FabricMap> map, uint32_t slot, uint64_t gid, FunctionOptions opts,
                  UniqueFd irq_sock)
        : map_(std::move(map)),
          slot_(slot),
          gid_(gid),
          opts_(std::move(opts)),
          irq_sock_(std::move(irq_sock)),
          arena_(std::make_shared<DmaArena>(map_, slot))
    {
        init_config();
    }

    ~SimDeviceFile() override
    {
        arena_->detach();
        release_slot(*map_, slot_, irq_);
    }

    [[nodiscard]] std::string describe() const override
    {
        char gid[24];
        std::snprintf(gid, sizeof(gid), "%016llx", static_cast<unsigned long long>(gid_));
        return "sim " + opts_.fabric + "/" + opts_.name + " gid " + gid;
    }

    Result<vfio::DeviceInfo> device_info() override
    {
        return vfio::DeviceInfo{
            vfio::kDeviceFlagReset | vfio::kDeviceFlagPci | vfio::kDeviceFlagCaps,
            vfio::kNumPciRegions, kNumIrqs};
    }

    Result<vfio::RegionInfo> region_info(uint32_t index) override
    {
        if (index >= vfio::kNumPciRegions)
            return fail(errc::bad_region);
        const uint32_t rw = vfio::kRegionFlagRead | vfio::kRegionFlagWrite;
        vfio::RegionInfo r{index, 0, 0, region_offset(index)};
        if (index == vfio::kBar0RegionIndex)
            r = {index, rw, kBar0Size, r.offset};
        else if (index == vfio::kBar2RegionIndex)
            r = {index, rw, kBar2Size, r.offset};
        else if (index == vfio::kConfigRegionIndex)
            r = {index, rw, kConfigSize, r.offset};
        return r;
    }

    Result<vfio::IrqInfo> irq_info(uint32_t index) override
    {
        if (index >= kNumIrqs)
            return fail_errno(EINVAL);
        if (index == vfio::kMsiIrqIndex)
            return vfio::IrqInfo{index, kIrqFlagEventfd, 1};
        return vfio::IrqInfo{index, 0, 0};
    }

    Result<vfio::ZpciInfo> zpci_info() override
    {
        vfio::ZpciInfo z;
        z.start_dma = kDmaWindowStart;
        z.end_dma = kDmaWindowEnd;
        z.pchid = map_->header().pchid;
        z.vfn = static_cast<uint16_t>(slot_ + 1);
        z.pft = kPftIsm;
        z.pci_group = 0;
        z.fh = 0x0800'0000U | slot_;
        z.has_group = true;
        z.maxstbl = kKernelMaxStbl;
        z.imaxstbl = opts_.store_limit;
        z.noi = 1;
        return z;
    }

    Result<void> read(uint64_t offset, std::span<std::byte> out) override
    {
        const uint32_t index = static_cast<uint32_t>(offset >> kRegionShift);
        const uint64_t off = offset & (kBar0Size - 1);
        if (index == vfio::kBar0RegionIndex)
            return fail_errno(EIO);  // the move space accepts stores only
        const std::span<const std::byte> src = index == vfio::kBar2RegionIndex ? bar2_
                                               : index == vfio::kConfigRegionIndex
                                                   ? std::span<const std::byte>(config_)
                                                   : std::span<const std::byte>();
        if (out.empty() || off >= src.size() || out.size() > src.size() - off)
            return fail_errno(EINVAL);
        std::memcpy(out.data(), src.data() + off, out.size());
        return {};
    }

    Result<void> write(uint64_t offset, std::span<const std::byte> in) override
    {
        const uint32_t index = static_cast<uint32_t>(offset >> kRegionShift);
        const uint64_t off = offset & (kBar0Size - 1);
        Caller caller{*map_, slot_, gid_, irq_};
        switch (index) {
            case vfio::kBar0RegionIndex:
                if (auto r = check_store_shape(off, in.size(), kBar0Size, opts_.store_limit); !r)
                    return r;
                return bar0_store(caller, off, in);
            case vfio::kBar2RegionIndex:
                if (auto r = check_store_shape(off, in.size(), kBar2Size, opts_.store_limit); !r)
                    return r;
                std::memcpy(bar2_.data() + off, in.data(), in.size());
                // Storing the request header executes the command, synchronously.
                if (off == 0 && in.size() >= 8)
                    execute_command(caller, bar2_);
                return {};
            case vfio::kConfigRegionIndex:
                return write_config(off, in);
            default:
                return fail_errno(EINVAL);
        }
    }

    Result<std::unique_ptr<vfio::DmaMemory>> alloc_dma(std::size_t size) override
    {
        return arena_->allocate(size);
    }

    Result<void> map_dma(const vfio::DmaMemory& mem, uint64_t iova) override
    {
        const auto off = arena_->offset_of(mem);
        if (!off)
            return fail(errc::bad_argument);  // only this function's own DMA memory
        const uint64_t size = mem.size();
        if (iova % kPageSize != 0 || iova < kDmaWindowStart || iova > kDmaWindowEnd ||
            size - 1 > kDmaWindowEnd - iova)
            return fail_errno(EINVAL);
        SlotLock lock(map_->slot(slot_));
        Slot& s = map_->slot(slot_);
        for (uint32_t m = 0; m < s.mapping_count; ++m) {
            const Mapping& mp = s.mappings[m];
            if (iova < mp.iova + mp.size && mp.iova < iova + size)
                return fail_errno(EEXIST);  // as VFIO: overlapping an existing mapping
        }
        if (s.mapping_count == kMaxMappings)
            return fail(errc::dma_exhausted);
        s.mappings[s.mapping_count++] = Mapping{iova, *off, size};
        return {};
    }

    Result<void> unmap_dma(uint64_t iova, std::size_t size) override
    {
        SlotLock lock(map_->slot(slot_));
        Slot& s = map_->slot(slot_);
        // VFIO type1v2: a mapping partly inside the range cannot be split.
        for (uint32_t m = 0; m < s.mapping_count; ++m) {
            const Mapping& mp = s.mappings[m];
            const bool overlaps = iova < mp.iova + mp.size && mp.iova < iova + size;
            const bool inside = mp.iova >= iova && mp.iova + mp.size <= iova + size;
            if (overlaps && !inside)
                return fail_errno(EINVAL);
        }
        for (uint32_t m = 0; m < s.mapping_count;) {
            const Mapping& mp = s.mappings[m];
            if (mp.iova >= iova && mp.iova + mp.size <= iova + size)
                s.mappings[m] = s.mappings[--s.mapping_count];
            else
                ++m;
        }
        return {};
    }

    Result<void> enable_msi() override
    {
        SlotLock lock(map_->slot(slot_));
        map_->slot(slot_).msi_enabled = 1;
        msi_enabled_ = true;
        return {};
    }

    Result<void> disable_msi() override
    {
        {
            SlotLock lock(map_->slot(slot_));
            map_->slot(slot_).msi_enabled = 0;
        }
        msi_enabled_ = false;
        (void)drain();
        return {};
    }

    [[nodiscard]] int irq_fd() const override { return msi_enabled_ ? irq_sock_.get() : -1; }

    Result<uint64_t> consume_irq() override { return drain(); }

    Result<void> reset() override
    {
        {
            auto lock = FabricLock::acquire(map_->fd());
            if (!lock)
                return tl::unexpected(lock.error());
            SlotLock slot_lock(map_->slot(slot_));
            unregister_all_locked(*map_, slot_);
        }
        bar2_.fill(std::byte{0});
        init_config();
        return {};
    }

private:
    Result<uint64_t> drain()
    {
        uint64_t n = 0;
        std::array<char, 64> buf{};
        for (;;) {
            const ssize_t r = ::recv(irq_sock_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
            if (r >= 0) {
                ++n;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return n;
            return fail_errno();
        }
    }

    void init_config()
    {
        config_.fill(std::byte{0});
        put_le(config_, 0x00, 2, kPciVendorIbm);
        put_le(config_, 0x02, 2, kPciDeviceIsm);
        put_le(config_, 0x06, 2, 0x0010);               // status: capability list present
        put_le(config_, 0x09, 3, 0x028000);             // class: network controller, other
        put_le(config_, 0x2C, 2, kPciVendorIbm);        // subsystem vendor
        put_le(config_, 0x34, 1, kMsiCapOffset);        // capabilities pointer
        put_le(config_, kMsiCapOffset, 1, 0x05);        // MSI capability, last in the list
        put_le(config_, kMsiCapOffset + 2, 2, 0x0080);  // 64-bit addresses, 1 vector
    }

    Result<void> write_config(uint64_t off, std::span<const std::byte> in)
    {
        if (in.empty() || off >= kConfigSize || in.size() > kConfigSize - off)
            return fail_errno(EINVAL);
        // Only the command register's enable bits are writable; other writes are dropped,
        // as vfio-pci's virtualised config space drops writes to read-only fields.
        for (std::size_t i = 0; i < in.size(); ++i) {
            const uint64_t at = off + i;
            if (at < kPciCommandOffset || at > kPciCommandOffset + 1)
                continue;
            const auto mask = static_cast<uint8_t>(kPciCommandWritable >> (8 * (at - 4)));
            const auto old = std::to_integer<uint8_t>(config_[at]);
            const auto val = std::to_integer<uint8_t>(in[i]);
            config_[at] = static_cast<std::byte>((old & ~mask) | (val & mask));
        }
        return {};
    }

    std::shared_ptr<FabricMap> map_;
    uint32_t slot_;
    uint64_t gid_;
    FunctionOptions opts_;
    UniqueFd irq_sock_;
    IrqSender irq_;
    bool msi_enabled_ = false;
    std::shared_ptr<DmaArena> arena_;
    std::array<std::byte, kBar2Size> bar2_{};
    std::array<std::byte, kConfigSize> config_{};
};

Result<UniqueFd> bind_irq_socket(const FabricMap& map, uint32_t slot)
{
    UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sock)
        return fail_errno();
    const uint32_t gen = map.slot(slot).generation.load(std::memory_order_seq_cst);
    const std::string name = irq_socket_name(map.header().nonce, slot, gen);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), len) < 0)
        return fail_errno();
    return sock;
}

Result<void> check_options(const FunctionOptions& o)
{
    if (!valid_name(o.name, kMaxFunctionNameLength) || !valid_name(o.fabric, kMaxFabricNameLength))
        return fail(errc::sim_bad_name);
    if (o.max_dmbs == 0 || o.max_dmbs > kMaxDmbEntries || o.max_dmb_size == 0 ||
        o.max_dmb_size > kMaxDmbSizeLimit || o.store_limit < 8 || o.store_limit > 4096)
        return fail(errc::bad_argument);
    return {};
}

}  // namespace

Result<std::unique_ptr<vfio::DeviceFile>> open_function(const FunctionOptions& opts)
{
    if (auto r = check_options(opts); !r)
        return tl::unexpected(r.error());
    const uint64_t gid = opts.gid != 0 ? opts.gid : gid_for_name(opts.name);
    // Each function maps the fabric itself: its DMA memory can then be made private at
    // close without touching other functions of this process.
    for (int attempt = 0;; ++attempt) {
        auto map = FabricMap::open(opts.fabric, true, true);
        if (!map)
            return tl::unexpected(map.error());
        IrqSender irq;
        auto slot = claim_slot(**map,
                               {opts.name, gid, opts.max_dmbs, opts.max_dmb_size, opts.store_limit,
                                opts.gid_disabled_events},
                               irq);
        if (!slot && slot.error() == std::error_code(ESTALE, std::system_category()) && attempt < 3)
            continue;  // the fabric was removed between open and claim
        if (!slot)
            return tl::unexpected(slot.error());
        auto sock = bind_irq_socket(**map, *slot);
        if (!sock) {
            release_slot(**map, *slot, irq);
            return tl::unexpected(sock.error());
        }
        return std::make_unique<SimDeviceFile>(std::move(*map), *slot, gid, opts, std::move(*sock));
    }
}

}  // namespace ism::sim
