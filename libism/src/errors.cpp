// SPDX-License-Identifier: MIT
#include <string>

#include "ism/result.hpp"

namespace ism {
namespace {

class IsmCategory final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "ism"; }

    [[nodiscard]] std::string message(int value) const override
    {
        switch (static_cast<errc>(value)) {
            case errc::no_such_device:
                return "no such PCI function";
            case errc::not_bound_to_driver:
                return "function is not bound to the ism_vfio_pci driver";
            case errc::group_not_viable:
                return "IOMMU group is not viable (another device in it is bound to a host driver)";
            case errc::memlock_too_low:
                return "locked-memory limit (RLIMIT_MEMLOCK) is too low for the DMA memory";
            case errc::no_iommu_backend:
                return "neither a VFIO container nor iommufd is usable";
            case errc::bad_capability:
                return "malformed VFIO capability chain";
            case errc::short_access:
                return "region access moved fewer bytes than asked";
            case errc::bad_region:
                return "region index unknown or access outside the region";
            case errc::dma_exhausted:
                return "no DMA memory or IOVA space left";
            case errc::not_ism_device:
                return "not an ISM function (vendor, device or pft differ)";
            case errc::bad_response:
                return "malformed response from the command area";
            case errc::bad_argument:
                return "argument outside what the device supports";
            case errc::dmb_limit:
                return "DMB count or size limit reached";
            case errc::hw_rejected:
                return "device rejected the command";
            case errc::hw_no_response:
                return "device gave no valid response";
            case errc::hw_unknown_command:
                return "device does not know the command";
            case errc::hw_bad_length:
                return "device rejected the command length";
            case errc::hw_bad_address:
                return "device cannot reach the DMA address";
            case errc::hw_dmb_limit:
                return "device has no room for another DMB";
            case errc::hw_dmb_size:
                return "device rejected the DMB size";
            case errc::hw_sba_index:
                return "SBA index invalid or already in use";
            case errc::hw_unknown_token:
                return "device does not know the DMB token";
            case errc::hw_unknown_gid:
                return "no function with that GID on the fabric";
            case errc::hw_not_registered:
                return "SBA or event queue not registered";
            case errc::hw_already_registered:
                return "already registered";
            case errc::hw_gid_unreachable:
                return "remote GID is not reachable";
            case errc::peer_gone:
                return "peer is gone";
            case errc::bad_cursor:
                return "peer wrote an invalid cursor";
            case errc::proto_version:
                return "no common protocol version";
            case errc::bad_control_block:
                return "peer wrote a malformed control block";
            case errc::bad_record:
                return "peer wrote a malformed message record";
            case errc::link_reset:
                return "link reset after a protocol violation";
            case errc::no_peer_channel:
                return "the peer's end of the link has no such channel (it has fewer)";
            case errc::message_too_large:
                return "message larger than this side or the peer accepts (max_message)";
            case errc::mode_mismatch:
                return "the peer has this channel open in the other mode (message / stream)";
            case errc::send_queue_full:
                return "the channel's send queue is full (LinkOptions::send_queue)";
            case errc::end_of_stream:
                return "end of stream: the peer closed or shut its sending side of the channel";
            case errc::channel_closed:
                return "the channel is closed, or shut for sending, at this end";
            case errc::peer_closed:
                return "the peer closed its end of the channel";
            case errc::sim_bad_name:
                return "invalid emulated fabric or function name (1-63 characters of A-Z a-z 0-9 "
                       ". _ -)";
            case errc::sim_fabric_full:
                return "no free function slot on the emulated fabric";
            case errc::sim_fabric_mismatch:
                return "emulated fabric file has another layout version (remove it)";
        }
        return "unknown ism error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& ism_category() noexcept
{
    static const IsmCategory category;
    return category;
}

std::error_code make_error_code(errc e) noexcept
{
    return {static_cast<int>(e), ism_category()};
}

}  // namespace ism
