// SPDX-License-Identifier: MIT
// The command area (BAR 2): one synchronous request/response exchange at a time.
//
// Order matters and follows the Linux driver: the payload is stored first at offset 8,
// then the 8-byte header at offset 0, whose store executes the command. The response
// header is then loaded from offset 0 and, on success, the response payload from offset 8.
#include <algorithm>

#include "device/regs.hpp"
#include "ism/byte_order.hpp"
#include "ism/device/ism_device.hpp"
#include "ism/return_codes.hpp"

namespace ism::device {
namespace {

errc map_return_code(uint16_t rc)
{
    switch (rc) {
        case kRcUnknownCommand:
            return errc::hw_unknown_command;
        case kRcBadLength:
            return errc::hw_bad_length;
        case kRcBadAddress:
            return errc::hw_bad_address;
        case kRcDmbLimit:
            return errc::hw_dmb_limit;
        case kRcDmbSize:
            return errc::hw_dmb_size;
        case kRcSbaIndex:
            return errc::hw_sba_index;
        case kRcUnknownToken:
            return errc::hw_unknown_token;
        case kRcUnknownGid:
            return errc::hw_unknown_gid;
        case kRcNotRegistered:
            return errc::hw_not_registered;
        case kRcAlreadyRegistered:
            return errc::hw_already_registered;
        case kRcNoResponse:
            return errc::hw_no_response;
        default:
            return errc::hw_rejected;
    }
}

}  // namespace

Result<std::vector<std::byte>> IsmDevice::command(uint32_t cmd, std::span<const std::byte> payload,
                                                  std::size_t max_response)
{
    using namespace regs;
    const std::size_t request_len = kCmdHeaderSize + payload.size();
    if (request_len > bar2_.size || request_len > 0xFFFF || payload.size() > store_limit_)
        return fail(errc::bad_argument);

    std::lock_guard lock(command_mutex_);
    if (!payload.empty()) {
        if (auto r = file_->write(bar2_.offset + kCmdPayloadOffset, payload); !r)
            return tl::unexpected(r.error());
    }
    std::byte header[kCmdHeaderSize]{};
    store_be32(header, 0, cmd);
    store_be16(header, 6, static_cast<uint16_t>(request_len));
    if (auto r = file_->write(bar2_.offset, header); !r)
        return tl::unexpected(r.error());

    // A load that fails leaves the sentinel, as in Linux: "no valid response".
    std::byte response[kCmdHeaderSize]{};
    store_be16(response, 4, kRcNoResponse);
    if (auto r = file_->read(bar2_.offset, response); !r)
        return tl::unexpected(r.error());
    const uint16_t ret = load_be16(response, 4);
    if (ret != kRcSuccess)
        return fail(map_return_code(ret));

    const uint16_t response_len = load_be16(response, 6);
    if (response_len < kCmdHeaderSize || response_len > bar2_.size)
        return fail(errc::bad_response);
    std::vector<std::byte> out(std::min<std::size_t>(response_len - kCmdHeaderSize, max_response));
    if (!out.empty()) {
        if (auto r = file_->read(bar2_.offset + kCmdPayloadOffset, out); !r)
            return tl::unexpected(r.error());
    }
    return out;
}

Result<QueryInfo> IsmDevice::query_info()
{
    using namespace regs;
    auto r = command(kCmdQueryInfo, {}, kQueryInfoResponseSize - kCmdHeaderSize);
    if (!r)
        return tl::unexpected(r.error());
    if (r->size() < kQueryInfoResponseSize - kCmdHeaderSize)
        return fail(errc::bad_response);
    // Offsets below are from the start of the response, header included.
    const std::span<const std::byte> p(*r);
    auto at = [](std::size_t off) { return off - kCmdHeaderSize; };
    QueryInfo info;
    info.version = load_be32(p, at(8));
    info.max_len = load_be32(p, at(12));
    info.ism_state = load_be64(p, at(16));
    info.my_gid = load_be64(p, at(24));
    info.sba = load_be64(p, at(32));
    info.ieq = load_be64(p, at(40));
    info.ieq_len = load_be32(p, at(48));
    info.dmbs_owned = load_be32(p, at(56));
    info.dmbs_used = load_be32(p, at(60));
    info.vlan_required = load_be32(p, at(64));
    info.vlan_nr_ids = load_be32(p, at(68));
    return info;
}

Result<void> IsmDevice::query_rgid(uint64_t rgid)
{
    std::byte payload[16]{};
    store_be64(payload, 0, rgid);  // rgid @8; vlan_valid @16 and vlan_id @20 stay 0
    return command_ok(regs::kCmdQueryRgid, payload);
}

Result<void> IsmDevice::signal_event(uint64_t rgid, uint32_t code, uint64_t info, bool trigger_irq)
{
    std::byte payload[24]{};
    store_be64(payload, 0, rgid);                   // @8
    store_be32(payload, 8, trigger_irq ? 1U : 0U);  // @16
    store_be32(payload, 12, code);                  // @20
    store_be64(payload, 16, info);                  // @24
    return command_ok(regs::kCmdSignalIeq, payload);
}

}  // namespace ism::device
