#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Cross-builds kmod/ for one of Debian's s390x kernels with W=1 (and sparse
# where Debian 12's sparse can parse the kernel's headers), checks that the
# vfio API probes chose the expected branches and that modpost found every
# symbol.  Usage: build.sh bpo612|sid|deb61 [OUTDIR]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kernel=$1
out=${2:-$work/$kernel}
mkdir -p "$work" "$out"
trap '[ -n "${ISM_KMOD_WORK:-}" ] || rm -rf "$work"' EXIT

require make s390x-linux-gnu-gcc-12 gcc perl apt-get dpkg xz pahole
fetch "$kernel"

hdr=$(headers_dir "$kernel")
kmake=(make -C "$hdr" ARCH=s390 CROSS_COMPILE=s390x-linux-gnu- -j2)
sparse=C=1
case $kernel in
bpo612)
    expect="DETACH_IOAS IOMMUFD_OPS KMEM_CACHE_ARGS"
    ;;
sid)
    # Debian 12's GCC 12 stands in for sid's GCC 16 (tools/kmod-cc); its
    # pahole is too old for sid's BTF flags, so the module gets no BTF.
    # Debian 12's sparse 0.6.4 cannot parse 7.2's headers (__typeof_unqual__).
    kmake+=(CC="$top/tools/kmod-cc" CONFIG_DEBUG_INFO_BTF_MODULES=)
    sparse=
    echo "NOTE: sid: no sparse (Debian 12's sparse 0.6.4 predates 7.2's headers)"
    expect="DETACH_IOAS GET_REGION_INFO_CAPS IOMMUFD_OPS KMEM_CACHE_ARGS MATCH_TOKEN_UUID"
    ;;
deb61)
    expect=""
    # Debian's 6.1 s390x kernel is built without VFIO: build vfio from the
    # same version's source against the same headers, for its symbols.
    vfio=$out/vfio
    rm -rf "$vfio" "$out/irqbypass"
    cp -r "$cache/deb61-src/drivers/vfio" "$vfio"
    cp -r "$cache/deb61-src/virt/lib" "$out/irqbypass"
    if "${kmake[@]}" M="$out/irqbypass" CONFIG_IRQ_BYPASS_MANAGER=m modules >"$out/vfio-build.log" 2>&1 &&
        "${kmake[@]}" M="$vfio" KBUILD_EXTRA_SYMBOLS="$out/irqbypass/Module.symvers" CONFIG_VFIO=m CONFIG_VFIO_VIRQFD=m CONFIG_VFIO_IOMMU_TYPE1=m \
        CONFIG_VFIO_PCI=m CONFIG_VFIO_PCI_CORE=m CONFIG_VFIO_PCI_INTX=y CONFIG_VFIO_PCI_MMAP=y \
        modules >>"$out/vfio-build.log" 2>&1; then
        pass "$kernel: out-of-tree vfio from linux-source-6.1 built"
    else
        tail -30 "$out/vfio-build.log"
        fail "$kernel: out-of-tree vfio from linux-source-6.1 built"
        finish
        exit 1
    fi
    kmake+=(KBUILD_EXTRA_SYMBOLS="$out/irqbypass/Module.symvers $vfio/Module.symvers")
    ;;
*)
    echo "usage: $0 bpo612|sid|deb61" >&2
    exit 2
    ;;
esac

src=$out/src
rm -rf "$src"
mkdir -p "$src"
cp "$top"/kmod/main.c "$top"/kmod/Kbuild "$src/"
log=$out/build.log
if "${kmake[@]}" M="$src" W=1 $sparse modules >"$log" 2>&1; then
    pass "$kernel: ism_vfio_pci.ko built ($(cat "$cache/$kernel/.release"))"
else
    cat "$log"
    fail "$kernel: ism_vfio_pci.ko built"
    finish
    exit 1
fi
# Compiler, sparse and modpost complaints; kbuild's note that the host's
# pahole is older than the kernel's is not about our code.
complaints=$(grep -Ei 'warning|error|undefined' "$log" |
    grep -v '^warning: pahole version differs' || true)
if [ -z "$complaints" ]; then
    pass "$kernel: W=1${sparse:+ and sparse} clean, modpost found every symbol"
else
    echo "$complaints"
    fail "$kernel: W=1${sparse:+ and sparse} clean, modpost found every symbol"
fi
got=$(grep -o 'ISM_VFIO_PCI_HAVE_[A-Z_]*' "$src/.main.o.cmd" | sed 's/ISM_VFIO_PCI_HAVE_//' | sort -u | xargs || true)
check "$kernel: vfio API probes found [$got], expected [$expect]" [ "$got" = "$expect" ]
vm=$(modinfo -F vermagic "$src/ism_vfio_pci.ko" | awk '{ print $1 }')
check "$kernel: vermagic $vm matches $(cat "$cache/$kernel/.release")" [ "$vm" = "$(cat "$cache/$kernel/.release")" ]
cp "$src/ism_vfio_pci.ko" "$out/"
finish
