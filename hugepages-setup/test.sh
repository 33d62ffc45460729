#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Tests for hugepages.sh and bind-nic.sh.
#
#   hugepages-setup/test.sh          fake sysfs trees only: changes nothing on the host
#   hugepages-setup/test.sh --real   also reserves 64 x 2M hugepages for real (root), checks
#                                    status/idempotence/release, and leaves the pool as it was
#
# bind-nic.sh is tested against a fake /sys whose .kernel script plays the kernel's part
# (driver_override, unbind, drivers_probe, bind); real NIC binding needs real hardware.
set -uo pipefail
shopt -s nullglob

HERE=$(cd "$(dirname "$0")" && pwd)
HP=$HERE/hugepages.sh
NIC=$HERE/bind-nic.sh
REAL=0
[[ ${1:-} == --real ]] && REAL=1

TMP=$(mktemp -d /tmp/veil-hugepages-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok    %s\n' "$1"; }
bad() { fail=$((fail + 1)); printf 'FAIL  %s\n' "$1"; [[ -z ${2:-} ]] || printf '%s\n' "$2" | sed 's/^/      /'; }

# expect NAME RC COMMAND...: run COMMAND, check its exit code; output kept in $out.
out=""
expect() {
  local name=$1 want=$2 got
  shift 2
  out=$("$@" 2>&1)
  got=$?
  if ((got == want)); then ok "$name (exit $got)"; else bad "$name: exit $got, expected $want" "$out"; fi
}
check() { # NAME COMMAND...: passes when COMMAND succeeds
  local name=$1
  shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
absent() { [[ ! -e $1 ]]; }
contains() { if grep -qF -- "$2" <<<"$out"; then ok "$1"; else bad "$1: output lacks '$2'" "$out"; fi; }
file_is() {
  local v
  v=$(cat "$2" 2>/dev/null)
  if [[ $v == "$3" ]]; then ok "$1"; else bad "$1: $2 is '$v', expected '$3'"; fi
}

if command -v shellcheck >/dev/null 2>&1; then
  expect "shellcheck" 0 shellcheck -x -P "$(dirname "$HP")/.." "$HP" "$NIC" "$0"
else
  printf 'skip  shellcheck (not installed)\n'
fi

# ---- hugepages.sh on a fake two-node sysfs ------------------------------------------------------
F=$TMP/hsys
for p in kernel/mm/hugepages/hugepages-2048kB devices/system/node/node0/hugepages/hugepages-2048kB \
  devices/system/node/node1/hugepages/hugepages-2048kB; do
  mkdir -p "$F/$p"
  for f in nr_hugepages free_hugepages surplus_hugepages; do echo 0 >"$F/$p/$f"; done
done
echo 0 >"$F/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages"
mkdir -p "$F/bus/pci/devices/0000:03:00.0" "$F/devices/system/cpu/cpu0/node0" "$F/devices/system/cpu/cpu1/node1"
echo 1 >"$F/bus/pci/devices/0000:03:00.0/numa_node"
N0=$F/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages
N1=$F/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages
export VEIL_SYSFS_ROOT=$F VEIL_HUGEPAGES_STATE=$TMP/hp.state VEIL_HUGEPAGES_LOCK=$TMP/hp.lock

expect "hugepages: usage error" 2 "$HP" reserve
expect "hugepages: unsupported size" 4 "$HP" reserve --size 1G --count 1 --no-mount
expect "hugepages: unknown node" 2 "$HP" reserve --size 2M --count 1 --node 7 --no-mount
expect "hugepages: --node all" 0 "$HP" reserve --size 2M --count 8 --node all --no-mount
file_is "hugepages: node0 has 8" "$N0" 8
file_is "hugepages: node1 has 8" "$N1" 8
expect "hugepages: reserve again is a no-op" 0 "$HP" reserve --size 2M --count 8 --node all --no-mount
contains "hugepages: says already reserved" "already reserved"
expect "hugepages: status" 0 "$HP" status
contains "hugepages: status shows the state" "nr_hugepages 0 -> 8"
expect "hugepages: release" 0 "$HP" release
file_is "hugepages: node0 back to 0" "$N0" 0
file_is "hugepages: node1 back to 0" "$N1" 0
check "hugepages: state file removed" absent "$VEIL_HUGEPAGES_STATE"
expect "hugepages: release with nothing recorded" 0 "$HP" release

# The kernel grants nothing on node1 (nr_hugepages reads back empty): node0 must be rolled back.
rm "$N1"
ln -s /dev/null "$N1"
expect "hugepages: fewer pages granted" 5 "$HP" reserve --size 2M --count 8 --node all --no-mount
contains "hugepages: reports the granted count" "asked for 8 x 2M, the kernel granted 0"
file_is "hugepages: node0 rolled back" "$N0" 0
check "hugepages: no state after rollback" absent "$VEIL_HUGEPAGES_STATE"
rm "$N1"
echo 0 >"$N1"

cat >"$TMP/veil.toml" <<'EOF'
[dataplane]
hugepages = true
memory_mb = 100   # MiB
[cores]
control = 1
workers = [1]
[[port]]
name = "ext0"
pci = "0000:03:00.0"
EOF
expect "hugepages: --config picks the NIC's node" 0 "$HP" reserve --config "$TMP/veil.toml" --size 2M --no-mount
file_is "hugepages: node1 has memory_mb/2M pages" "$N1" 50
file_is "hugepages: node0 untouched" "$N0" 0
expect "hugepages: release (config)" 0 "$HP" release
cat >"$TMP/inline.toml" <<'EOF'
dataplane = { hugepages = true, memory_mb = 64 }
cores.control = 0
cores.workers = [1]
port = [
  { name = "ext0", role = "external", pci = "0000:03:00.0" },
]
EOF
expect "hugepages: inline tables, cores on another node" 0 "$HP" reserve --config "$TMP/inline.toml" --size 2M --no-mount
contains "hugepages: warns about the NUMA layout" "the NICs are on NUMA node(s) 1 but the cores on 0 1"
file_is "hugepages: control core's node0 gets pages" "$N0" 32
file_is "hugepages: NIC's node1 gets pages" "$N1" 32
expect "hugepages: release (inline)" 0 "$HP" release
expect "hugepages: reserve for the release-with-others test" 0 "$HP" reserve --config "$TMP/veil.toml" --size 2M --no-mount
echo 60 >"$N1" # someone else adds 10 pages meanwhile
expect "hugepages: release keeps pages added by others" 0 "$HP" release
file_is "hugepages: node1 keeps the other 10" "$N1" 10
echo 0 >"$N1"
sed 's/hugepages = true/hugepages = false/' "$TMP/veil.toml" >"$TMP/nohuge.toml"
expect "hugepages: hugepages = false does nothing" 0 "$HP" reserve --config "$TMP/nohuge.toml" --no-mount
contains "hugepages: says --no-huge" "no-huge"
printf '[dataplane]\nhugepages = maybe\n' >"$TMP/bad.toml"
expect "hugepages: invalid config" 7 "$HP" reserve --config "$TMP/bad.toml" --no-mount
unset VEIL_SYSFS_ROOT VEIL_HUGEPAGES_STATE VEIL_HUGEPAGES_LOCK

# ---- bind-nic.sh on a fake sysfs with a fake kernel ---------------------------------------------
S=$TMP/nsys
mkdev() { # PCI CLASS NATIVE_DRIVER IFACE GROUP
  local d=$S/bus/pci/devices/$1
  mkdir -p "$d"
  echo "$2" >"$d/class"
  echo 0x8086 >"$d/vendor"
  echo 0x10fb >"$d/device"
  echo 0 >"$d/numa_node"
  echo "(null)" >"$d/driver_override"
  echo "$3" >"$d/.native"
  echo "$4" >"$d/.ifname"
  ln -s "$S/bus/pci/drivers/$3" "$d/driver"
  [[ $4 == - ]] || mkdir -p "$d/net/$4"
  if [[ $5 != - ]]; then
    mkdir -p "$S/kernel/iommu_groups/$5/devices"
    ln -s "$d" "$S/kernel/iommu_groups/$5/devices/$1"
    ln -s "$S/kernel/iommu_groups/$5" "$d/iommu_group"
  fi
}
for drv in ixgbe vfio-pci ahci; do
  mkdir -p "$S/bus/pci/drivers/$drv"
  : >"$S/bus/pci/drivers/$drv/bind"
  : >"$S/bus/pci/drivers/$drv/unbind"
done
: >"$S/bus/pci/drivers_probe"
mkdir -p "$S/module/vfio/parameters"
echo N >"$S/module/vfio/parameters/enable_unsafe_noiommu_mode"
mkdev 0000:03:00.0 0x020000 ixgbe vtest0 12
mkdev 0000:03:00.1 0x020000 ixgbe vtest1 12
mkdev 0000:00:1f.2 0x010601 ahci - 3
# The kernel's part: what writing to driver_override / unbind / bind / drivers_probe does.
cat >"$S/.kernel" <<'EOF'
#!/usr/bin/env bash
S=$(cd "$(dirname "$0")" && pwd)
file=$1 val=$2
attach() { # PCI DRIVER
  local d=$S/bus/pci/devices/$1 ov
  [[ -e $d/driver ]] && return 0
  ov=$(cat "$d/driver_override")
  [[ $ov == "(null)" || -z $ov || $ov == "$2" ]] || return 0
  [[ -d $S/bus/pci/drivers/$2 ]] || return 0
  [[ $2 == vfio-pci && -e $S/.refuse_vfio ]] && return 0
  ln -s "$S/bus/pci/drivers/$2" "$d/driver"
  [[ $2 == vfio-pci || $(cat "$d/.ifname") == - ]] || mkdir -p "$d/net/$(cat "$d/.ifname")"
}
case $file in
  */driver_override) [[ -n $val ]] || echo "(null)" >"$file" ;;
  */driver/unbind) rm -f "$S/bus/pci/devices/$val/driver"; rm -rf "$S/bus/pci/devices/$val/net" ;;
  */drivers_probe)
    d=$S/bus/pci/devices/$val
    ov=$(cat "$d/driver_override")
    if [[ $ov == "(null)" || -z $ov ]]; then attach "$val" "$(cat "$d/.native")"; else attach "$val" "$ov"; fi ;;
  */drivers/*/bind) drv=${file%/bind}; attach "$val" "${drv##*/}" ;;
