#!/bin/sh
# SQL injection, bulkhead next to libinjection 3.10.0 on the same values in one run:
# the shared corpora and the held-out sets (docs/BENCHMARKS.md, "SQL injection next to
# libinjection"). Installs libinjection-python from PyPI into a venv (apt-get installs
# python3-venv, python3-dev and gcc when missing; PyPI must be reachable); the held-out
# wfuzz/wapiti lists need Debian's wfuzz and wapiti packages (skipped when missing, like
# tests/heldout.rs).
#
#   crates/sensor/bench/libinjection.sh [--show]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
corpora=${BULKHEAD_CORPORA:-$(cd "$root/.." && pwd)/shared/corpora}
venv=${BULKHEAD_LIBINJECTION_VENV:-/var/cache/bulkhead-libinjection-venv}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! "$venv/bin/python" -c 'import libinjection' 2>/dev/null; then
    # The wrapper is built from source: a venv, Python's headers and a C compiler.
    if ! python3 -c 'import ensurepip, sysconfig, os; assert os.path.exists(sysconfig.get_path("include") + "/Python.h")' 2>/dev/null \
        || ! command -v cc >/dev/null; then
        apt-get install -y -q python3-venv python3-dev gcc >/dev/null
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'libinjection-python==1.1.6'
fi
cd "$root"
cargo run -q --release -p bulkhead-sensor --example verdicts -- "$corpora" > "$work/verdicts.tsv"
BULKHEAD_HELDOUT_DUMP="$work/heldout.tsv" cargo test -q --release -p bulkhead-sensor --test heldout >/dev/null
"$venv/bin/python" "$here/libinjection_side_by_side.py" "$corpora" "$work/verdicts.tsv" "$work/heldout.tsv" "$@"
