// SPDX-License-Identifier: MIT
// FakeVfioKernel: a test double of the kernel at the Sys boundary.
//
// It plays sysfs (function_id, driver, iommu_group, vfio-dev), the VFIO device nodes
// (/dev/vfio/vfio, /dev/vfio/<group>, /dev/vfio/devices/vfioN, /dev/iommu) and the ioctls
// on them, enforcing the orderings the real kernel enforces (SET_IOMMU needs a group,
// GET_DEVICE_FD needs an IOMMU, a cdev needs BIND_IOMMUFD first, ...). It records every
// open, ioctl and close in `log` as "<object> <operation>", region accesses in `accesses`
// and DMA mappings in `mappings`. It knows nothing of ISM: GET_INFO returns `info_reply`,
// golden bytes the test builds by hand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ism/vfio/device_file.hpp"
#include "ism/vfio/sys.hpp"

namespace ism::vfio::testing {

/// Host-order integer written at an offset, growing the buffer as needed: the kernel's
/// structs are host-endian, so this is how golden reply bytes are laid out.
template <class T>
void put(std::vector<std::byte>& buf, std::size_t offset, T value)
{
    if (buf.size() < offset + sizeof(T))
        buf.resize(offset + sizeof(T));
    std::memcpy(buf.data() + offset, &value, sizeof(T));
}

template <class T>
T get(const std::vector<std::byte>& buf, std::size_t offset)
{
    T value{};
    std::memcpy(&value, buf.data() + offset, sizeof(T));
    return value;
}

struct FakeFunction {
    std::string bdf = "0001:00:00.0";
    std::string function_id = "0x00000011\n";
    std::string group = "7";
    std::string cdev = "vfio3";           // empty: no vfio-dev directory
    std::string driver = "ism_vfio_pci";  // empty: no driver link
};

struct FakeAccess {
    bool write = false;
    uint64_t offset = 0;
    std::vector<std::byte> data;
};

struct FakeMapping {
    uint64_t vaddr = 0;
    uint64_t size = 0;
    uint32_t flags = 0;
};

class FakeVfioKernel final : public Sys {
public:
    FakeVfioKernel(const FakeVfioKernel&) = delete;
    FakeVfioKernel& operator=(const FakeVfioKernel&) = delete;
    static constexpr uint64_t kBar0Size = 1ULL << 48;
    static constexpr std::size_t kPageSize = 4096;

    /// sysfs_root "/sys", dev_root "/dev", one function (FakeFunction{}), /dev/iommu,
    /// regions in ism_vfio_pci's 48-bit layout, no capabilities in GET_INFO.
    FakeVfioKernel();
    ~FakeVfioKernel() override;

    void add_function(const FakeFunction& fn);
    /// Regions at index << shift (48 for ism_vfio_pci, 40 for plain vfio-pci).
    void set_region_layout(unsigned shift);

    // --- what the fake kernel answers
    std::map<std::string, std::string> files;  // sysfs attribute -> content
    std::map<std::string, std::string> links;  // symlink -> target
    std::set<std::string> nodes;               // device nodes open() accepts
    std::map<std::string, int> open_errno;     // path -> errno open() fails with
    std::vector<std::byte> info_reply;         // VFIO_DEVICE_GET_INFO reply, header and caps
    std::map<uint32_t, RegionInfo> regions;
    bool group_viable = true;
    bool has_type1v2 = true;
    bool has_type1 = true;
    std::vector<std::pair<uint64_t, uint64_t>> iova_ranges;  // inclusive
    uint64_t memlock = kMemlockUnlimited;
    int attach_errno = 0;  // ATTACH_IOMMUFD_PT fails with this
    int map_errno = 0;     // MAP_DMA / IOAS_MAP fail with this
    std::optional<std::size_t> pread_returns;
    std::optional<std::size_t> pwrite_returns;
    int pread_eintr = 0;   // the next n preads fail with EINTR
    int pwrite_eintr = 0;  // the next n pwrites fail with EINTR

    // --- what happened
    std::vector<std::string> log;
    std::vector<uint32_t> get_info_argsz;  // argsz of each VFIO_DEVICE_GET_INFO call
    std::vector<FakeAccess> accesses;
    std::map<uint64_t, FakeMapping> mappings;  // by IOVA
    std::vector<std::byte> last_set_irqs;      // argsz bytes of the last SET_IRQS
    int msi_eventfd = -1;                      // the eventfd MSI vector 0 triggers
    int live_dma_buffers = 0;
    int bad_closes = 0;

    /// The device raises MSI vector 0 `n` times.
    void fire_msi(uint64_t n = 1);
    [[nodiscard]] std::size_t open_fds() const { return fds_.size(); }
    /// log entries that start with `prefix` (e.g. "device ", "container ").
    [[nodiscard]] std::vector<std::string> log_of(const std::string& prefix) const;

    // --- Sys
    Result<int> open(const std::string& path, int flags) override;
    void close(int fd) override;
    Result<int> ioctl(int fd, unsigned long request, void* arg) override;
    Result<int> ioctl_value(int fd, unsigned long request, unsigned long value) override;
    Result<std::size_t> pread(int fd, void* buf, std::size_t count, uint64_t offset) override;
    Result<std::size_t> pwrite(int fd, const void* buf, std::size_t count,
                               uint64_t offset) override;
    Result<std::size_t> read(int fd, void* buf, std::size_t count) override;
    Result<int> eventfd(unsigned int initval, int flags) override;
    Result<std::byte*> map_anonymous(std::size_t size) override;
    void unmap(std::byte* addr, std::size_t size) override;
    std::size_t page_size() override { return kPageSize; }
    Result<uint64_t> memlock_limit() override { return memlock; }
    Result<std::string> readlink(const std::string& path) override;
    Result<std::string> read_file(const std::string& path) override;
    Result<std::vector<std::string>> list_dir(const std::string& path) override;
    bool exists(const std::string& path) override;

private:
    enum class Kind { container, group, device, iommufd, eventfd };
    struct Fd {
        Kind kind;
        std::string name;      // group number or cdev name
        bool cdev = false;     // device opened through /dev/vfio/devices
        bool bound = false;    // cdev: BIND_IOMMUFD done
        uint64_t counter = 0;  // eventfd
    };

    Result<int> new_fd(Kind kind, std::string name);
    Fd* find(int fd, Kind kind);
    Result<int> container_ioctl(unsigned long request, void* arg, unsigned long value);
    Result<int> group_ioctl(Fd& group, unsigned long request, void* arg);
    Result<int> device_ioctl(Fd& device, unsigned long request, void* arg);
    Result<int> iommufd_ioctl(unsigned long request, void* arg);
    Result<int> map(uint64_t vaddr, uint64_t iova, uint64_t size, uint32_t flags);
    Result<int> unmap_exact(uint64_t iova, uint64_t& size);
    Result<int> iommu_get_info(void* arg);
    Result<int> device_get_info(void* arg);
    Result<int> set_irqs(void* arg);
    Result<void> check_region_access(int fd, uint64_t offset, std::size_t count);

    std::map<int, Fd> fds_;
    int next_fd_ = 100;
    std::set<std::string> open_groups_;
    bool group_has_container_ = false;
    bool iommu_set_ = false;
    bool ioas_allocated_ = false;
    bool attached_ = false;
    uint64_t pinned_ = 0;
};

const char* request_name(unsigned long request);

}  // namespace ism::vfio::testing
