// SPDX-License-Identifier: MIT
// The command area (BAR2): decoding a request, executing it, writing the response.
//
// Request {be32 cmd, be16 reserved, be16 len} at offset 0, payload from offset 8; the
// response {be32 cmd, be16 ret, be16 len} replaces it, payload from offset 8 (docs/hardware.md
// 1.3, 1.4). Return codes are the project's table in ism/return_codes.hpp.
#include "sim/commands.hpp"

#include <atomic>
#include <cstring>

#include "ism/return_codes.hpp"
#include "sim/byte_order.hpp"

namespace ism::sim::detail {
namespace {

enum Command : uint32_t {
    kRegSba = 0x01,
    kRegIeq = 0x02,
    kReadGid = 0x03,
    kAddVlanId = 0x04,
    kDelVlanId = 0x05,
    kSetVlan = 0x06,
    kResetVlan = 0x07,
    kQueryInfo = 0x08,
    kQueryRgid = 0x09,
    kRegDmb = 0x0A,
    kUnregDmb = 0x0B,
    kSignalIeq = 0x0E,
    kUnregSba = 0x11,
    kUnregIeq = 0x12,
};

constexpr uint16_t kHeaderSize = 8;
constexpr uint16_t kQueryInfoSize = 200;
constexpr uint32_t kQueryInfoVersion = 2;  // choice: this emulates an ISMv2 function

struct Reply {
    uint16_t rc = kRcSuccess;
    uint16_t len = kHeaderSize;
};

uint16_t request_len(uint32_t cmd)
{
    switch (cmd) {
        case kRegSba:
        case kAddVlanId:
        case kDelVlanId:
        case kUnregDmb:
            return 16;
        case kRegIeq:
        case kQueryRgid:
            return 24;
        case kRegDmb:
            return 40;
        case kSignalIeq:
            return 32;
        case kReadGid:
        case kSetVlan:
        case kResetVlan:
        case kQueryInfo:
        case kUnregSba:
        case kUnregIeq:
            return 8;
        default:
            return 0;
    }
}

class Executor {
public:
    Executor(Caller& caller, std::span<std::byte> area) : c_(caller), area_(area) {}

    Reply run(uint32_t cmd)
    {
        switch (cmd) {
            case kRegSba:
                return reg_sba(load_be64(area_, 8));
            case kRegIeq:
                return reg_ieq(load_be64(area_, 8), load_be64(area_, 16));
            case kReadGid:
                store_be64(area_, 8, c_.gid);
                return {kRcSuccess, 16};
            case kAddVlanId:
                return add_vlan(load_be64(area_, 8));
            case kDelVlanId:
                return del_vlan(load_be64(area_, 8));
            case kSetVlan:
                return set_vlan(1);
            case kResetVlan:
                return set_vlan(0);
            case kQueryInfo:
                return query_info();
            case kQueryRgid:
                return {find_live_gid(c_.map, load_be64(area_, 8), c_.irq) ? kRcSuccess
                                                                           : kRcUnknownGid};
            case kRegDmb:
                return reg_dmb();
            case kUnregDmb:
                return unreg_dmb(load_be64(area_, 8));
            case kSignalIeq:
                return signal_ieq();
            case kUnregSba:
                return unreg(&Slot::sba_registered);
            case kUnregIeq:
                return unreg(&Slot::ieq_registered);
            default:
                return {kRcUnknownCommand};
        }
    }

private:
    Slot& me() { return c_.map.slot(c_.slot); }

    Reply reg_sba(uint64_t iova)
    {
        SlotLock lock(me());
        if (me().sba_registered != 0)
            return {kRcAlreadyRegistered};
        // The SBA is one page (Linux allocates exactly that), device-writable.
        if (iova % kPageSize != 0 || translate(c_.map, c_.slot, iova, kSbaSize) == nullptr)
            return {kRcBadAddress};
        me().sba_iova = iova;
        me().sba_registered = 1;
        return {};
    }