esac
EOF
chmod +x "$S/.kernel"
export VEIL_SYSFS_ROOT=$S VEIL_NIC_STATE=$TMP/nic.state VEIL_NIC_LOCK=$TMP/nic.lock
drv_of() { basename "$(readlink "$S/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }
is_drv() { if [[ $(drv_of "$2") == "$3" ]]; then ok "$1"; else bad "$1: $2 is on '$(drv_of "$2")', expected '$3'"; fi; }

expect "bind-nic: list" 0 "$NIC" list
contains "bind-nic: list shows the NIC" "0000:03:00.0"
if grep -q 1f.2 <<<"$out"; then bad "bind-nic: list hides non-network devices"; else ok "bind-nic: list hides non-network devices"; fi
expect "bind-nic: list --all" 0 "$NIC" list --all
contains "bind-nic: list --all shows everything" "0000:00:1f.2"
expect "bind-nic: no such device" 4 "$NIC" bind 0000:99:00.0
expect "bind-nic: malformed address" 2 "$NIC" bind 3:0
expect "bind-nic: refuses a non-network device" 5 "$NIC" bind 0000:00:1f.2
is_drv "bind-nic: SATA controller untouched" 0000:00:1f.2 ahci
# Interfaces in use: a network namespace of our own with a veth pair, vt0 up with an address and
# a route, vt1 up with only a link-local address; bind-nic.sh runs inside it.
NS=veil-hp-test-$$
if [[ $EUID -eq 0 ]] && ip netns add "$NS" 2>/dev/null; then
  trap 'ip netns del "$NS" 2>/dev/null; rm -rf "$TMP"' EXIT
  ip -n "$NS" link add vt0 type veth peer name vt1 &&
    ip -n "$NS" addr add 203.0.113.1/24 dev vt0 &&
    ip -n "$NS" link set vt0 up && ip -n "$NS" link set vt1 up
  mkdev 0000:05:00.0 0x020000 ixgbe vt0 20
  mkdev 0000:06:00.0 0x020000 ixgbe vt1 21
  expect "bind-nic: refuses an interface that is up with addresses" 5 ip netns exec "$NS" "$NIC" bind 0000:05:00.0
  contains "bind-nic: says which addresses" "up with addresses 203.0.113.1/24"
  contains "bind-nic: says which routes" "carries routes (203.0.113.0/24"
  is_drv "bind-nic: refused device untouched" 0000:05:00.0 ixgbe
  expect "bind-nic: list marks it in use" 0 ip netns exec "$NS" "$NIC" list
  contains "bind-nic: list says in use" "vt0 in use (addresses, routes)"
  expect "bind-nic: --dry-run --force changes nothing" 0 ip netns exec "$NS" "$NIC" bind --dry-run --force 0000:05:00.0
  contains "bind-nic: dry-run prints the writes" "would write 'vfio-pci'"
  is_drv "bind-nic: dry-run left it alone" 0000:05:00.0 ixgbe
  expect "bind-nic: --force binds it anyway" 0 ip netns exec "$NS" "$NIC" bind --force 0000:05:00.0
  is_drv "bind-nic: forced onto vfio-pci" 0000:05:00.0 vfio-pci
  expect "bind-nic: link-local only is not in use" 0 ip netns exec "$NS" "$NIC" bind 0000:06:00.0
  is_drv "bind-nic: vt1 device on vfio-pci" 0000:06:00.0 vfio-pci
  expect "bind-nic: unbind both" 0 ip netns exec "$NS" "$NIC" unbind 0000:05:00.0 0000:06:00.0
  is_drv "bind-nic: vt0 device back" 0000:05:00.0 ixgbe
  is_drv "bind-nic: vt1 device back" 0000:06:00.0 ixgbe
  ip netns del "$NS"
  rm -rf "$S/bus/pci/devices/0000:05:00.0" "$S/bus/pci/devices/0000:06:00.0" \
    "$S/kernel/iommu_groups/20" "$S/kernel/iommu_groups/21"
