#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# bind-nic.sh: hand NIC ports to DPDK (vfio-pci) for Veil, and give them back.
#
#   bind-nic.sh list [--all]
#   bind-nic.sh bind [--force] [--noiommu] [--dry-run] (PCI... | --config FILE)
#   bind-nic.sh unbind [--driver NAME] [--dry-run] (PCI... | --config FILE | --all)
#
# Works on sysfs directly (driver_override, unbind, drivers_probe), so it needs nothing but bash,
# coreutils and iproute2. dpdk-devbind.py from Debian's `dpdk` package does the same job
# (dpdk-devbind.py --status / -b vfio-pci 0000:03:00.0) without the safety checks and without
# remembering the previous driver. Run with --help for details and exit codes.
set -euo pipefail
shopt -s nullglob

PROG=${0##*/}
# Overridable for tests only (a fake sysfs tree, a scratch state file); never needed in production.
SYS=${VEIL_SYSFS_ROOT:-/sys}
STATE=${VEIL_NIC_STATE:-/run/veil-nic.state}
LOCK=${VEIL_NIC_LOCK:-/run/veil-nic.lock}
VFIO=vfio-pci

# 1: any other failure (set -e)
readonly E_USAGE=2 E_ROOT=3 E_NODEV=4 E_INUSE=5 E_IOMMU=6 E_DRIVER=7 E_BIND=8 E_CONFIG=9 E_LOCK=10

usage() {
  cat <<EOF
Usage:
  $PROG list [--all]
  $PROG bind [--force] [--noiommu] [--dry-run] (PCI... | --config FILE)
  $PROG unbind [--driver NAME] [--dry-run] (PCI... | --config FILE | --all)
  $PROG --help

Give NIC ports to DPDK (the vfio-pci driver) for Veil, and give them back to the kernel.
PCI addresses look like 0000:03:00.0 (03:00.0 is accepted too).

list      Network devices: PCI address, vendor:device, driver, kernel interface, link state,
          NUMA node, IOMMU group, and whether they are in use (addresses, routes) or bound to
          vfio-pci. --all lists every PCI device. Also says whether an IOMMU is active and
          whether vfio-pci is loaded. Needs no root.

bind      Bind the devices to vfio-pci: loads vfio-pci if needed, checks the IOMMU groups,
          saves the current driver in the state file, then writes vfio-pci to driver_override,
          unbinds the device from its driver and asks the kernel to probe it again.
          Refuses (changing nothing) when a device is not a network device, or when its kernel
          interface carries routes, is up with addresses, or is part of a bond/bridge, unless
          --force. Without an IOMMU (no VT-d/AMD-Vi, or intel_iommu=on missing) it refuses
          unless --noiommu, which turns on vfio's unsafe no-IOMMU mode (no DMA isolation; DPDK
          then needs IOVA as PA: keep it for labs).
  --config FILE   bind the pci = "..." addresses of Veil's [[port]] entries
  --dry-run       print what would be written, change nothing

unbind    Return the devices to the driver saved by bind (the kernel's own choice when
          nothing was saved, or NAME with --driver); a device that had no driver is left
          unbound. --all: every device the state file lists.

Files:    state $STATE (one line per device: PCI, previous driver, interfaces)

Exit codes:
  0  success (including "already bound" / "already unbound")
  1  other failure
  2  usage error (unknown option, malformed PCI address)
  3  not root (bind and unbind need root)
  4  no such PCI device
  5  refused: the device is in use or not a network device (use --force to override)
  6  IOMMU problem: no IOMMU and no --noiommu, or no IOMMU group for the device
  7  driver unavailable: vfio-pci (or the driver to return to) cannot be loaded
  8  the kernel did not bind/unbind the device as asked
  9  config file unreadable or invalid (--config)
 10  another $PROG holds the lock
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  local code=$1
  shift
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit "$code"
}
usage_error() { die "$E_USAGE" "$* (see $PROG --help)"; }

dry_run=0

# Write VALUE to a sysfs FILE (or only say so with --dry-run).
sysw() {
  local value=$1 file=$2
  if ((dry_run)); then
    say "  would write '$value' to $file"
    return 0
  fi
  printf '%s\n' "$value" >"$file" 2>/dev/null || return 1
  # Tests only: a fake sysfs tree may carry a script that plays the kernel's part.
  if [[ -n ${VEIL_SYSFS_ROOT:-} && -x $SYS/.kernel ]]; then
    "$SYS/.kernel" "$file" "$value"
  fi
}

