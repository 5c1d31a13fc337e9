#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Boots one of Debian's s390x kernels (bpo612 or sid) under qemu-system-s390x
# (TCG) with a stand-in PCI function, loads the stock vfio modules and the
# module built for that kernel, binds the function by driver_override and runs
# tests/kmod/guest/kmod_guest.cpp (libism's real VFIO code, static s390x)
# against it, then unbinds/rebinds and opens/closes it 100 times watching
# /proc/slabinfo and dmesg.  The guest prints PASS/FAIL lines on the console.
#
# The stand-in: virtio-net-pci's MSI-X table (BAR1, 4/8-byte accesses only)
# takes the store-block writes; its device configuration in BAR4 (the MAC)
# serves the 1/2-byte and unaligned loads.  QEMU 7.2's PCISTB emulation under
# TCG on a little-endian host reverses the bytes of every 8-byte word, so with
# stock QEMU the guest expects exactly that reversal, and the host checks in
# QEMU's trace that the device received those bytes.
# Usage: guest.sh bpo612|sid
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kernel=$1
mkdir -p "$work"
trap '[ -n "${ISM_KMOD_WORK:-}" ] || rm -rf "$work"' EXIT

require qemu-system-s390x s390x-linux-gnu-g++ cpio gzip xz timeout make s390x-linux-gnu-gcc-12 pahole
[ -f /usr/include/tl/expected.hpp ] || unavailable "missing /usr/include/tl/expected.hpp (libexpected-dev)"

# The module, built (and checked) for this kernel.
bash "$top/tests/kmod/build.sh" "$kernel" "$work/build" >"$work/build.out" 2>&1 || {
    cat "$work/build.out"
    [ -f "$work/build/ism_vfio_pci.ko" ] || { echo "FAIL: $kernel: module build"; exit 1; }
}
rel=$(cat "$cache/$kernel/.release")
root=$cache/$kernel

# The guest program, from libism's VFIO device-file code.
prog=$work/kmod_guest
if s390x-linux-gnu-g++ -std=c++20 -static -O2 -I"$top/libism/include" -I"$top/libism/src" \
    "$top/tests/kmod/guest/kmod_guest.cpp" "$top"/libism/src/vfio/*.cpp "$top/libism/src/errors.cpp" \
    -o "$prog" >"$work/g++.log" 2>&1; then
    pass "guest program built from libism/src/vfio (static s390x)"
else
    cat "$work/g++.log"
    fail "guest program built from libism/src/vfio (static s390x)"
    finish
    exit 1
fi

# Initramfs: busybox, the stock vfio modules, ours, the program, /init.
ird=$work/initramfs
mkdir -p "$ird"/{bin,sbin,proc,sys,dev,tmp,mod}
cp "$cache/busybox/bin/busybox" "$ird/bin/busybox"
for m in virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_iommu_type1 drivers/vfio/pci/vfio-pci-core; do
    f=$(ls "$root"/{lib,usr/lib}/modules/"$rel"/kernel/$m.ko* 2>/dev/null | head -n1 || true)
    [ -n "$f" ] || { echo "FAIL: $kernel: module $m not in the image package"; exit 1; }
    case $f in
    *.xz) xz -dc "$f" >"$ird/mod/$(basename "$m").ko" ;;
    *) cp "$f" "$ird/mod/" ;;
    esac
done
cp "$work/build/ism_vfio_pci.ko" "$ird/mod/"
cp "$prog" "$ird/bin/kmod_guest"
mac=52:54:00:12:34:56
cp "$top/tests/kmod/guest/init.sh" "$ird/init"
sed -i "s/@MAC@/$mac/; s/@STB_ORDER@/reversed/" "$ird/init"
chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.cpio.gz"

vmlinuz=$(ls "$root"/boot/vmlinuz-"$rel" "$root"/usr/lib/modules/"$rel"/vmlinuz 2>/dev/null | head -n1 || true)
echo "NOTE: $kernel: stock QEMU $(qemu-system-s390x --version | head -n1 | awk '{ print $4 }'):" \
    "store-block data is expected with every 8-byte word reversed (QEMU PCISTB bug under TCG)"
console=$work/console.log
start=$(date +%s)
timeout 600 qemu-system-s390x -M s390-ccw-virtio -cpu max -m 1024 -smp 1 -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd "$work/initramfs.cpio.gz" \
    -append "console=ttysclp0 panic=-1 quiet" -nic none \
    -device virtio-net-pci,vectors=16,disable-legacy=on,romfile=,mac=$mac \
    -trace "enable=memory_region_ops_write,file=$work/trace.log" \
    </dev/null >"$console" 2>&1 || true
echo "NOTE: $kernel: guest ran $(($(date +%s) - start)) s"
tr -d '\r' <"$console" | grep -E '^(PASS|FAIL|NOTE|SKIP|  )' || true
grep -E '^(\[|.*(WARNING|BUG|Oops|Call Trace))' "$console" | tr -d '\r' | tail -n 40 || true

guest_pass=$(tr -d '\r' <"$console" | grep -c '^PASS: ' || true)
guest_fail=$(tr -d '\r' <"$console" | grep -c '^FAIL: ' || true)
passes=$((passes + guest_pass))
fails=$((fails + guest_fail))
check "$kernel: guest reached its end (GUEST-DONE)" grep -q '^GUEST-DONE' <(tr -d '\r' <"$console")
# Every check in init.sh and kmod_guest.cpp prints one line: a missing PASS
# (a crash, a check skipped) fails the test as surely as a FAIL does.
expected_pass=45
check "$kernel: guest reported all $expected_pass PASS lines (got $guest_pass)" [ "$guest_pass" -eq "$expected_pass" ]

# Host side: what the MSI-X table received, rebuilt from QEMU's trace.
python3 - "$work/trace.log" <(tr -d '\r' <"$console" | grep '^STB ') <<'PY' && pass "$kernel: QEMU trace shows the device received the store-block bytes" || fail "$kernel: QEMU trace shows the device received the store-block bytes"
import re, sys
mem = {}
pat = re.compile(r"memory_region_ops_write .*addr (0x[0-9a-f]+) value (0x[0-9a-f]+) size (\d+) name 'msix-table'")
seen = 0
for line in open(sys.argv[1], errors="replace"):
    m = pat.search(line)
    if not m:
        continue
    addr, value, size = int(m[1], 16), int(m[2], 16), int(m[3])
    for i in range(size):  # the MSI-X table is little-endian
        mem[addr + i] = (value >> (8 * i)) & 0xff
    seen += 1
ok = True
checked = 0
for line in open(sys.argv[2]):
    _, name, off, data = line.split()
    off = int(off, 16)
    want = bytes.fromhex(data)
    if any((off + i) not in mem for i in range(len(want))):
        print(f"  trace: no writes seen at msix-table 0x{off:x}+{len(want)}")
        ok = False
    checked += 1
print(f"  trace: {seen} msix-table writes, {checked} store-blocks listed")
# Later store-blocks overlap earlier ones: compare the final table with the last writer.
final = {}
for line in open(sys.argv[2]):
    _, name, off, data = line.split()
    for i, b in enumerate(bytes.fromhex(data)):
        final[int(off, 16) + i] = b
bad = [a for a, b in final.items() if mem.get(a) != b]
if bad:
    print(f"  trace: {len(bad)} bytes differ, first at 0x{min(bad):x}")
    ok = False
sys.exit(0 if ok and checked >= 3 else 1)
PY
finish
