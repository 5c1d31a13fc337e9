#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# checkpatch.pl --strict (from Debian's linux-source-6.1) over kmod/: expects
# 0 errors, 0 warnings, 0 checks for every file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$work"
trap '[ -n "${ISM_KMOD_WORK:-}" ] || rm -rf "$work"' EXIT

require perl apt-get dpkg xz
fetch deb61
cp_dir=$cache/deb61-src/scripts
for f in main.c Kbuild Makefile; do
    res=$(perl "$cp_dir/checkpatch.pl" --strict --no-tree -f "$top/kmod/$f" 2>&1 || true)
    sum=$(grep '^total:' <<<"$res" || true)
    if [[ $sum == "total: 0 errors, 0 warnings, 0 checks"* ]]; then
        pass "checkpatch --strict kmod/$f: $sum"
    else
        echo "$res"
        fail "checkpatch --strict kmod/$f: ${sum:-no summary}"
    fi
done
finish
