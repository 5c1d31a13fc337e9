// SPDX-License-Identifier: MIT
// Runs inside the emulated s390x guest against a stand-in PCI function (QEMU's
// virtio-net-pci) bound to ism_vfio_pci, through libism's real VFIO device-file
// code. Raw syscalls on its device fd check the exact errno the module returns.
// Prints "PASS: ..." / "FAIL: ..." lines that tests/kmod/guest.sh parses.
//
//   kmod_guest check BDF MAC STB-ORDER   STB-ORDER: exact | reversed (see guest.sh)
//   kmod_guest openclose BDF N
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <linux/vfio.h>

#include "ism/vfio/vfio_device_file.hpp"

namespace {

using ism::vfio::VfioDeviceFile;

int failures = 0;

void report(bool ok, const std::string& what)
{
    std::printf("%s: %s\n", ok ? "PASS" : "FAIL", what.c_str());
    std::fflush(stdout);
    if (!ok) {
        ++failures;
    }
}

std::string hex(const std::vector<std::byte>& b)
{
    std::string s;
    char tmp[4];
    for (auto x : b) {
        std::snprintf(tmp, sizeof tmp, "%02x", static_cast<unsigned>(x));
        s += tmp;
    }
    return s;
}

constexpr uint64_t kShift = 48;

// Reads with libism; an empty vector on error.
std::vector<std::byte> lread(VfioDeviceFile& dev, uint64_t off, size_t len)
{
    std::vector<std::byte> b(len);
    if (auto r = dev.read(off, b); !r) {
        std::printf("  read 0x%llx+%zu: %s\n", static_cast<unsigned long long>(off), len,
                    r.error().message().c_str());
        return {};
    }
    return b;
}

uint32_t le(const std::vector<std::byte>& b, size_t at, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) {
        v |= static_cast<uint32_t>(b.at(at + i)) << (8 * i);
    }
    return v;
}

// errno of a raw pwrite/pread that is expected to fail; 0 if it succeeded.
int raw_write_errno(int fd, uint64_t off, size_t len)
{
    std::vector<std::byte> b(len, std::byte{0x5a});
    ssize_t n = pwrite(fd, b.data(), len, static_cast<off_t>(off));
    return n < 0 ? errno : 0;
}

