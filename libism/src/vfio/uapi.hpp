// SPDX-License-Identifier: MIT
// The VFIO and iommufd kernel ABI used by libism/vfio, checked against the kernel headers.
//
// Request numbers are spelled as constants here because the _IO() macros trip the
// project's -Wold-style-cast/-Wsign-conversion in C++; every constant is static_asserted
// against the macro where the installed header has it. All VFIO and iommufd requests are
// _IO(';', nr), which encodes identically on every architecture we build for (x86-64,
// s390x: asm-generic ioctl layout, no direction or size bits).
//
// Debian 12's linux-libc-dev (6.1) predates the vfio cdev (6.6) and ships no
// <linux/iommufd.h>; the missing structs are declared below with the layouts of
// docs/hardware.md section 3.2, and checked against the real header when it is present.
#pragma once

#include <cstddef>
#include <cstdint>

#include <linux/vfio.h>
#include <linux/vfio_zdev.h>
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#define ISM_HAVE_LINUX_IOMMUFD_H 1
#endif

namespace ism::vfio::uapi {

constexpr unsigned long io(unsigned int nr)
{
    return (0x3BUL << 8) | nr;  // _IO(';', nr)
}

inline constexpr unsigned long kGetApiVersion = io(100 + 0);
inline constexpr unsigned long kCheckExtension = io(100 + 1);
inline constexpr unsigned long kSetIommu = io(100 + 2);
inline constexpr unsigned long kGroupGetStatus = io(100 + 3);
inline constexpr unsigned long kGroupSetContainer = io(100 + 4);
inline constexpr unsigned long kGroupGetDeviceFd = io(100 + 6);
inline constexpr unsigned long kDeviceGetInfo = io(100 + 7);
inline constexpr unsigned long kDeviceGetRegionInfo = io(100 + 8);
inline constexpr unsigned long kDeviceGetIrqInfo = io(100 + 9);
inline constexpr unsigned long kDeviceSetIrqs = io(100 + 10);
inline constexpr unsigned long kDeviceReset = io(100 + 11);
inline constexpr unsigned long kIommuGetInfo = io(100 + 12);
inline constexpr unsigned long kIommuMapDma = io(100 + 13);
inline constexpr unsigned long kIommuUnmapDma = io(100 + 14);
inline constexpr unsigned long kDeviceBindIommufd = io(100 + 18);
inline constexpr unsigned long kDeviceAttachIommufdPt = io(100 + 19);
inline constexpr unsigned long kDeviceDetachIommufdPt = io(100 + 20);
inline constexpr unsigned long kIommuDestroy = io(0x80);
inline constexpr unsigned long kIoasAlloc = io(0x81);
inline constexpr unsigned long kIoasIovaRanges = io(0x84);
inline constexpr unsigned long kIoasMap = io(0x85);
inline constexpr unsigned long kIoasUnmap = io(0x86);

inline constexpr int kApiVersion = 0;              // VFIO_API_VERSION
inline constexpr unsigned long kType1Iommu = 1;    // VFIO_TYPE1_IOMMU
inline constexpr unsigned long kType1v2Iommu = 3;  // VFIO_TYPE1v2_IOMMU

inline constexpr uint32_t kGroupFlagViable = 1U << 0;
inline constexpr uint32_t kIommuInfoCaps = 1U << 1;
inline constexpr uint16_t kIommuCapIovaRange = 1;
inline constexpr uint32_t kDmaMapRead = 1U << 0;
inline constexpr uint32_t kDmaMapWrite = 1U << 1;
inline constexpr uint32_t kIrqSetDataNone = 1U << 0;
inline constexpr uint32_t kIrqSetDataEventfd = 1U << 2;
inline constexpr uint32_t kIrqSetActionTrigger = 1U << 5;
inline constexpr uint32_t kIoasMapFixedIova = 1U << 0;
inline constexpr uint32_t kIoasMapWriteable = 1U << 1;
inline constexpr uint32_t kIoasMapReadable = 1U << 2;

inline constexpr uint16_t kZpciCapBase = 1;
inline constexpr uint16_t kZpciCapGroup = 2;

/// Sizes the kernel documents; vfio_device_info is 24 B with its trailing pad (newer
/// headers), 20 B in 6.1's header, so it is handled as bytes, never as the struct.
inline constexpr uint32_t kDeviceInfoSize = 24;
inline constexpr std::size_t kDeviceInfoCapOffset = 16;
inline constexpr std::size_t kCapHeaderSize = 8;
inline constexpr std::size_t kIrqSetHeaderSize = 20;

// vfio cdev and iommufd structs (docs/hardware.md 3.2): used when the header lacks them.
struct BindIommufd {
    uint32_t argsz;
    uint32_t flags;
    int32_t iommufd;
    uint32_t out_devid;
};
struct AttachIommufdPt {
    uint32_t argsz;
    uint32_t flags;
    uint32_t pt_id;
};
struct DetachIommufdPt {
    uint32_t argsz;
    uint32_t flags;
};
struct IommuDestroy {
    uint32_t size;
    uint32_t id;
};
struct IoasAlloc {
    uint32_t size;
    uint32_t flags;
    uint32_t out_ioas_id;
};
struct IovaRange {
    uint64_t start;
    uint64_t last;  // inclusive
};
struct IoasIovaRanges {
    uint32_t size;
    uint32_t ioas_id;
    uint32_t num_iovas;
    uint32_t reserved;
    uint64_t allowed_iovas;  // user pointer to IovaRange[num_iovas]
    uint64_t out_iova_alignment;
};
struct IoasMap {
    uint32_t size;
    uint32_t flags;
    uint32_t ioas_id;
    uint32_t reserved;
    uint64_t user_va;
    uint64_t length;
    uint64_t iova;
};
struct IoasUnmap {
    uint32_t size;
    uint32_t ioas_id;
    uint64_t iova;
    uint64_t length;
};

static_assert(sizeof(BindIommufd) == 16);
static_assert(sizeof(AttachIommufdPt) == 12);
static_assert(sizeof(IoasAlloc) == 12);
static_assert(sizeof(IoasIovaRanges) == 32 && offsetof(IoasIovaRanges, allowed_iovas) == 16);
static_assert(sizeof(IoasMap) == 40 && offsetof(IoasMap, user_va) == 16);
static_assert(offsetof(IoasMap, length) == 24 && offsetof(IoasMap, iova) == 32);
static_assert(sizeof(IoasUnmap) == 24 && offsetof(IoasUnmap, iova) == 8);

// Layouts of docs/hardware.md section 3, checked against the installed kernel headers.
static_assert(sizeof(vfio_info_cap_header) == kCapHeaderSize);
static_assert(offsetof(vfio_device_info, cap_offset) == kDeviceInfoCapOffset);
static_assert(sizeof(vfio_device_info) == 20 || sizeof(vfio_device_info) == kDeviceInfoSize);
static_assert(sizeof(vfio_group_status) == 8);
static_assert(sizeof(vfio_region_info) == 32);
static_assert(offsetof(vfio_region_info, size) == 16);
static_assert(offsetof(vfio_region_info, offset) == 24);
static_assert(sizeof(vfio_irq_info) == 16);
static_assert(offsetof(vfio_irq_set, data) == kIrqSetHeaderSize);
static_assert(sizeof(vfio_iommu_type1_info) == 24);
static_assert(offsetof(vfio_iommu_type1_info, cap_offset) == 16);
static_assert(sizeof(vfio_iommu_type1_dma_map) == 32);
static_assert(offsetof(vfio_iommu_type1_dma_map, vaddr) == 8);
static_assert(offsetof(vfio_iommu_type1_dma_map, iova) == 16);
static_assert(offsetof(vfio_iommu_type1_dma_map, size) == 24);
static_assert(offsetof(vfio_iommu_type1_dma_unmap, iova) == 8);
static_assert(offsetof(vfio_iommu_type1_dma_unmap, size) == 16);
static_assert(offsetof(vfio_iommu_type1_info_cap_iova_range, iova_ranges) == 16);
static_assert(sizeof(vfio_iova_range) == 16);
static_assert(sizeof(vfio_device_info_cap_zpci_base) == 40);
static_assert(offsetof(vfio_device_info_cap_zpci_base, start_dma) == 8);
static_assert(offsetof(vfio_device_info_cap_zpci_base, end_dma) == 16);
static_assert(offsetof(vfio_device_info_cap_zpci_base, pchid) == 24);
static_assert(offsetof(vfio_device_info_cap_zpci_base, vfn) == 26);
static_assert(offsetof(vfio_device_info_cap_zpci_base, pft) == 30);
static_assert(offsetof(vfio_device_info_cap_zpci_base, gid) == 31);
static_assert(offsetof(vfio_device_info_cap_zpci_base, fh) == 32);
static_assert(sizeof(vfio_device_info_cap_zpci_group) == 48);
static_assert(offsetof(vfio_device_info_cap_zpci_group, noi) == 34);
static_assert(offsetof(vfio_device_info_cap_zpci_group, maxstbl) == 36);
static_assert(offsetof(vfio_device_info_cap_zpci_group, imaxstbl) == 40);

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wconversion"
static_assert(kGetApiVersion == VFIO_GET_API_VERSION);
static_assert(kCheckExtension == VFIO_CHECK_EXTENSION);
static_assert(kSetIommu == VFIO_SET_IOMMU);
static_assert(kGroupGetStatus == VFIO_GROUP_GET_STATUS);
static_assert(kGroupSetContainer == VFIO_GROUP_SET_CONTAINER);
static_assert(kGroupGetDeviceFd == VFIO_GROUP_GET_DEVICE_FD);
static_assert(kDeviceGetInfo == VFIO_DEVICE_GET_INFO);
static_assert(kDeviceGetRegionInfo == VFIO_DEVICE_GET_REGION_INFO);
static_assert(kDeviceGetIrqInfo == VFIO_DEVICE_GET_IRQ_INFO);
static_assert(kDeviceSetIrqs == VFIO_DEVICE_SET_IRQS);
static_assert(kDeviceReset == VFIO_DEVICE_RESET);
static_assert(kIommuGetInfo == VFIO_IOMMU_GET_INFO);
static_assert(kIommuMapDma == VFIO_IOMMU_MAP_DMA);
static_assert(kIommuUnmapDma == VFIO_IOMMU_UNMAP_DMA);
static_assert(kApiVersion == VFIO_API_VERSION);
static_assert(kType1Iommu == VFIO_TYPE1_IOMMU && kType1v2Iommu == VFIO_TYPE1v2_IOMMU);
static_assert(kGroupFlagViable == VFIO_GROUP_FLAGS_VIABLE);
static_assert(kIommuInfoCaps == VFIO_IOMMU_INFO_CAPS);
static_assert(kIommuCapIovaRange == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
static_assert(kDmaMapRead == VFIO_DMA_MAP_FLAG_READ && kDmaMapWrite == VFIO_DMA_MAP_FLAG_WRITE);
static_assert(kIrqSetDataNone == VFIO_IRQ_SET_DATA_NONE);
static_assert(kIrqSetDataEventfd == VFIO_IRQ_SET_DATA_EVENTFD);
static_assert(kIrqSetActionTrigger == VFIO_IRQ_SET_ACTION_TRIGGER);
static_assert(kZpciCapBase == VFIO_DEVICE_INFO_CAP_ZPCI_BASE);
static_assert(kZpciCapGroup == VFIO_DEVICE_INFO_CAP_ZPCI_GROUP);
#ifdef VFIO_DEVICE_BIND_IOMMUFD
static_assert(kDeviceBindIommufd == VFIO_DEVICE_BIND_IOMMUFD);
static_assert(kDeviceAttachIommufdPt == VFIO_DEVICE_ATTACH_IOMMUFD_PT);
static_assert(kDeviceDetachIommufdPt == VFIO_DEVICE_DETACH_IOMMUFD_PT);
static_assert(offsetof(vfio_device_bind_iommufd, out_devid) == 12);
static_assert(offsetof(vfio_device_attach_iommufd_pt, pt_id) == 8);
#endif
#ifdef ISM_HAVE_LINUX_IOMMUFD_H
static_assert(kIommuDestroy == IOMMU_DESTROY && kIoasAlloc == IOMMU_IOAS_ALLOC);
static_assert(kIoasIovaRanges == IOMMU_IOAS_IOVA_RANGES);
static_assert(kIoasMap == IOMMU_IOAS_MAP && kIoasUnmap == IOMMU_IOAS_UNMAP);
static_assert(kIoasMapFixedIova == IOMMU_IOAS_MAP_FIXED_IOVA);
static_assert(kIoasMapWriteable == IOMMU_IOAS_MAP_WRITEABLE);
static_assert(kIoasMapReadable == IOMMU_IOAS_MAP_READABLE);
static_assert(sizeof(iommu_ioas_map) == sizeof(IoasMap));
static_assert(offsetof(iommu_ioas_map, iova) == offsetof(IoasMap, iova));
static_assert(sizeof(iommu_ioas_unmap) == sizeof(IoasUnmap));
static_assert(sizeof(iommu_ioas_alloc) == sizeof(IoasAlloc));
static_assert(offsetof(iommu_ioas_iova_ranges, allowed_iovas) ==
              offsetof(IoasIovaRanges, allowed_iovas));
#endif
#pragma GCC diagnostic pop

}  // namespace ism::vfio::uapi