else
  printf 'skip  in-use checks (need root and ip netns)\n'
fi
expect "bind-nic: bind" 0 "$NIC" bind 0000:03:00.0
contains "bind-nic: warns about the shared IOMMU group" "IOMMU group 12 also holds 0000:03:00.1"
is_drv "bind-nic: on vfio-pci" 0000:03:00.0 vfio-pci
file_is "bind-nic: previous driver saved" "$VEIL_NIC_STATE" "$(printf '# Written by bind-nic.sh bind; read by "bind-nic.sh unbind". Do not edit.\n0000:03:00.0 ixgbe vtest0')"
expect "bind-nic: bind again is a no-op" 0 "$NIC" bind 03:00.0
contains "bind-nic: says already bound" "already bound"
expect "bind-nic: list after bind" 0 "$NIC" list
contains "bind-nic: list marks the DPDK port" "DPDK (vfio-pci), was ixgbe"
expect "bind-nic: unbind" 0 "$NIC" unbind 0000:03:00.0
is_drv "bind-nic: back on ixgbe" 0000:03:00.0 ixgbe
check "bind-nic: interface is back" test -d "$S/bus/pci/devices/0000:03:00.0/net/vtest0"
check "bind-nic: state file removed" absent "$VEIL_NIC_STATE"
printf '[[port]]\nname = "a"\npci = "0000:03:00.0"  # ext\n[[port]]\nname = "b"\npci = "0000:03:00.1"\n' >"$TMP/nic.toml"
expect "bind-nic: bind --config (whole IOMMU group)" 0 "$NIC" bind --config "$TMP/nic.toml"
is_drv "bind-nic: port a on vfio-pci" 0000:03:00.0 vfio-pci
is_drv "bind-nic: port b on vfio-pci" 0000:03:00.1 vfio-pci
if grep -q "also holds" <<<"$out"; then bad "bind-nic: no group warning when the whole group is bound"; else ok "bind-nic: no group warning when the whole group is bound"; fi
expect "bind-nic: unbind --all" 0 "$NIC" unbind --all
is_drv "bind-nic: a back" 0000:03:00.0 ixgbe
is_drv "bind-nic: b back" 0000:03:00.1 ixgbe
touch "$S/.refuse_vfio"
expect "bind-nic: kernel refuses vfio-pci" 8 "$NIC" bind 0000:03:00.0
is_drv "bind-nic: put back on ixgbe" 0000:03:00.0 ixgbe
check "bind-nic: no state after failed bind" absent "$VEIL_NIC_STATE"
rm "$S/.refuse_vfio"
mv "$S/kernel/iommu_groups" "$TMP/groups"
expect "bind-nic: no IOMMU" 6 "$NIC" bind 0000:03:00.0
is_drv "bind-nic: untouched without IOMMU" 0000:03:00.0 ixgbe
expect "bind-nic: --noiommu" 0 "$NIC" bind --noiommu 0000:03:00.0
file_is "bind-nic: no-IOMMU mode turned on" "$S/module/vfio/parameters/enable_unsafe_noiommu_mode" Y
is_drv "bind-nic: bound in no-IOMMU mode" 0000:03:00.0 vfio-pci
expect "bind-nic: unbind (no-IOMMU)" 0 "$NIC" unbind 0000:03:00.0
mv "$TMP/groups" "$S/kernel/iommu_groups"
echo N >"$S/module/vfio/parameters/enable_unsafe_noiommu_mode"
mv "$S/bus/pci/drivers/vfio-pci" "$TMP/vfio-pci"
if ! modprobe -n vfio_pci >/dev/null 2>&1; then
  expect "bind-nic: vfio-pci unavailable" 7 "$NIC" bind 0000:03:00.0
  is_drv "bind-nic: untouched without vfio-pci" 0000:03:00.0 ixgbe