    Reply reg_ieq(uint64_t iova, uint64_t len)
    {
        SlotLock lock(me());
        if (me().ieq_registered != 0)
            return {kRcAlreadyRegistered};
        // Header + 15 entries must fit, 8-byte aligned for the device's 8-byte stores.
        std::byte* ieq = translate(c_.map, c_.slot, iova, kIeqMinLength);
        if (len < kIeqMinLength || iova % 8 != 0 || ieq == nullptr)
            return {kRcBadAddress};
        write_ieq_header(ieq, len);
        me().ieq_iova = iova;
        me().ieq_len = len;
        me().ieq_next = 0;
        me().ieq_registered = 1;
        return {};
    }

    Reply unreg(Be32 Slot::*registered)
    {
        SlotLock lock(me());
        if (me().*registered == 0)
            return {kRcNotRegistered};
        me().*registered = 0;
        return {};
    }

    Reply add_vlan(uint64_t id)
    {
        SlotLock lock(me());
        Slot& s = me();
        for (uint32_t i = 0; i < s.vlan_count; ++i) {
            if (s.vlan_ids[i] == id)
                return {};
        }
        // VLANs are deprecated and not enforced here; the table only feeds QUERY_INFO.
        if (s.vlan_count == kMaxVlanIds || id > 0xFFFF)
            return {kRcDmbLimit};
        s.vlan_ids[s.vlan_count++] = static_cast<uint16_t>(id);
        return {};
    }

    Reply del_vlan(uint64_t id)
    {
        SlotLock lock(me());
        Slot& s = me();
        for (uint32_t i = 0; i < s.vlan_count; ++i) {
            if (s.vlan_ids[i] == id) {
                s.vlan_ids[i] = s.vlan_ids[--s.vlan_count];
                break;
            }
        }
        return {};
    }

    Reply set_vlan(uint32_t required)
    {
        SlotLock lock(me());
        me().vlan_required = required;
        return {};
    }

    uint32_t dmbs_used()
    {
        uint32_t n = 0;
        for (uint32_t j = 0; j < kMaxFunctions; ++j) {
            SlotLock lock(c_.map.slot(j));
            const Slot& s = c_.map.slot(j);
            if (s.state != kSlotLive)
                continue;
            for (const DmbEntry& d : s.dmbs)
                n += (d.state == kDmbRegistered && d.rgid == c_.gid) ? 1U : 0U;
        }
        return n;
    }

    Reply query_info()
    {
        const uint32_t used = dmbs_used();
        SlotLock lock(me());
        const Slot& s = me();
        std::fill(area_.begin() + kHeaderSize, area_.begin() + kQueryInfoSize, std::byte{0});
        store_be32(area_, 8, kQueryInfoVersion);
        store_be32(area_, 12, s.max_dmb_size);  // max_len: the DMB size limit
        store_be64(area_, 16, 0);               // ism_state: 0, operational
        store_be64(area_, 24, c_.gid);
        store_be64(area_, 32, s.sba_registered != 0 ? uint64_t{s.sba_iova} : 0);
        store_be64(area_, 40, s.ieq_registered != 0 ? uint64_t{s.ieq_iova} : 0);
        store_be32(area_, 48, s.ieq_registered != 0 ? static_cast<uint32_t>(s.ieq_len) : 0);
        store_be32(area_, 56, s.dmb_count);  // dmbs_owned: registered here
        store_be32(area_, 60, used);         // dmbs_used: others' DMBs we may write
        store_be32(area_, 64, s.vlan_required);
        store_be32(area_, 68, s.vlan_count);
        for (uint32_t i = 0; i < s.vlan_count; ++i)
            store_be16(area_, 72 + 2 * std::size_t{i}, s.vlan_ids[i]);
        return {kRcSuccess, kQueryInfoSize};
    }

    Reply reg_dmb();
    Reply unreg_dmb(uint64_t token);
    Reply signal_ieq();

