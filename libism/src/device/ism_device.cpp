// SPDX-License-Identifier: MIT
// IsmDevice life cycle, DMBs and moves.
#include "ism/device/ism_device.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "device/regs.hpp"
#include "ism/byte_order.hpp"

namespace ism::device {
namespace {

constexpr std::size_t kPageSize = 4096;
// Used when the zPCI BASE capability reports no DMA window (never on s390).
constexpr uint64_t kDefaultIovaStart = uint64_t{1} << 32;
constexpr uint64_t kDefaultIovaEnd = (uint64_t{1} << 33) - 1;

std::size_t page_round(std::size_t len)
{
    return (len + kPageSize - 1) & ~(kPageSize - 1);
}

uint64_t align_up(uint64_t v, uint64_t align)
{
    return (v + align - 1) & ~(align - 1);
}

}  // namespace

IsmDevice::IsmDevice(std::unique_ptr<vfio::DeviceFile> file) noexcept : file_(std::move(file)) {}

IsmDevice::~IsmDevice()
{
    shutdown();
}

Result<std::unique_ptr<IsmDevice>> IsmDevice::open(std::unique_ptr<vfio::DeviceFile> file,
                                                   const DeviceOptions& options)
{
    if (!file)
        return fail(errc::bad_argument);
    std::unique_ptr<IsmDevice> dev(new IsmDevice(std::move(file)));
    if (auto r = dev->init(options); !r)
        return tl::unexpected(r.error());  // the destructor undoes what init did
    return dev;
}

Result<void> IsmDevice::check_identity()
{
    auto config = file_->region_info(vfio::kConfigRegionIndex);
    if (!config)
        return tl::unexpected(config.error());
    // PCI config space is little-endian on every architecture.
    std::byte id[4]{};
    if (auto r = file_->read(config->offset, id); !r)
        return tl::unexpected(r.error());
    const auto vendor = static_cast<uint16_t>(std::to_integer<unsigned>(id[0]) |
                                              (std::to_integer<unsigned>(id[1]) << 8));
    const auto device = static_cast<uint16_t>(std::to_integer<unsigned>(id[2]) |
                                              (std::to_integer<unsigned>(id[3]) << 8));
    if (vendor != kIsmVendorId || device != kIsmDeviceId)
        return fail(errc::not_ism_device);

    auto zpci = file_->zpci_info();
    if (!zpci)
        return tl::unexpected(zpci.error());
    if (zpci->pft != kIsmPft)
        return fail(errc::not_ism_device);
    zpci_ = *zpci;
    // The GROUP capability's maxstbl field is the kernel's own limit for non-ISM
    // functions (128); the store-block limit of the function is imaxstbl.
    if (zpci_.imaxstbl != 0)
        store_limit_ = std::min<uint32_t>(zpci_.imaxstbl, kPageSize);
    if (zpci_.end_dma <= zpci_.start_dma) {
        zpci_.start_dma = kDefaultIovaStart;
        zpci_.end_dma = kDefaultIovaEnd;
    }
    return {};
}

Result<void> IsmDevice::init(const DeviceOptions& options)
{
    using namespace regs;
    max_dmbs_ = std::min(options.max_dmbs, kLastSbaIndex - kFirstSbaIndex + 1);
    auto bar0 = file_->region_info(vfio::kBar0RegionIndex);
    if (!bar0)
        return tl::unexpected(bar0.error());
    auto bar2 = file_->region_info(vfio::kBar2RegionIndex);
    if (!bar2)
        return tl::unexpected(bar2.error());
    bar0_ = *bar0;
    bar2_ = *bar2;
    constexpr uint32_t kRw = vfio::kRegionFlagRead | vfio::kRegionFlagWrite;
    if ((bar0_.flags & vfio::kRegionFlagWrite) == 0 || (bar2_.flags & kRw) != kRw ||
        bar2_.size < kQueryInfoResponseSize)
        return fail(errc::not_ism_device);
    if (auto r = check_identity(); !r)
        return r;

    // The device only interrupts while SBA and event queue are registered; arm MSI first
    // so that nothing it raises afterwards is missed.
    if (auto r = file_->enable_msi(); !r)
        return r;
    msi_enabled_ = true;

    auto sba = map_page(sba_iova_);
    if (!sba)
        return tl::unexpected(sba.error());
    sba_ = std::move(*sba);
    std::byte payload[16]{};
    store_be64(payload, 0, sba_iova_);
    if (auto r = command_ok(kCmdRegSba, std::span(payload, 8)); !r)
        return r;
    sba_registered_ = true;

    auto ieq = map_page(ieq_iova_);
    if (!ieq)
        return tl::unexpected(ieq.error());
    ieq_ = std::move(*ieq);
    store_be64(payload, 0, ieq_iova_);
    store_be64(payload, 8, kIeqLength);
    if (auto r = command_ok(kCmdRegIeq, payload); !r)
        return r;
    ieq_registered_ = true;

    if (auto r = query_info(); !r)
        return tl::unexpected(r.error());
    auto gid = command(kCmdReadGid, {}, 8);
    if (!gid)
        return tl::unexpected(gid.error());
    if (gid->size() != 8)
        return fail(errc::bad_response);
    gid_ = load_be64(*gid, 0);

    // Registering the reserved VLAN id succeeds only on ISMv2-capable hardware; the
    // answer is informational, so a refusal is not an error.
    store_be64(payload, 0, kIsmV2ProbeVlan);
    ismv2_ = command_ok(kCmdAddVlanId, std::span(payload, 8)).has_value();
    return {};
}

void IsmDevice::shutdown() noexcept
{
    using namespace regs;
    // Unregister everything before any DMA mapping goes: the device may still store into
    // what is registered.
    std::byte payload[8]{};
    for (auto& [token, dmb] : dmbs_) {
        store_be64(payload, 0, token);
        (void)command_ok(kCmdUnregDmb, payload);
    }
    if (ismv2_) {
        store_be64(payload, 0, kIsmV2ProbeVlan);
        (void)command_ok(kCmdDelVlanId, payload);
        ismv2_ = false;
    }
    if (ieq_registered_)
        (void)command_ok(kCmdUnregIeq, {});
    if (sba_registered_)
        (void)command_ok(kCmdUnregSba, {});
    ieq_registered_ = sba_registered_ = false;
    if (msi_enabled_)
        (void)file_->disable_msi();
    msi_enabled_ = false;

    for (auto& [token, dmb] : dmbs_)
        (void)file_->unmap_dma(dmb.iova, dmb.memory->size());
    dmbs_.clear();
    sba_used_.reset();
    if (ieq_)
        (void)file_->unmap_dma(ieq_iova_, ieq_->size());
    if (sba_)
        (void)file_->unmap_dma(sba_iova_, sba_->size());
    ieq_.reset();
    sba_.reset();
    iova_used_.clear();
}

Result<uint64_t> IsmDevice::alloc_iova(std::size_t len)
{
    // Natural alignment to the power-of-two size keeps a DMB inside one 1 MiB IOVA
    // segment, as the Linux driver's DMA segment boundary does.
    const uint64_t size = std::bit_ceil(static_cast<uint64_t>(len));
    uint64_t candidate = align_up(zpci_.start_dma, size);
    for (const auto& [start, used] : iova_used_) {
        if (candidate + size <= start)
            break;
        candidate = std::max(candidate, align_up(start + used, size));
    }
    if (candidate + size - 1 > zpci_.end_dma || candidate + size < candidate)
        return fail(errc::dma_exhausted);
    iova_used_.emplace(candidate, static_cast<std::size_t>(size));
    return candidate;
}

Result<std::unique_ptr<vfio::DmaMemory>> IsmDevice::map_page(uint64_t& iova_out)
{
    auto mem = file_->alloc_dma(kPageSize);
    if (!mem)
        return tl::unexpected(mem.error());
    std::memset((*mem)->data(), 0, (*mem)->size());
    auto iova = alloc_iova(kPageSize);
    if (!iova)
        return tl::unexpected(iova.error());
    if (auto r = file_->map_dma(**mem, *iova); !r) {
        iova_used_.erase(*iova);
        return tl::unexpected(r.error());
    }
    iova_out = *iova;
    return std::move(*mem);
}

Result<Dmb> IsmDevice::register_dmb(std::size_t len, uint64_t rgid, uint32_t sba_idx)
{
    using namespace regs;
    if (len == 0 || len > kMaxDmbSize)
        return fail(errc::dmb_limit);
    if (dmbs_.size() >= max_dmbs_)
        return fail(errc::dmb_limit);
    if (sba_idx != 0 && (sba_idx < kFirstSbaIndex || sba_idx > kLastSbaIndex))
        return fail(errc::bad_argument);
    // As in Linux, the driver chooses the SBA index (the lowest free one), so that it
    // knows which bit the device will set for this DMB.
    if (sba_idx != 0 && sba_used_.test(sba_idx))
        return fail(errc::bad_argument);
    for (uint32_t idx = kFirstSbaIndex; sba_idx == 0 && idx <= kLastSbaIndex; ++idx) {
        if (!sba_used_.test(idx))
            sba_idx = idx;
    }

    auto mem = file_->alloc_dma(page_round(len));
    if (!mem)
        return tl::unexpected(mem.error());
    std::memset((*mem)->data(), 0, (*mem)->size());
    auto iova = alloc_iova((*mem)->size());
    if (!iova)
        return tl::unexpected(iova.error());
    if (auto r = file_->map_dma(**mem, *iova); !r) {
        iova_used_.erase(*iova);
        return tl::unexpected(r.error());
    }

    std::byte payload[32]{};
    store_be64(payload, 0, *iova);                       // dmb @8
    store_be32(payload, 8, static_cast<uint32_t>(len));  // dmb_len @16
    store_be32(payload, 12, sba_idx);                    // sba_idx @20
    store_be64(payload, 24, rgid);                       // rgid @32 (no VLAN)
    auto resp = command(kCmdRegDmb, payload, 8);
    if (!resp || resp->size() != 8) {
        (void)file_->unmap_dma(*iova, (*mem)->size());
        iova_used_.erase(*iova);
        return resp ? fail(errc::bad_response) : tl::unexpected(resp.error());
    }
    const uint64_t token = load_be64(*resp, 0);

    DmbRecord rec{std::move(*mem), *iova, len, sba_idx, rgid};
    Dmb view{token, sba_idx, rgid, *iova, rec.memory->bytes().first(len)};
    dmbs_.emplace(token, std::move(rec));
    sba_used_.set(sba_idx);
    return view;
}

Result<void> IsmDevice::unregister_dmb(uint64_t token)
{
    auto it = dmbs_.find(token);
    if (it == dmbs_.end())
        return fail(errc::bad_argument);
    std::byte payload[8]{};
    store_be64(payload, 0, token);
    auto r = command_ok(regs::kCmdUnregDmb, payload);
    // The memory goes only after the device stopped accepting stores into it (or no
    // longer answers, as Linux assumes for 0xFFFF).
    if (!r && r.error() != errc::hw_no_response)
        return r;
    (void)file_->unmap_dma(it->second.iova, it->second.memory->size());
    iova_used_.erase(it->second.iova);
    sba_used_.reset(it->second.sba_idx);
    dmbs_.erase(it);
    return {};
}

Result<void> IsmDevice::move(uint64_t token, uint32_t dmbe_idx, uint64_t offset,
                             std::span<const std::byte> data, bool signal)
{
    using namespace regs;
    if ((token & kTokenLowMask) != 0 || token >= kBar0Size || dmbe_idx > kMaxDmbeIndex ||
        data.empty() || offset > kDmbOffsetLimit || data.size() > kDmbOffsetLimit - offset)
        return fail(errc::bad_argument);

    const uint64_t base = bar0_.offset + (token | (uint64_t{dmbe_idx} << kDmbeIdxShift));
    std::size_t done = 0;
    while (done < data.size()) {
        const uint64_t off = offset + done;
        const std::size_t to_boundary = kPageSize - static_cast<std::size_t>(off % kPageSize);
        const std::size_t chunk =
            std::min({data.size() - done, to_boundary, static_cast<std::size_t>(store_limit_)});
        const bool last = done + chunk == data.size();
        const uint64_t sf = (signal && last) ? uint64_t{1} << kSignalFlagShift : 0;
        if (auto r = file_->write(base + sf + off, data.subspan(done, chunk)); !r)
            return r;
        done += chunk;
    }
    return {};
}

}  // namespace ism::device
