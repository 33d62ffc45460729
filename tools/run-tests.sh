#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds Veil and runs every test suite:
# unit (no EAL), dataplane (DPDK net_ring ports) and e2e (network namespaces, real peers).
# Needs root: DPDK and network namespaces. Extra arguments go to `meson test`
# (e.g. --suite unit). Prints "tests: N passed, N failed" last.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
[ "$(id -u)" = 0 ] || { echo "run-tests: needs root (DPDK, network namespaces)" >&2; exit 2; }

tools/install-deps.sh
BUILD=${VEIL_BUILD:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD"
fi
ninja -C "$BUILD"

set +e
meson test -C "$BUILD" --print-errorlogs --num-processes "$(nproc)" "$@"
rc=$?
set -e
# One closing line counting every test case (gtest cases and e2e scenarios, as meson's
# JUnit report lists them).
python3 - "$BUILD/meson-logs/testlog.junit.xml" <<'PY' || true
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception as e:
    print("run-tests: no JUnit report (%s)" % e)
    sys.exit(0)
passed = failed = skipped = 0
for tc in root.iter('testcase'):
    if tc.find('failure') is not None or tc.find('error') is not None:
        failed += 1
    elif tc.find('skipped') is not None:
        skipped += 1
    else:
        passed += 1
line = "tests: %d passed, %d failed" % (passed, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
PY
exit $rc
