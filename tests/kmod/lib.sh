# SPDX-License-Identifier: MIT
# Shared by the kmod test scripts: paths, tool checks, PASS/FAIL reporting.
# A missing tool or download skips (exit 77) unless CI=true, where it fails.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${ISM_KMOD_CACHE:-$HOME/.cache/ismd-kmod}
work=${ISM_KMOD_WORK:-${TMPDIR:-/tmp}/ismd-kmod-$$}
fails=0
passes=0

unavailable() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $*"
        exit 1
    fi
    echo "SKIP: $*"
    exit 77
}

require() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || unavailable "missing tool $t (tools/install-deps)"
    done
}

pass() { echo "PASS: $*"; passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

finish() {
    # Not "N passed, N failed": that form is tools/check's closing line, which CI reads.
    echo "kmod checks: $passes passed / $fails failed"
    [ "$fails" -eq 0 ]
}

# fetch KERNEL...: downloads (or finds in the cache) what the kernels need.
fetch() {
    ISM_KMOD_CACHE=$cache "$top/tools/kmod-fetch" "$@" >"$work/fetch.log" 2>&1 || {
        cat "$work/fetch.log"
        unavailable "could not fetch $* (tools/kmod-fetch)"
    }
}

headers_dir() { ls -d "$cache/$1"/usr/src/linux-headers-*-s390x; }