fi
mv "$TMP/vfio-pci" "$S/bus/pci/drivers/vfio-pci"
unset VEIL_SYSFS_ROOT VEIL_NIC_STATE VEIL_NIC_LOCK

# The real sysfs: only read-only checks and a device that does not exist.
expect "bind-nic: list (real sysfs)" 0 "$NIC" list
expect "bind-nic: bind a nonexistent device (real sysfs)" 4 "$NIC" bind 0000:ff:1f.7

# ---- hugepages.sh for real ----------------------------------------------------------------------
if ((REAL)); then
  pool=/sys/kernel/mm/hugepages/hugepages-2048kB
  if [[ $EUID -ne 0 || ! -w $pool/nr_hugepages ]]; then
    printf 'skip  real hugepages (needs root and %s)\n' "$pool"
  elif [[ -e /run/veil-hugepages.state ]]; then
    printf 'skip  real hugepages (/run/veil-hugepages.state exists: a real reservation is active)\n'
  else
    before=$(cat "$pool/nr_hugepages")
    mnt=$TMP/hugepages-test-mount
    export VEIL_HUGEPAGES_LOCK=$TMP/real.lock
    expect "real: reserve 64 x 2M" 0 "$HP" reserve --size 2M --count $((before + 64)) --mount "$mnt"
    printf '%s\n' "$out" | sed 's/^/      /'
    file_is "real: pool grew by 64" "$pool/nr_hugepages" $((before + 64))
    if awk -v d="$mnt" '$2 == d && $3 == "hugetlbfs" && $4 ~ /pagesize=2M/ { f = 1 } END { exit !f }' /proc/mounts; then
      ok "real: hugetlbfs pagesize=2M mounted on $mnt"
    else
      bad "real: hugetlbfs not mounted on $mnt"
    fi
    expect "real: status" 0 "$HP" status
    printf '%s\n' "$out" | sed 's/^/      /'
    expect "real: reserve again is a no-op" 0 "$HP" reserve --size 2M --count $((before + 64)) --mount "$mnt"
    expect "real: release" 0 "$HP" release
    printf '%s\n' "$out" | sed 's/^/      /'
    file_is "real: pool back to $before" "$pool/nr_hugepages" "$before"
    if awk -v d="$mnt" '$2 == d { f = 1 } END { exit !f }' /proc/mounts; then bad "real: still mounted"; else ok "real: unmounted"; fi
    check "real: state file removed" absent /run/veil-hugepages.state
  fi
fi

printf '\n%d passed, %d failed\n' "$pass" "$fail"
((fail == 0))