normalize_pci() {
  local a=${1,,}
  [[ $a =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] && a="0000:$a"
  [[ $a =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || return 1
  printf '%s\n' "$a"
}

dev_dir() { printf '%s\n' "$SYS/bus/pci/devices/$1"; }

dev_driver() {
  local l
  l=$(readlink "$(dev_dir "$1")/driver" 2>/dev/null) || return 0
  printf '%s\n' "${l##*/}"
}

# Kernel interfaces of a device (virtio-net puts them one level down, under virtioN/net).
dev_ifaces() {
  local d n
  d=$(dev_dir "$1")
  for n in "$d"/net/* "$d"/*/net/*; do printf '%s\n' "${n##*/}"; done
}

dev_attr() { cat "$(dev_dir "$1")/$2" 2>/dev/null || true; }

dev_numa() {
  local n
  n=$(dev_attr "$1" numa_node)
  [[ $n =~ ^[0-9]+$ ]] || n=-
  printf '%s\n' "$n"
}

dev_group() {
  local l
  l=$(readlink "$(dev_dir "$1")/iommu_group" 2>/dev/null) || return 0
  printf '%s\n' "${l##*/}"
}

is_net_class() { [[ $(dev_attr "$1" class) == 0x02* ]]; }

dev_desc() {
  [[ -z ${VEIL_SYSFS_ROOT:-} ]] && command -v lspci >/dev/null 2>&1 || return 0
  lspci -s "$1" 2>/dev/null | sed -n '1s/^[^ ]* [^:]*: //p'
}

iommu_active() {
  local g
  for g in "$SYS"/kernel/iommu_groups/*; do return 0; done
  return 1
}

noiommu_enabled() {
  [[ $(cat "$SYS/module/vfio/parameters/enable_unsafe_noiommu_mode" 2>/dev/null || true) == [Yy1]* ]]
}

vfio_loaded() { [[ -d $SYS/bus/pci/drivers/$VFIO ]]; }

# Link state of a kernel interface: "up", "down", "up/no-carrier", ...
iface_link() {
  local if=$1 line state flags
  line=$(ip -o link show dev "$if" 2>/dev/null) || {
    printf '%s\n' "$(cat "$SYS/class/net/$if/operstate" 2>/dev/null || printf '?')"
    return 0
  }
  flags=${line#*<}
  flags=${flags%%>*}
  state=down
  [[ ,$flags, == *,UP,* ]] && state=up
  [[ $state == up && ,$flags, != *,LOWER_UP,* ]] && state=up/no-carrier
  printf '%s\n' "$state"
}

# Why an interface must not be taken from the kernel; empty when it is free to go.
# With "short", only the kinds of use ("addresses, routes").
iface_usage() {
  local if=$1 short=${2:-} reasons=() kinds=() addrs routes line master
  ip -o link show dev "$if" >/dev/null 2>&1 || return 0
  master=$(ip -o link show dev "$if" 2>/dev/null | sed -n 's/.* master \([^ ]*\).*/\1/p')
  if [[ -n $master ]]; then
    reasons+=("it is part of $master")
    kinds+=("member of $master")
  fi
  addrs=$(ip -o addr show dev "$if" 2>/dev/null | awk '$0 !~ / scope (link|host) / { print $4 }' | paste -sd' ' -)
  if [[ -n $addrs && $(iface_link "$if") == up* ]]; then
    reasons+=("it is up with addresses $addrs")
    kinds+=("addresses")
  fi
  routes=""
  while IFS= read -r line; do
    line=$(sed 's/[[:space:]]*$//; s/[[:space:]][[:space:]]*/ /g' <<<"$line")
    [[ -z $line || $line == fe80::/64* || $line == multicast* ]] && continue
    routes+="${routes:+; }$line"
  done < <(ip -4 route show dev "$if" 2>/dev/null; ip -6 route show dev "$if" 2>/dev/null)
  if [[ -n $routes ]]; then
    reasons+=("it carries routes ($routes)")
    kinds+=("routes")
  fi
  ((${#reasons[@]})) || return 0
  if [[ $short == short ]]; then
    printf '%s' "${kinds[0]}"
    printf ', %s' "${kinds[@]:1}"
  else
    printf '%s' "${reasons[0]}"
    printf '; %s' "${reasons[@]:1}"
  fi
  printf '\n'
}

# ---- state file: "<pci> <previous driver or -> <interfaces, comma-separated, or ->" -------------

state_get() { [[ -f $STATE ]] && awk -v p="$1" '$1 == p { print $2, $3 }' "$STATE"; }

state_put() {
  local pci=$1 line=${2:-} tmp
  ((dry_run)) && return 0
  if [[ ! -f $STATE ]]; then
    printf '# Written by %s bind; read by "%s unbind". Do not edit.\n' "$PROG" "$PROG" >"$STATE"
  fi
  tmp=$(mktemp "$STATE.XXXXXX")
  chmod 0644 "$tmp"
  awk -v p="$pci" '$1 != p' "$STATE" >"$tmp"
  [[ -z $line ]] || printf '%s\n' "$line" >>"$tmp"
  mv -f "$tmp" "$STATE"
  if ! grep -qv '^#' "$STATE"; then rm -f "$STATE"; fi
}

take_lock() {
  ((dry_run)) && return 0
  command -v flock >/dev/null 2>&1 || return 0
  exec {lock_fd}>"$LOCK"
  flock -w 30 "$lock_fd" || die "$E_LOCK" "another $PROG is running (lock $LOCK held for 30 s)"
}

need_root() {
  ((dry_run)) && return 0
  [[ -n ${VEIL_SYSFS_ROOT:-} || $EUID -eq 0 ]] || die "$E_ROOT" "$1 must run as root; try: sudo $0 $1 ..."
}

# toml_flat: see toml.sh beside this script.
# shellcheck source=hugepages-setup/toml.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/toml.sh"

# pci = "..." of every [[port]] in Veil's TOML config.
config_pcis() {
  local file=$1 flat
  [[ -r $file ]] || die "$E_CONFIG" "cannot read config $file"
  flat=$(toml_flat "$file") || die "$E_CONFIG" "cannot parse config $file"
  sed -n 's/^port\.pci=//p' <<<"$flat"
}

# Load a kernel module for DRIVER unless its driver directory exists already.
load_driver() {
  local drv=$1 mod out
  [[ -d $SYS/bus/pci/drivers/$drv ]] && return 0
  mod=${drv//-/_}
  if ((dry_run)); then
    say "  would run: modprobe $mod"
    return 0
  fi
  command -v modprobe >/dev/null 2>&1 || return 1
  out=$(modprobe "$mod" 2>&1) || {
    printf '%s\n' "$out" >&2
    return 1
  }
  [[ -d $SYS/bus/pci/drivers/$drv ]]
}

# Ask the kernel to (re)probe a device, honouring driver_override.
probe() { sysw "$1" "$SYS/bus/pci/drivers_probe"; }

override_of() {
  local o
  o=$(dev_attr "$1" driver_override)
  [[ $o == "(null)" ]] && o=""
  printf '%s\n' "$o"
}

# ---- list ---------------------------------------------------------------------------------------

cmd_list() {
  local all=0
  while (($#)); do
    case $1 in
      --all) all=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage_error "list: unknown argument '$1'" ;;
    esac
  done
  local d pci drv ifs link numa grp note desc vd rec rows=0 bound=()
  printf '%-13s %-9s %-14s %-12s %-14s %-4s %-5s %s\n' PCI VEND:DEV DRIVER IFACE LINK NUMA IOMMU "NOTE / DESCRIPTION"
  for d in "$SYS"/bus/pci/devices/*; do
    pci=${d##*/}
    drv=$(dev_driver "$pci")
    rec=$(state_get "$pci" 2>/dev/null || true)
    if ((!all)) && ! is_net_class "$pci" && [[ $drv != "$VFIO" && -z $rec ]]; then
      continue
    fi
    rows=$((rows + 1))
    vd="$(dev_attr "$pci" vendor | sed 's/^0x//'):$(dev_attr "$pci" device | sed 's/^0x//')"
    local iflist=() if links=()
    mapfile -t iflist < <(dev_ifaces "$pci")
    for if in "${iflist[@]}"; do links+=("$(iface_link "$if")"); done
    ifs=$(IFS=,; printf '%s' "${iflist[*]}")
    link=$(IFS=,; printf '%s' "${links[*]}")
    numa=$(dev_numa "$pci")
    grp=$(dev_group "$pci")
    note=""
    if [[ $drv == "$VFIO" ]]; then
      note="DPDK (vfio-pci)"
      [[ -n $rec ]] && note+=", was ${rec%% *}"
      bound+=("$pci")
    fi
    for if in "${iflist[@]}"; do
      local u
      u=$(iface_usage "$if" short)
      [[ -z $u ]] || note+="${note:+; }$if in use ($u)"
    done
    desc=$(dev_desc "$pci")
    [[ -z $desc ]] || note+="${note:+; }$desc"
    printf '%-13s %-9s %-14s %-12s %-14s %-4s %-5s %s\n' "$pci" "$vd" "${drv:--}" "${ifs:--}" "${link:--}" \
      "$numa" "${grp:--}" "$note"
  done
  ((rows)) || say "(no network devices on the PCI bus)"
  say ""
  if iommu_active; then
    local n=0 g
    for g in "$SYS"/kernel/iommu_groups/*; do n=$((n + 1)); done
    say "IOMMU: active ($n groups)"
  elif noiommu_enabled; then
    say "IOMMU: none; vfio no-IOMMU mode is ON (unsafe: no DMA isolation)"
  else
    say "IOMMU: none (enable VT-d/AMD-Vi in the BIOS and boot with intel_iommu=on iommu=pt)"
  fi
  if vfio_loaded; then
    say "vfio-pci: loaded; bound to it: ${bound[*]:-none}"
  elif [[ -d /lib/modules/$(uname -r) ]]; then
    say "vfio-pci: not loaded ('$PROG bind' loads it)"
  else
    say "vfio-pci: not loaded, and this kernel has no module tree (/lib/modules/$(uname -r)): binding is not possible here"
  fi
  if [[ -f $STATE ]]; then
    say "state ($STATE): $(grep -vc '^#' "$STATE") device(s) recorded; '$PROG unbind --all' returns them"
  fi
}

# ---- bind ---------------------------------------------------------------------------------------

cmd_bind() {
  local force=0 noiommu=0 config="" args=()
  while (($#)); do
    case $1 in
      --force) force=1; shift ;;
      --noiommu) noiommu=1; shift ;;
      --dry-run) dry_run=1; shift ;;
      --config) config=${2:-}; shift 2 || usage_error "--config needs a value" ;;
      --config=*) config=${1#*=}; shift ;;
      -h | --help) usage; exit 0 ;;
      -*) usage_error "bind: unknown option '$1'" ;;
      *) args+=("$1"); shift ;;
    esac
  done
  if [[ -n $config ]]; then
    local c
    while IFS= read -r c; do [[ -z $c ]] || args+=("$c"); done < <(config_pcis "$config")
    ((${#args[@]})) || die "$E_CONFIG" "$config has no [[port]] with pci = \"...\"; nothing to bind"
  fi
  ((${#args[@]})) || usage_error "bind: name at least one PCI address (see '$PROG list')"

  # 1. Check everything before changing anything.
  local pcis=() a pci drv
  for a in "${args[@]}"; do
    pci=$(normalize_pci "$a") || usage_error "'$a' is not a PCI address like 0000:03:00.0"
    [[ -d $(dev_dir "$pci") ]] || die "$E_NODEV" "no PCI device $pci (see '$PROG list')"
    [[ " ${pcis[*]} " == *" $pci "* ]] || pcis+=("$pci")
  done
  need_root bind
  take_lock

  local refusals=() todo=() if u
  for pci in "${pcis[@]}"; do
    drv=$(dev_driver "$pci")
    if [[ $drv == "$VFIO" ]]; then
      say "$pci: already bound to $VFIO"
      continue
    fi
    todo+=("$pci")
    is_net_class "$pci" || refusals+=("$pci is not a network device (class $(dev_attr "$pci" class); $(dev_desc "$pci"))")
    while IFS= read -r if; do
      [[ -n $if ]] || continue
      u=$(iface_usage "$if")
      [[ -z $u ]] || refusals+=("$pci ($if): $u")
    done < <(dev_ifaces "$pci")
  done
  ((${#todo[@]})) || return 0
  if ((${#refusals[@]})); then
    local r
    if ((force)); then
      for r in "${refusals[@]}"; do warn "--force: binding anyway: $r"; done
    else
      for r in "${refusals[@]}"; do printf '%s: refused: %s\n' "$PROG" "$r" >&2; done
      die "$E_INUSE" "nothing changed. Take the interface out of service first (ip route del ...; ip addr flush dev IF; ip link set IF down; or remove it from its bond/bridge), or pass --force"
    fi
  fi

  # 2. IOMMU and the vfio-pci driver.
  if ! iommu_active; then
    if noiommu_enabled; then
      warn "no IOMMU: using vfio's no-IOMMU mode (no DMA isolation; DPDK runs with IOVA as PA and needs CAP_SYS_ADMIN)"
    elif ((noiommu)); then
      warn "no IOMMU: turning on vfio's unsafe no-IOMMU mode as asked (--noiommu); not for production"
      if [[ -w $SYS/module/vfio/parameters/enable_unsafe_noiommu_mode ]]; then
        sysw Y "$SYS/module/vfio/parameters/enable_unsafe_noiommu_mode" ||
          die "$E_IOMMU" "could not enable vfio no-IOMMU mode"
      elif ((dry_run)); then
        say "  would run: modprobe vfio enable_unsafe_noiommu_mode=1"
      else
        modprobe vfio enable_unsafe_noiommu_mode=1 >/dev/null 2>&1 ||
          die "$E_DRIVER" "could not load vfio with enable_unsafe_noiommu_mode=1 (no kernel modules here?)"
      fi
    else
      die "$E_IOMMU" "no IOMMU is active ($SYS/kernel/iommu_groups is empty): enable VT-d (Intel) or AMD-Vi (AMD) in the BIOS and boot with 'intel_iommu=on iommu=pt' (AMD: 'iommu=pt'); for a lab without an IOMMU, --noiommu (unsafe)"
    fi
  fi
  if ! load_driver "$VFIO"; then
    die "$E_DRIVER" "$VFIO is not available: 'modprobe vfio-pci' failed (is the kernel built with CONFIG_VFIO_PCI, and are its modules installed in /lib/modules/$(uname -r)?)"
  fi

  # IOMMU groups: vfio hands DPDK whole groups; every device in the group must be on vfio-pci or
  # driverless (bridges on pcieport are fine).
  local g other odrv
  if iommu_active; then
    for pci in "${todo[@]}"; do
      g=$(dev_group "$pci")
      [[ -n $g ]] || die "$E_IOMMU" "$pci has no IOMMU group although an IOMMU is active (ACS/BIOS issue?); cannot use vfio-pci"
      for other in "$SYS"/kernel/iommu_groups/"$g"/devices/*; do
        other=${other##*/}
        [[ $other == "$pci" || " ${todo[*]} " == *" $other "* ]] && continue
        odrv=$(dev_driver "$other")
        case $odrv in
          "" | "$VFIO" | pcieport) ;;
          *) warn "IOMMU group $g also holds $other (driver $odrv): DPDK cannot open the group until it is bound to $VFIO too (or has no driver)" ;;
        esac
      done
    done
  fi

  # 3. Bind, one device at a time; a device the kernel will not take is put back.
  local rec ifs d prev failed=0
  for pci in "${todo[@]}"; do
    d=$(dev_dir "$pci")
    drv=$(dev_driver "$pci")
    ifs=$(dev_ifaces "$pci" | paste -sd, -)
    rec=$(state_get "$pci" || true)
    # Keep the oldest record: that is the driver to return to.
    [[ -n $rec ]] || state_put "$pci" "$pci ${drv:--} ${ifs:--}"
    ((dry_run)) && say "$pci (${drv:-no driver}${ifs:+, $ifs}) -> $VFIO:"
    sysw "$VFIO" "$d/driver_override" || die "$E_BIND" "$pci: cannot write $d/driver_override"
    if [[ -n $drv ]]; then
      sysw "$pci" "$d/driver/unbind" || { failed=1; warn "$pci: unbinding from $drv failed"; }
    fi
    probe "$pci" || true
    if ((!dry_run)) && [[ $(dev_driver "$pci") != "$VFIO" ]]; then
      sysw "$pci" "$SYS/bus/pci/drivers/$VFIO/bind" || true
    fi
    if ((dry_run)); then
      continue
    fi
    if [[ $(dev_driver "$pci") != "$VFIO" ]]; then
      warn "$pci: the kernel did not bind it to $VFIO; putting it back on ${drv:-no driver}"
      sysw "" "$d/driver_override" || true
      if [[ -n $drv ]]; then
        probe "$pci" || true
        [[ $(dev_driver "$pci") == "$drv" ]] || sysw "$pci" "$SYS/bus/pci/drivers/$drv/bind" || true
      fi
      [[ -n $rec ]] || state_put "$pci"
      failed=1
      continue
    fi
    g=$(dev_group "$pci")
    prev=${drv:-no driver}
    say "$pci: $prev${ifs:+ ($ifs)} -> $VFIO${g:+, IOMMU group $g (/dev/vfio/$g)}; '$PROG unbind $pci' undoes it"
  done
  ((failed == 0)) || die "$E_BIND" "some devices were not bound (see above)"
}

# ---- unbind -------------------------------------------------------------------------------------

cmd_unbind() {
  local to="" all=0 config="" args=()
  while (($#)); do
    case $1 in
      --driver) to=${2:-}; shift 2 || usage_error "--driver needs a value" ;;
      --driver=*) to=${1#*=}; shift ;;
      --all) all=1; shift ;;
      --dry-run) dry_run=1; shift ;;
      --config) config=${2:-}; shift 2 || usage_error "--config needs a value" ;;
      --config=*) config=${1#*=}; shift ;;
      -h | --help) usage; exit 0 ;;
      -*) usage_error "unbind: unknown option '$1'" ;;
      *) args+=("$1"); shift ;;
    esac
  done
  [[ -z $to || $to =~ ^[A-Za-z0-9_.-]+$ ]] || usage_error "--driver '$to' is not a driver name"
  if [[ -n $config ]]; then
    local c
    while IFS= read -r c; do [[ -z $c ]] || args+=("$c"); done < <(config_pcis "$config")
  fi
  if ((all)) && [[ -f $STATE ]]; then
    local p
    while read -r p _; do args+=("$p"); done < <(grep -v '^#' "$STATE")
  fi
  if ((${#args[@]} == 0)); then
    ((all)) && { say "nothing to unbind (no state file $STATE)"; return 0; }
    usage_error "unbind: name at least one PCI address, --config FILE or --all"
  fi
  local pcis=() a pci
  for a in "${args[@]}"; do
    pci=$(normalize_pci "$a") || usage_error "'$a' is not a PCI address like 0000:03:00.0"
    [[ -d $(dev_dir "$pci") ]] || die "$E_NODEV" "no PCI device $pci (see '$PROG list')"
    [[ " ${pcis[*]} " == *" $pci "* ]] || pcis+=("$pci")
  done
  need_root unbind
  take_lock

  local d drv rec saved target tname failed=0 now ifs
  for pci in "${pcis[@]}"; do
    d=$(dev_dir "$pci")
    drv=$(dev_driver "$pci")
    rec=$(state_get "$pci" || true)
    saved=${rec%% *}
    target=${to:-$saved}
    if [[ $drv != "$VFIO" ]]; then
      say "$pci: not bound to $VFIO (driver: ${drv:-none}); nothing to do"
      state_put "$pci"
      continue
    fi
    tname=${target:-"the kernel's default driver"}
    ((dry_run)) && say "$pci ($VFIO) -> $tname:"
    sysw "$pci" "$d/driver/unbind" || die "$E_BIND" "$pci: unbinding from $VFIO failed"
    sysw "" "$d/driver_override" || warn "$pci: could not clear driver_override"
    if [[ $target == - ]]; then
      ((dry_run)) || say "$pci: $VFIO -> no driver (it had none before bind)"
      state_put "$pci"
      continue
    fi
    if [[ -n $target ]] && ! load_driver "$target"; then
      warn "$pci: driver $target is not available (modprobe failed); letting the kernel choose"
    fi
    probe "$pci" || true
    if ((!dry_run)) && [[ -n $target && $(dev_driver "$pci") != "$target" && -d $SYS/bus/pci/drivers/$target ]]; then
      [[ -z $(dev_driver "$pci") ]] || sysw "$pci" "$d/driver/unbind" || true
      sysw "$pci" "$SYS/bus/pci/drivers/$target/bind" || true
    fi
    ((dry_run)) && continue
    now=$(dev_driver "$pci")
    ifs=$(dev_ifaces "$pci" | paste -sd, -)
    if [[ -z $now || (-n $target && $now != "$target") ]]; then
      warn "$pci: asked for $tname, now on ${now:-no driver}"
      failed=1
      continue
    fi
    say "$pci: $VFIO -> $now${ifs:+ (interface $ifs)}"
    state_put "$pci"
  done
  ((failed == 0)) || die "$E_BIND" "some devices did not return to their driver (see above)"
}

main() {
  (($#)) || { usage >&2; exit "$E_USAGE"; }
  local cmd=$1
  shift
  case $cmd in
    list | status) cmd_list "$@" ;;
    bind) cmd_bind "$@" ;;
    unbind) cmd_unbind "$@" ;;
    -h | --help | help) usage ;;
    *) usage_error "unknown command '$cmd'" ;;
  esac
}

main "$@"
