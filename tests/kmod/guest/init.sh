#!/bin/busybox sh
# SPDX-License-Identifier: MIT
# /init of the kmod test guest (see tests/kmod/guest.sh): loads the vfio
# modules and ism_vfio_pci, binds the stand-in function by driver_override,
# runs kmod_guest, then unbinds/rebinds and opens/closes 100 times.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo 1 >/proc/sys/kernel/printk_ratelimit 2>/dev/null

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; }
check() {
    what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
done_() {
    echo GUEST-DONE
    poweroff -f
}

ok=1
for m in irqbypass vfio vfio_iommu_type1 vfio-pci-core ism_vfio_pci; do
    insmod /mod/$m.ko || { fail "insmod $m"; ok=0; }
done
[ $ok = 1 ] && pass "stock vfio modules and ism_vfio_pci loaded on $(uname -r)"

bdf=$(basename "$(ls -d /sys/bus/pci/devices/* | head -n1)")
dev=/sys/bus/pci/devices/$bdf
echo "NOTE: stand-in function $bdf vendor $(cat $dev/vendor) device $(cat $dev/device)"
cache=ism_vfio_pci-$bdf

bind() {
    [ -e $dev/driver ] && echo "$bdf" >$dev/driver/unbind
    echo ism_vfio_pci >$dev/driver_override
    echo "$bdf" >/sys/bus/pci/drivers_probe
    [ "$(basename "$(readlink $dev/driver)")" = ism_vfio_pci ]
}
unbind() {
    echo "$bdf" >/sys/bus/pci/drivers/ism_vfio_pci/unbind
    [ ! -e $dev/driver ]
}
has_cache() { grep -q "^$cache " /proc/slabinfo; }
# An unsigned module taints the kernel: expected, not a warning.
dmesg_clean() {
    ! dmesg | grep -v 'module verification failed' |
        grep -E 'WARNING|BUG|Oops|Call Trace|leak|ism_vfio_pci.*(error|fail)'
}

check "bound $bdf to ism_vfio_pci by driver_override" bind
group=$(basename "$(readlink $dev/iommu_group)")
check "/dev/vfio/$group appeared" [ -e /dev/vfio/$group ]
check "per-device store-block cache $cache in /proc/slabinfo" has_cache

/bin/kmod_guest check "$bdf" @MAC@ @STB_ORDER@

slab_caches() { tail -n +3 /proc/slabinfo | wc -l; }
slab_objs() { tail -n +3 /proc/slabinfo | awk '{ s += $2 } END { print s }'; }

# Warm up once so that first-time allocations do not count as growth.
unbind && bind
caches0=$(slab_caches)
objs0=$(slab_objs)
gone=0
back=0
i=0
while [ $i -lt 100 ]; do
    unbind && ! has_cache && gone=$((gone + 1))
    bind && has_cache && back=$((back + 1))
    i=$((i + 1))
done
check "unbind removed the per-device cache from /proc/slabinfo 100 of 100 times ($gone)" [ $gone = 100 ]
check "rebind brought it back 100 of 100 times ($back)" [ $back = 100 ]
caches1=$(slab_caches)
objs1=$(slab_objs)
echo "NOTE: slab caches $caches0 -> $caches1, active objects $objs0 -> $objs1"
check "slab cache count flat over 100 unbind/rebind ($caches0 -> $caches1)" [ "$caches0" = "$caches1" ]
check "active slab objects flat over 100 unbind/rebind ($objs0 -> $objs1, < 100 more)" \
    [ $((objs1 - objs0)) -lt 100 ]

/bin/kmod_guest openclose "$bdf" 1
objs0=$(slab_objs)
/bin/kmod_guest openclose "$bdf" 100
objs1=$(slab_objs)
echo "NOTE: active objects over 100 open/close: $objs0 -> $objs1"
check "active slab objects flat over 100 open/close ($objs0 -> $objs1, < 100 more)" \
    [ $((objs1 - objs0)) -lt 100 ]
check "ism_vfio_pci unloads" rmmod ism_vfio_pci
check "per-device cache gone after unload" eval '! has_cache'
check "no warnings in dmesg" dmesg_clean
done_