    Caller& c_;
    std::span<std::byte> area_;
};

Reply Executor::reg_dmb()
{
    const uint64_t iova = load_be64(area_, 8);
    const uint32_t len = load_be32(area_, 16);
    uint32_t sba_idx = load_be32(area_, 20);
    const uint64_t rgid = load_be64(area_, 32);  // vlan_valid/vlan_id @24/@28: not enforced
    // Token allocation is fabric-wide: under the fabric lock, then our slot's.
    auto fabric_lock = FabricLock::acquire(c_.map.fd());
    if (!fabric_lock)
        return {kRcNoResponse};
    SlotLock lock(me());
    Slot& s = me();
    if (s.dmb_count >= s.max_dmbs)
        return {kRcDmbLimit};
    if (len == 0 || len > s.max_dmb_size)
        return {kRcDmbSize};
    if (sba_idx == 0) {
        for (uint32_t k = kFirstSbaIdx; k < kSbaBits && sba_idx == 0; ++k)
            sba_idx = s.dmbs[k - kFirstSbaIdx].state == kDmbFree ? k : 0;
    }
    if (sba_idx < kFirstSbaIdx || sba_idx >= kSbaBits ||
        s.dmbs[sba_idx - kFirstSbaIdx].state != kDmbFree)
        return {kRcSbaIndex};
    // Page-aligned like every DMB Linux registers: a store then never spans two mappings.
    if (iova % kPageSize != 0 || !range_mapped(c_.map, c_.slot, iova, len))
        return {kRcBadAddress};
    // Tokens count up fabric-wide and wrap after 65535, skipping live ones, so a restarted
    // peer does not see an old token land in its new DMB.
    FabricHeader& h = c_.map.header();
    uint32_t value = 0;
    for (uint32_t tries = 0; tries < kTokenValues && value == 0; ++tries) {
        const uint32_t v = h.next_token % kTokenValues;
        h.next_token = v + 1;
        if (v != 0 && c_.map.token_slot(v).load(std::memory_order_seq_cst) == 0)
            value = v;
    }
    if (value == 0)
        return {kRcDmbLimit};
    DmbEntry& d = s.dmbs[sba_idx - kFirstSbaIdx];
    d.token = uint64_t{value} << 32;
    d.iova = iova;
    d.rgid = rgid;
    d.len = len;
    d.state = kDmbRegistered;
    ++s.dmb_count;
    c_.map.token_slot(value).store(token_entry(c_.slot, sba_idx), std::memory_order_release);
    store_be64(area_, 8, d.token);
    return {kRcSuccess, 16};
}

Reply Executor::unreg_dmb(uint64_t token)
{
    auto fabric_lock = FabricLock::acquire(c_.map.fd());
    if (!fabric_lock)
        return {kRcNoResponse};
    SlotLock lock(me());
    Slot& s = me();
    for (uint32_t k = 0; k < kMaxDmbEntries; ++k) {
        DmbEntry& d = s.dmbs[k];
        if (d.state == kDmbFree || d.token != token)
            continue;
        Be32& t = c_.map.token_slot(static_cast<uint32_t>(token >> 32));
        if (t.load(std::memory_order_seq_cst) == token_entry(c_.slot, k + kFirstSbaIdx))
            t.store(0, std::memory_order_release);
        d = DmbEntry{};
        --s.dmb_count;
        return {};
    }
    return {kRcUnknownToken};
}

Reply Executor::signal_ieq()
{
    const uint64_t rgid = load_be64(area_, 8);
    // trigger_irq @16: 0 allows coalescing; interrupts coalesce here anyway, so both raise.
    const uint32_t code = load_be32(area_, 20);
    const uint64_t info = load_be64(area_, 24);
    const auto target = find_live_gid(c_.map, rgid, c_.irq);
    if (!target)
        return {kRcUnknownGid};
    bool raise = false;
    {
        SlotLock lock(c_.map.slot(*target));
        raise = post_event_locked(c_.map, *target, kEventTypeSwr, code, c_.gid, info);
    }
    if (raise)
        c_.irq.raise(c_.map, *target);
    return {};
}

}  // namespace

void execute_command(Caller& caller, std::span<std::byte> area)
{
    const uint32_t cmd = load_be32(area, 0);
    const uint16_t len = load_be16(area, 6);
    const uint16_t expected = request_len(cmd);
    Reply reply;
    if (expected == 0)
        reply = {kRcUnknownCommand};
    else if (len != expected)
        reply = {kRcBadLength};
    else
        reply = Executor(caller, area).run(cmd);
    if (reply.rc != kRcSuccess)
        reply.len = kHeaderSize;
    store_be32(area, 0, cmd);
    store_be16(area, 4, reply.rc);
    store_be16(area, 6, reply.len);
}

}  // namespace ism::sim::detail
