// SPDX-License-Identifier: MIT
// Result<T> and the "ism" error category.
//
// Contract: nothing in libism throws across its API. Every fallible call returns a
// Result; OS failures keep std::system_category (errno values), everything libism or the
// device decides is an ism::errc in the "ism" category. libism never logs: the caller that
// knows which device and which step logs once.
#pragma once

#include <cerrno>
#include <system_error>
#include <utility>

#include <tl/expected.hpp>

namespace ism {

template <class T>
using Result = tl::expected<T, std::error_code>;

enum class errc {
    // VFIO device file
    no_such_device = 1,   // no PCI function with that address or function id
    not_bound_to_driver,  // the function is not bound to ism_vfio_pci
    group_not_viable,     // another device in the IOMMU group is bound to a host driver
    memlock_too_low,      // RLIMIT_MEMLOCK does not cover the DMA memory
    no_iommu_backend,     // neither the VFIO container nor iommufd is usable
    bad_capability,       // a capability chain from the kernel is malformed
    short_access,         // a region read or write moved fewer bytes than asked
    bad_region,           // region index unknown, or access outside the region
    dma_exhausted,        // no IOVA space or DMA memory left for a mapping
    // ISM device (driver side)
    not_ism_device,  // vendor/device/pft are not those of an ISM function
    bad_response,    // the command area answered with a malformed response
    bad_argument,    // the caller asked for something the device cannot do
    dmb_limit,       // DMB count or size limit reached
    // Device return codes (project-defined table in ism/return_codes.hpp)
    hw_rejected,     // the device refused a command with an unknown code
    hw_no_response,  // no valid response (0xFFFF)
    hw_unknown_command,
    hw_bad_length,
    hw_bad_address,
    hw_dmb_limit,
    hw_dmb_size,
    hw_sba_index,
    hw_unknown_token,
    hw_unknown_gid,
    hw_not_registered,
    hw_already_registered,
    hw_gid_unreachable,
    // Link
    peer_gone,
    bad_cursor,
    proto_version,
    bad_control_block,  // the peer's control block is malformed
    bad_record,         // a message record in a ring is malformed
    link_reset,         // the link was reset after a protocol violation
    no_peer_channel,    // the peer's end of the link has fewer channels than this index
    message_too_large,  // larger than this side's or the peer's max_message
    mode_mismatch,      // the peer has this channel open in the other mode
    send_queue_full,    // the channel already holds LinkOptions::send_queue sends
    end_of_stream,      // the peer ended its sending side of the channel (after its last data)
    channel_closed,     // this end of the channel is closed, or shut for sending
    peer_closed,        // the peer closed its end of the channel: the send may not have arrived
    // Emulated device (sim)
    sim_bad_name,         // fabric or function name empty, too long or with bad characters
    sim_fabric_full,      // no free function slot on the emulated fabric
    sim_fabric_mismatch,  // the fabric file exists but has another layout or version
};

const std::error_category& ism_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

/// Shorthands for returning an error from a function returning Result<T>.
inline tl::unexpected<std::error_code> fail(errc e)
{
    return tl::unexpected(make_error_code(e));
}

inline tl::unexpected<std::error_code> fail_errno(int err)
{
    return tl::unexpected(std::error_code(err, std::system_category()));
}

inline tl::unexpected<std::error_code> fail_errno()
{
    return fail_errno(errno);
}

}  // namespace ism

template <>
struct std::is_error_code_enum<ism::errc> : std::true_type {
};