int check(const std::string& bdf, const std::string& mac_text, const std::string& order)
{
    auto opened = ism::vfio::open_vfio_device(bdf);
    report(opened.has_value(), "libism open_vfio_device(" + bdf + ")" +
                                   (opened ? std::string(" via ") + (*opened)->backend_name()
                                           : ": " + opened.error().message()));
    if (!opened) {
        return 1;
    }
    VfioDeviceFile& dev = **opened;
    const int fd = dev.device_fd();

    // Region layout: 48-bit offsets, no mmap, BARs sized, ROM/VGA empty.
    auto info = dev.device_info();
    report(info && info->num_regions >= 9,
           "device info: " + (info ? std::to_string(info->num_regions) + " regions" : "error"));
    std::vector<ism::vfio::RegionInfo> regions(9);
    bool layout = true;
    for (uint32_t i = 0; i < 9; ++i) {
        auto r = dev.region_info(i);
        if (!r) {
            std::printf("  region %u: %s\n", i, r.error().message().c_str());
            layout = false;
            continue;
        }
        regions[i] = *r;
        std::printf("  region %u: offset 0x%llx size 0x%llx flags 0x%x\n", i,
                    static_cast<unsigned long long>(r->offset),
                    static_cast<unsigned long long>(r->size), r->flags);
        layout = layout && r->offset == (uint64_t{i} << kShift) &&
                 (r->flags & ism::vfio::kRegionFlagMmap) == 0;
    }
    report(layout, "region info: every offset is index << 48, no region has the MMAP flag");
    const auto& bar1 = regions[1];
    const auto& bar4 = regions[4];
    const auto& cfg = regions[7];
    const uint32_t rw = ism::vfio::kRegionFlagRead | ism::vfio::kRegionFlagWrite;
    report(bar1.size >= 256 && bar1.flags == rw && bar4.size >= 0x4000 && bar4.flags == rw,
           "region info: BAR1 and BAR4 sized and READ|WRITE");
    report((cfg.size == 256 || cfg.size == 4096) && cfg.flags == rw,
           "region info: config space " + std::to_string(cfg.size) + " bytes, READ|WRITE");
    report(regions[6].size == 0 && regions[6].flags == 0 && regions[0].size == 0,
           "region info: ROM and the unused BAR0 are empty");
    {
        vfio_region_info ri{};
        ri.argsz = sizeof ri;
        ri.index = 9;
        int rc = ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri);
        report(rc < 0 && errno == EINVAL, "region info of unknown index 9: EINVAL");
        report(!dev.region_info(9).has_value(), "libism region_info(9) fails");
    }

    // Config space through vfio-pci-core with the translated offset.
    auto hdr = lread(dev, cfg.offset, 64);
    report(hdr.size() == 64 && le(hdr, 0, 2) == 0x1af4 && le(hdr, 2, 2) == 0x1041,
           "config read: vendor 0x1af4 device 0x1041");
    {
        std::vector<std::byte> v{std::byte{0x5a}};
        auto w = dev.write(cfg.offset + 0x3c, v);
        auto b = lread(dev, cfg.offset + 0x3c, 1);
        report(w && b.size() == 1 && b[0] == std::byte{0x5a},
               "config write: interrupt line 0x5a reads back");
    }

    // The virtio device-specific configuration (starts with the MAC) in BAR4:
    // found through the virtio vendor capabilities in config space.
    uint64_t devcfg = UINT64_MAX;
    auto cfgall = lread(dev, cfg.offset, 256);
    if (cfgall.size() == 256) {
        unsigned ptr = le(cfgall, 0x34, 1);
        for (int guard = 0; ptr >= 0x40 && ptr < 0xff && guard < 48; ++guard) {
            if (le(cfgall, ptr, 1) == 0x09 && le(cfgall, ptr + 3, 1) == 4 &&
                le(cfgall, ptr + 4, 1) == 4) {
                devcfg = le(cfgall, ptr + 8, 4);
            }
            ptr = le(cfgall, ptr + 1, 1);
        }
    }
    report(devcfg != UINT64_MAX, "config read: virtio device config found in BAR4");
    std::vector<std::byte> mac(6);
    for (size_t i = 0; i < 6; ++i) {
        mac[i] = static_cast<std::byte>(std::stoul(mac_text.substr(i * 3, 2), nullptr, 16));
    }
    if (devcfg != UINT64_MAX) {
        const uint64_t base = bar4.offset + devcfg;
        bool ok1 = true;
        for (size_t i = 0; i < 6; ++i) {
            auto b = lread(dev, base + i, 1);
            ok1 = ok1 && b.size() == 1 && b[0] == mac[i];
        }
        report(ok1, "BAR read: 1-byte loads return each MAC byte");
        bool ok2 = true;
        for (size_t i = 0; i < 6; i += 2) {
            auto b = lread(dev, base + i, 2);
            ok2 = ok2 && b.size() == 2 && b[0] == mac[i] && b[1] == mac[i + 1];
        }
        report(ok2, "BAR read: 2-byte loads return MAC byte pairs");
        auto b4 = lread(dev, base, 4);
        report(b4.size() == 4 && std::equal(b4.begin(), b4.end(), mac.begin()),
               "BAR read: 4-byte load returns MAC bytes 0-3");
        auto b8 = lread(dev, base, 8);
        report(b8.size() == 8 && std::equal(mac.begin(), mac.end(), b8.begin()),
               "BAR read: 8-byte load returns the MAC in bytes 0-5");
        bool ok5 = true;
        for (size_t start = 1; start < 6; ++start) {
            for (size_t len = 1; start + len <= 6; ++len) {
                auto b = lread(dev, base + start, len);
                ok5 = ok5 && b.size() == len &&
                      std::equal(b.begin(), b.end(), mac.begin() + static_cast<long>(start));
            }
        }
        report(ok5, "BAR read: every unaligned span inside the MAC is exact");
    }

    // Store-block writes into the MSI-X table (BAR1 offset 0), read back with loads.
    auto z = dev.zpci_info();
    uint16_t stb = z && z->imaxstbl ? z->imaxstbl : 128;
    report(z && z->imaxstbl == 128,
           "zPCI group capability: store-block limit " + std::to_string(z ? z->imaxstbl : 0));
    for (size_t len : {size_t{16}, size_t{48}, size_t{stb}}) {
        std::vector<std::byte> pat(len);
        for (size_t i = 0; i < len; ++i) {
            pat[i] = static_cast<std::byte>((i * 7 + len) & 0xff);
        }
        const uint64_t off = len == 16 ? 0x80 : 0;
        auto w = dev.write(bar1.offset + off, pat);
        auto back = lread(dev, bar1.offset + off, len);
        std::vector<std::byte> expect = pat;
        if (order == "reversed") {
            for (size_t i = 0; i < len; i += 8) {
                std::reverse(expect.begin() + static_cast<long>(i),
                             expect.begin() + static_cast<long>(i + 8));
            }
        }
        char where[32];
        std::snprintf(where, sizeof where, " at 0x%llx", static_cast<unsigned long long>(off));
        report(w.has_value() && back == expect, "BAR write: one " + std::to_string(len) +
                                                    "-byte store-block" + where +
                                                    " reads back byte for byte (" + order + ")");
        if (back != expect) {
            std::printf("  wrote %s\n  read  %s\n", hex(pat).c_str(), hex(back).c_str());
        }
        // For the host's look at QEMU's trace: what the device must have received.
        std::printf("STB msix-table 0x%llx %s\n", static_cast<unsigned long long>(off),
                    hex(expect).c_str());
    }

    // Error returns, with errno from raw calls on the device fd.
    report(raw_write_errno(fd, bar1.offset, size_t{stb} + 8) == EINVAL,
           "BAR write longer than the store-block limit: EINVAL");
    report(!dev.write(bar1.offset, std::vector<std::byte>(size_t{stb} + 8)).has_value(),
           "libism write longer than the store-block limit fails");
    report(raw_write_errno(fd, bar4.offset + 0x1ff8, 16) == EINVAL,
           "BAR write crossing a 4 KiB boundary: EINVAL");
    report(raw_write_errno(fd, bar1.offset + bar1.size, 16) == EINVAL,
           "BAR write starting past the end: EINVAL");
    report(raw_write_errno(fd, bar1.offset + bar1.size - 8, 16) == EINVAL,
           "BAR write running past the end: EINVAL");
    {
        std::vector<std::byte> b(16);
        ssize_t n = pread(fd, b.data(), 16, static_cast<off_t>(bar1.offset + bar1.size));
        report(n < 0 && errno == EINVAL, "BAR read starting past the end: EINVAL");
        n = pread(fd, b.data(), 16, static_cast<off_t>(bar4.offset + bar4.size - 8));
        report(n == 8, "BAR read running past the end: shortened to 8 bytes (got " +
                           std::to_string(n) +
                           (n < 0 ? std::string(", ") + std::strerror(errno) : "") + ")");
        n = pread(fd, b.data(), 4, static_cast<off_t>(uint64_t{9} << kShift));
        report(n < 0 && errno == EINVAL, "read of unknown region index 9: EINVAL");
        n = pwrite(fd, b.data(), 16, static_cast<off_t>(uint64_t{9} << kShift));
        report(n < 0 && errno == EINVAL, "write of unknown region index 9: EINVAL");
    }
    {
        void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                       static_cast<off_t>(bar1.offset));
        report(p == MAP_FAILED, std::string("mmap of BAR1 refused: ") +
                                    (p == MAP_FAILED ? std::strerror(errno) : "mapped"));
        if (p != MAP_FAILED) {
            munmap(p, 4096);
        }
        vfio_device_ioeventfd ev{};
        ev.argsz = sizeof ev;
        ev.flags = VFIO_DEVICE_IOEVENTFD_32;
        ev.offset = bar1.offset;
        ev.data = 1;
        ev.fd = -1;
        int rc = ioctl(fd, VFIO_DEVICE_IOEVENTFD, &ev);
        report(rc < 0 && errno == ENOTTY, "VFIO_DEVICE_IOEVENTFD refused: ENOTTY");
    }
    return failures ? 1 : 0;
}

int openclose(const std::string& bdf, int n)
{
    int ok = 0;
    for (int i = 0; i < n; ++i) {
        auto d = ism::vfio::open_vfio_device(bdf);
        if (d && (*d)->region_info(1).has_value()) {
            ++ok;
        }
    }
    report(ok == n, "open and close through libism " + std::to_string(n) + " times (" +
                        std::to_string(ok) + " good)");
    return ok == n ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc == 5 && std::string(argv[1]) == "check") {
        return check(argv[2], argv[3], argv[4]);
    }
    if (argc == 4 && std::string(argv[1]) == "openclose") {
        return openclose(argv[2], std::atoi(argv[3]));
    }
    std::fprintf(stderr, "usage: kmod_guest check BDF MAC exact|reversed | openclose BDF N\n");
    return 2;
}
