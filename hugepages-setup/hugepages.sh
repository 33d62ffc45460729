#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# hugepages.sh: reserve, inspect and release hugepages for Veil's DPDK dataplane.
#
#   hugepages.sh reserve [--size 2M|1G] [--count N | --mb N | --config FILE] [--node N|all]
#                        [--mount DIR | --no-mount]
#   hugepages.sh release
#   hugepages.sh status
#
# Everything 'reserve' changes is written to a state file first, so 'release' undoes exactly
# that and nothing else. Run with --help for the details and exit codes; hugepages-setup/README.md
# and docs/bare-metal.md explain how Veil uses it.
set -euo pipefail
shopt -s nullglob

PROG=${0##*/}
# Overridable for tests only (a fake sysfs tree, a scratch state file); never needed in production.
SYS=${VEIL_SYSFS_ROOT:-/sys}
STATE=${VEIL_HUGEPAGES_STATE:-/run/veil-hugepages.state}
LOCK=${VEIL_HUGEPAGES_LOCK:-/run/veil-hugepages.lock}
DEFAULT_MOUNT=/dev/hugepages-veil
DEFAULT_MEMORY_MB=256 # controlplane/config.h: DataplaneConfig::memory_mb

readonly E_FAIL=1 E_USAGE=2 E_ROOT=3 E_SIZE=4 E_GRANT=5 E_MOUNT=6 E_CONFIG=7 E_LOCK=8

usage() {
  cat <<EOF
Usage:
  $PROG reserve [--size SIZE] (--count N | --mb N | --config FILE) [--node N|all]
                [--mount DIR | --no-mount]
  $PROG release
  $PROG status
  $PROG --help

Reserve hugepages for Veil (DPDK), mount a hugetlbfs for them, and undo exactly that later.

reserve   Make sure the hugepage pool holds at least N pages of SIZE (the pool total, not pages
          added on top: pages already reserved, e.g. at boot, count), then mount hugetlbfs with a
          matching pagesize= on DIR. Whatever it changes (previous nr_hugepages, the mount, a
          directory it created) is recorded in the state file before it is changed. Running it
          again with the same arguments changes nothing. If the kernel grants fewer pages than
          asked, everything this run changed is rolled back and the granted count is reported.
  --size SIZE     page size: 2M or 1G (also 2048k, 1024M, 2MB, ...). Default: the kernel's
                  default hugepage size (Hugepagesize in /proc/meminfo).
  --count N       number of pages (per node with --node all).
  --mb N          memory in MiB, rounded up to whole pages (per node with --node all).
  --config FILE   read Veil's TOML config: nothing to do when [dataplane] hugepages is not true;
                  otherwise reserve [dataplane] memory_mb (default $DEFAULT_MEMORY_MB) unless --count
                  or --mb is given, on the NUMA node(s) of the [[port]] pci devices and of the
                  [cores] control/workers cores, when the host has more than one node.
  --node N|all    reserve on NUMA node N (/sys/devices/system/node/nodeN), or N pages on every
                  node. Default: the system-wide pool (the kernel spreads pages over the nodes).
  --mount DIR     hugetlbfs mount point (default $DEFAULT_MOUNT). Point DPDK at it with
                  EAL --huge-dir DIR when other hugetlbfs mounts exist.
  --no-mount      reserve only (enough for EAL --in-memory, which needs no mount).

release   Undo what the state file records: unmount (and remove directories it created), then put
          nr_hugepages back to the value it had before the first reserve. If someone else changed
          nr_hugepages meanwhile, only the pages this script added are removed. Nothing to do
          (exit 0) when there is no state file.

status    Pages (total/free/reserved/surplus) per size, system-wide and per NUMA node;
          hugetlbfs mounts; what the state file records. Needs no root.

Files:    state $STATE, lock $LOCK

Exit codes:
  0  success (including "already done" and "nothing to do")
  1  other failure (a sysfs write failed, unreadable state file, ...)
  2  usage error (unknown option, bad number, unknown NUMA node)
  3  not root (reserve and release need root)
  4  page size not supported by this CPU/kernel
  5  the kernel granted fewer pages than asked (the message says how many; rolled back)
  6  mount problem: DIR mounted as something else or with another page size, mount failed,
     or unmount failed because the pages are in use (stop veild first)
  7  config file unreadable or invalid (--config)
  8  another hugepages.sh holds the lock
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

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Integer content of a sysfs file; 0 when empty or unreadable.
read_int() {
  local v
  v=$(cat "$1" 2>/dev/null || true)
  v=${v//[[:space:]]/}
  is_uint "$v" || v=0
  printf '%s\n' "$v"
}

# "2M", "1G", "2048kB", "1024M", "2MB", "2MiB" -> size in kB.
parse_size() {
  local s=${1,,} n unit
  if [[ $s =~ ^([0-9]+)([kmg])(b|ib)?$ ]]; then
    n=${BASH_REMATCH[1]}
    unit=${BASH_REMATCH[2]}
  else
    return 1
  fi
  case $unit in
    k) printf '%s\n' "$n" ;;
    m) printf '%s\n' $((n * 1024)) ;;
    g) printf '%s\n' $((n * 1024 * 1024)) ;;
  esac
}

# kB -> "2M", "1G", "64K".
fmt_size() {
  local kb=$1
  if ((kb % 1048576 == 0)); then
    printf '%sG\n' $((kb / 1048576))
  elif ((kb % 1024 == 0)); then
    printf '%sM\n' $((kb / 1024))
  else
    printf '%sK\n' "$kb"
  fi
}

supported_sizes_kb() {
  local d
  for d in "$SYS"/kernel/mm/hugepages/hugepages-*kB; do
    d=${d##*/hugepages-}
    printf '%s\n' "${d%kB}"
  done | sort -n
}

default_size_kb() {
  local kb
  kb=$(awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo 2>/dev/null || true)
  if ! is_uint "${kb:-}"; then
    kb=$(supported_sizes_kb | head -n1)
  fi
  printf '%s\n' "$kb"
}

cpu_has_1g() { grep -qw pdpe1gb /proc/cpuinfo 2>/dev/null || grep -qw gbpages /proc/cpuinfo 2>/dev/null; }

check_size() {
  local kb=$1 sizes=() s
  [[ -d $SYS/kernel/mm/hugepages/hugepages-${kb}kB ]] && return 0
  while read -r s; do sizes+=("$(fmt_size "$s")"); done < <(supported_sizes_kb)
  local msg
  msg="$(fmt_size "$kb") hugepages are not supported by this CPU/kernel (supported here: ${sizes[*]:-none})"
  if ((kb == 1048576)) && ! cpu_has_1g; then
    msg+="; the CPU has no 1G page support (no pdpe1gb flag in /proc/cpuinfo)"
  fi
  die "$E_SIZE" "$msg"
}

numa_nodes() {
  local d
  for d in "$SYS"/devices/system/node/node[0-9]*; do
    [[ -d $d/hugepages ]] && printf '%s\n' "${d##*/node}"
  done | sort -n
}

# Pool directory for NODE ("" = system-wide) and size KB.
pool_dir() {
  if [[ -z $1 ]]; then
    printf '%s\n' "$SYS/kernel/mm/hugepages/hugepages-${2}kB"
  else
    printf '%s\n' "$SYS/devices/system/node/node$1/hugepages/hugepages-${2}kB"
  fi
}

pool_label() { if [[ -z $1 ]]; then printf 'system-wide\n'; else printf 'node%s\n' "$1"; fi; }

# ---- state file ---------------------------------------------------------------------------------
# Line-based, one record per line:
#   pages <nr_hugepages file> <value before the first reserve> <value this script left>
#   mount <dir> <pagesize kB> <1 if the script created dir, else 0>

state_init() {
  if [[ ! -f $STATE ]]; then
    {
      printf '# Written by %s reserve; read by "%s release". Do not edit.\n' "$PROG" "$PROG"
      printf 'version 1\n'
    } >"$STATE"
  fi
}

state_check() {
  [[ -f $STATE ]] || return 0
  [[ -r $STATE ]] || die "$E_FAIL" "cannot read state file $STATE"
  grep -qx 'version 1' "$STATE" || die "$E_FAIL" "$STATE is not a state file of this version of $PROG"
  local bad
  bad=$(awk '!/^#/ && !/^version / && !($1 == "pages" && NF == 4) && !($1 == "mount" && NF == 4) && NF' "$STATE")
  [[ -z $bad ]] || die "$E_FAIL" "$STATE has lines this script did not write: $bad"
}

# Replace (or delete, with no new line) the record whose kind is $1 and key is $2.
state_put() {
  local kind=$1 key=$2 line=${3:-} tmp
  tmp=$(mktemp "$STATE.XXXXXX")
  chmod 0644 "$tmp"
  awk -v k="$kind" -v p="$key" '!($1 == k && $2 == p)' "$STATE" >"$tmp"
  [[ -z $line ]] || printf '%s\n' "$line" >>"$tmp"
  mv -f "$tmp" "$STATE"
}

state_get() { [[ -f $STATE ]] && awk -v k="$1" -v p="$2" '$1 == k && $2 == p { print $3, $4 }' "$STATE"; }

state_records() { [[ -f $STATE ]] && awk -v k="$1" '$1 == k { print $2, $3, $4 }' "$STATE"; }

state_drop_if_empty() {
  if [[ -f $STATE ]] && ! awk '$1 == "pages" || $1 == "mount" { found = 1 } END { exit !found }' "$STATE"; then
    rm -f "$STATE"
  fi
}

take_lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec {lock_fd}>"$LOCK"
  flock -w 30 "$lock_fd" || die "$E_LOCK" "another $PROG is running (lock $LOCK held for 30 s)"
}

# ---- mounts -------------------------------------------------------------------------------------

# "<fstype> <options>" of the topmost mount on DIR, or nothing.
mount_info() {
  awk -v d="$1" '$2 == d { t = $3 " " $4 } END { if (t != "") print t }' /proc/mounts
}

# Page size in kB of a hugetlbfs mount given its options.
mount_pagesize_kb() {
  local opts=$1 o
  for o in ${opts//,/ }; do
    if [[ $o == pagesize=* ]]; then
      parse_size "${o#pagesize=}" && return 0
    fi
  done
  default_size_kb
}

# ---- config -------------------------------------------------------------------------------------

# toml_flat: see toml.sh beside this script.
# shellcheck source=hugepages-setup/toml.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/toml.sh"

normalize_pci() {
  local a=${1,,}
  [[ $a =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] && a="0000:$a"
  [[ $a =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || return 1
  printf '%s\n' "$a"
}

cpu_node() {
  local n
  for n in "$SYS"/devices/system/cpu/cpu"$1"/node[0-9]*; do
    printf '%s\n' "${n##*/node}"
    return 0
  done
  return 1
}

# Sets cfg_hugepages, cfg_memory_mb and cfg_nodes: every NUMA node that holds one of the config's
# PCI ports or one of its cores ([cores] control and workers). veild creates its packet-buffer
# pool on the control core's node and the NIC queues on the NIC's node, so each of them needs
# hugepages there; on a well-laid-out host that is a single node.
read_config() {
  local file=$1 flat line k v pci node cpu
  [[ -r $file ]] || die "$E_CONFIG" "cannot read config $file"
  flat=$(toml_flat "$file") || die "$E_CONFIG" "cannot parse config $file"
  cfg_hugepages=false
  cfg_memory_mb=$DEFAULT_MEMORY_MB
  cfg_nodes=()
  local pci_nodes=() core_nodes=() cores=()
  while IFS= read -r line; do
    k=${line%%=*}
    v=${line#*=}
    case $k in
      dataplane.hugepages)
        case ${v,,} in
          true | false) cfg_hugepages=${v,,} ;;
          *) die "$E_CONFIG" "$file: dataplane.hugepages = $v; expected true or false" ;;
        esac
        ;;
      dataplane.memory_mb)
        if ! is_uint "$v" || ((v == 0)); then
          die "$E_CONFIG" "$file: dataplane.memory_mb = $v; expected a positive integer (MiB)"
        fi
        cfg_memory_mb=$v
        ;;
      port.pci)
        pci=$(normalize_pci "$v") || die "$E_CONFIG" "$file: port pci = \"$v\" is not a PCI address like 0000:03:00.0"
        if [[ -r $SYS/bus/pci/devices/$pci/numa_node ]]; then
          node=$(cat "$SYS/bus/pci/devices/$pci/numa_node")
          [[ $node =~ ^[0-9]+$ ]] && pci_nodes+=("$node")
        else
          warn "$file: port pci $pci: no such PCI device on this host"
        fi
        ;;
      cores.control | cores.workers)
        for cpu in $(grep -oE '[0-9]+' <<<"$v" || true); do cores+=("$cpu"); done
        ;;
    esac
  done <<<"$flat"
  for cpu in "${cores[@]}"; do
    node=$(cpu_node "$cpu") && core_nodes+=("$node")
  done
  local pn="" cn=""
  ((${#pci_nodes[@]} == 0)) || pn=$(printf '%s\n' "${pci_nodes[@]}" | sort -nu | paste -sd' ' -)
  ((${#core_nodes[@]} == 0)) || cn=$(printf '%s\n' "${core_nodes[@]}" | sort -nu | paste -sd' ' -)
  if [[ -n $pn && -n $cn && $pn != "$cn" ]]; then
    warn "$file: the NICs are on NUMA node(s) $pn but the cores on $cn; put the control and worker cores on the NICs' node (docs/bare-metal.md)"
  fi
  mapfile -t cfg_nodes < <(printf '%s\n' "${pci_nodes[@]}" "${core_nodes[@]}" | grep . | sort -nu)
}

# ---- reserve ------------------------------------------------------------------------------------

rollback_values=() # "file value" pairs to write back if this run fails
state_snapshot=""
state_existed=0

rollback() {
  local i f v
  for ((i = ${#rollback_values[@]} - 1; i >= 0; i--)); do
    f=${rollback_values[i]% *}
    v=${rollback_values[i]##* }
    printf '%s\n' "$v" >"$f" 2>/dev/null || warn "could not restore $f to $v"
  done
  if ((state_existed)); then
    printf '%s\n' "$state_snapshot" >"$STATE"
  else
    rm -f "$STATE"
  fi
}

cmd_reserve() {
  local size="" count="" mb="" node_arg="" mount_dir=$DEFAULT_MOUNT do_mount=1 config=""
  while (($#)); do
    case $1 in
      --size) size=${2:-}; shift 2 || usage_error "--size needs a value" ;;
      --size=*) size=${1#*=}; shift ;;
      --count) count=${2:-}; shift 2 || usage_error "--count needs a value" ;;
      --count=*) count=${1#*=}; shift ;;
      --mb) mb=${2:-}; shift 2 || usage_error "--mb needs a value" ;;
      --mb=*) mb=${1#*=}; shift ;;
      --node) node_arg=${2:-}; shift 2 || usage_error "--node needs a value" ;;
      --node=*) node_arg=${1#*=}; shift ;;
      --mount) mount_dir=${2:-}; shift 2 || usage_error "--mount needs a value" ;;
      --mount=*) mount_dir=${1#*=}; shift ;;
      --no-mount) do_mount=0; shift ;;
      --config) config=${2:-}; shift 2 || usage_error "--config needs a value" ;;
      --config=*) config=${1#*=}; shift ;;
      -h | --help) usage; exit 0 ;;
      *) usage_error "reserve: unknown argument '$1'" ;;
    esac
  done
  [[ -n $count && -n $mb ]] && usage_error "give --count or --mb, not both"
  [[ -n $count || -n $mb || -n $config ]] || usage_error "reserve: say how much: --count N, --mb N or --config FILE"
  [[ -z $count ]] || { is_uint "$count" && ((count > 0)); } || usage_error "--count $count: expected a positive integer"
  [[ -z $mb ]] || { is_uint "$mb" && ((mb > 0)); } || usage_error "--mb $mb: expected a positive integer (MiB)"
  if ((do_mount)); then
    [[ $mount_dir == /* && $mount_dir != / && $mount_dir != *[[:space:]]* ]] ||
      usage_error "--mount '$mount_dir': expected an absolute path without spaces"
    mount_dir=${mount_dir%/}
  fi

  local kb
  if [[ -n $size ]]; then
    kb=$(parse_size "$size") || usage_error "--size $size: expected 2M or 1G"
  else
    kb=$(default_size_kb)
    [[ -n $kb ]] || die "$E_SIZE" "this kernel has no hugepage support (/sys/kernel/mm/hugepages is empty)"
  fi
  check_size "$kb"
  local sz
  sz=$(fmt_size "$kb")

  # Which pools: system-wide, one node, or several.
  local nodes=() all_nodes=()
  mapfile -t all_nodes < <(numa_nodes)
  if [[ -n $config ]]; then
    read_config "$config"
    if [[ $cfg_hugepages != true ]]; then
      say "$config: [dataplane] hugepages is not true: veild runs with --no-huge; nothing to reserve."
      exit 0
    fi
    [[ -n $count || -n $mb ]] || mb=$cfg_memory_mb
    if [[ -z $node_arg ]] && ((${#all_nodes[@]} > 1 && ${#cfg_nodes[@]})); then
      nodes=("${cfg_nodes[@]}")
      ((${#nodes[@]} == 1)) || warn "$config: ports and cores span NUMA nodes ${nodes[*]}: reserving the full amount on each"
    fi
  fi
  if [[ $node_arg == all ]]; then
    ((${#all_nodes[@]})) || die "$E_FAIL" "no NUMA node directories under $SYS/devices/system/node"
    nodes=("${all_nodes[@]}")
  elif [[ -n $node_arg ]]; then
    is_uint "$node_arg" || usage_error "--node $node_arg: expected a node number or 'all'"
    [[ -d $SYS/devices/system/node/node$node_arg ]] ||
      usage_error "--node $node_arg: no such NUMA node (nodes here: ${all_nodes[*]:-none})"
    [[ -d $(pool_dir "$node_arg" "$kb") ]] ||
      die "$E_SIZE" "node $node_arg has no $sz hugepage pool (node without memory?)"
    nodes=("$node_arg")
  fi
  ((${#nodes[@]})) || nodes=("")

  local want
  if [[ -n $count ]]; then
    want=$count
  else
    want=$(((mb * 1024 + kb - 1) / kb))
  fi

  if [[ -z ${VEIL_SYSFS_ROOT:-} && $EUID -ne 0 ]]; then
    die "$E_ROOT" "reserve must run as root (it writes nr_hugepages and mounts hugetlbfs); try: sudo $0 reserve ..."
  fi
  take_lock
  state_check
  if [[ -f $STATE ]]; then
    state_existed=1
    state_snapshot=$(cat "$STATE")
  fi
  state_init

  local node dir file cur got free rec prev
  local failed=""
  for node in "${nodes[@]}"; do
    dir=$(pool_dir "$node" "$kb")
    file=$dir/nr_hugepages
    cur=$(read_int "$file")
    if ((cur >= want)); then
      free=$(read_int "$dir/free_hugepages")
      say "$(pool_label "$node"): $cur x $sz already reserved (asked for $want)"
      ((free >= want)) || warn "$(pool_label "$node"): only $free of the $cur $sz pages are free; the rest are in use"
      continue
    fi
    rec=$(state_get pages "$file")
    prev=${rec%% *}
    [[ -n $rec ]] || prev=$cur
    # Record before changing anything, so that 'release' can undo even a half-finished run.
    state_put pages "$file" "pages $file $prev $cur"
    rollback_values+=("$file $cur")
    printf '%s\n' "$want" >"$file" 2>/dev/null || true
    got=$(read_int "$file")
    state_put pages "$file" "pages $file $prev $got"
    if ((got < want)); then
      local avail
      avail=$(awk '/^MemAvailable:/ { printf "%d", $2 / 1024 }' /proc/meminfo 2>/dev/null || true)
      failed="$(pool_label "$node"): asked for $want x $sz, the kernel granted $got"
      failed+=" (available memory ${avail:-?} MiB; free memory may be too fragmented for $sz pages)"
      ((kb < 1048576)) || failed+="; reserve 1G pages at boot instead: default_hugepagesz=1G hugepagesz=1G hugepages=$want on the kernel command line"
      break
    fi
    say "$(pool_label "$node"): reserved $got x $sz ($((got * kb / 1024)) MiB; was $cur)"
  done
  if [[ -n $failed ]]; then
    rollback
    die "$E_GRANT" "$failed; rolled back, nothing changed"
  fi

  if ((do_mount)); then
    local info fstype opts mkb created=0
    info=$(mount_info "$mount_dir")
    if [[ -n $info ]]; then
      fstype=${info%% *}
      opts=${info#* }
      if [[ $fstype != hugetlbfs ]]; then
        rollback
        die "$E_MOUNT" "$mount_dir is already mounted as $fstype; choose another --mount"
      fi
      mkb=$(mount_pagesize_kb "$opts")
      if [[ $mkb != "$kb" ]]; then
        rollback
        die "$E_MOUNT" "$mount_dir is a hugetlbfs with pagesize=$(fmt_size "$mkb"), not $sz; choose another --mount (or '$PROG release' first)"
      fi
      say "hugetlbfs pagesize=$sz already mounted on $mount_dir"
    else
      if [[ ! -d $mount_dir ]]; then
        if [[ -e $mount_dir ]]; then
          rollback
          die "$E_MOUNT" "$mount_dir exists and is not a directory"
        fi
        mkdir -p "$mount_dir"
        created=1
      elif [[ -n $(ls -A "$mount_dir") ]]; then
        rollback
        die "$E_MOUNT" "$mount_dir is not empty; refusing to mount over its contents"
      fi
      state_put mount "$mount_dir" "mount $mount_dir $kb $created"
      if ! mount -t hugetlbfs -o "pagesize=$sz" nodev "$mount_dir"; then
        ((created)) && rmdir "$mount_dir" 2>/dev/null
        rollback
        die "$E_MOUNT" "mounting hugetlbfs pagesize=$sz on $mount_dir failed; rolled back"
      fi
      say "mounted hugetlbfs pagesize=$sz on $mount_dir"
    fi
  fi
  state_drop_if_empty
  if [[ -f $STATE ]]; then
    say "recorded in $STATE; '$PROG release' undoes it"
  fi
}

# ---- release ------------------------------------------------------------------------------------

cmd_release() {
  while (($#)); do
    case $1 in
      -h | --help) usage; exit 0 ;;
      *) usage_error "release: unknown argument '$1'" ;;
    esac
  done
  if [[ -z ${VEIL_SYSFS_ROOT:-} && $EUID -ne 0 ]]; then
    die "$E_ROOT" "release must run as root; try: sudo $0 release"
  fi
  take_lock
  if [[ ! -f $STATE ]]; then
    say "nothing to release (no state file $STATE)"
    return 0
  fi
  state_check

  local dir kb created busy=0 recs=()
  mapfile -t recs < <(state_records mount | tac)
  local r
  for r in "${recs[@]}"; do
    read -r dir kb created <<<"$r"
    if [[ -n $(mount_info "$dir") ]]; then
      if ! umount "$dir" 2>/dev/null; then
        printf '%s: error: cannot unmount %s: in use; stop veild (or whatever holds it: fuser -vm %s) first\n' \
          "$PROG" "$dir" "$dir" >&2
        busy=1
        continue
      fi
      say "unmounted $dir"
    else
      say "$dir is not mounted any more"
    fi
    if [[ $created == 1 ]]; then
      if rmdir "$dir" 2>/dev/null; then
        say "removed $dir"
      else
        warn "left $dir in place (not empty or already gone)"
      fi
    fi
    state_put mount "$dir"
  done
  ((busy == 0)) || die "$E_MOUNT" "release incomplete: pages left reserved; $STATE still records them"

  local file prev left cur target used total pdir
  mapfile -t recs < <(state_records pages)
  for r in "${recs[@]}"; do
    read -r file prev left <<<"$r"
    pdir=${file%/*}
    cur=$(read_int "$file")
    if ((cur == left)); then
      target=$prev
    else
      target=$((cur - (left - prev)))
      ((target >= 0)) || target=0
      warn "$file changed since reserve (left at $left, now $cur): removing only the $((left - prev)) pages reserve added"
    fi
    total=$(read_int "$pdir/nr_hugepages")
    used=$((total - $(read_int "$pdir/free_hugepages")))
    if ((used > 0 && total - used < cur - target)); then
      warn "$used pages of ${pdir##*/} are still in use; the kernel frees them (as surplus pages) when their owner exits"
    fi
    if ! printf '%s\n' "$target" >"$file" 2>/dev/null; then
      die "$E_FAIL" "could not write $target to $file; $STATE still records it"
    fi
    say "${pdir#"$SYS"/}: nr_hugepages $cur -> $(read_int "$file") (was $prev before reserve)"
    state_put pages "$file"
  done
  state_drop_if_empty
  [[ ! -f $STATE ]] || die "$E_FAIL" "release incomplete; see $STATE"
  say "released; nothing recorded any more"
}

# ---- status -------------------------------------------------------------------------------------

cmd_status() {
  while (($#)); do
    case $1 in
      -h | --help) usage; exit 0 ;;
      *) usage_error "status: unknown argument '$1'" ;;
    esac
  done
  local sizes=() kb node d sz total free resv surp names=()
  mapfile -t sizes < <(supported_sizes_kb)
  if ((${#sizes[@]} == 0)); then
    say "this kernel has no hugepage support ($SYS/kernel/mm/hugepages is empty)"
    return 0
  fi
  for kb in "${sizes[@]}"; do names+=("$(fmt_size "$kb")"); done
  local one_g=no
  cpu_has_1g && one_g=yes
  say "page sizes: ${names[*]} (kernel default: $(fmt_size "$(default_size_kb)"); CPU 1G support: $one_g)"
  printf '%-12s %5s %8s %8s %8s %8s %10s\n' POOL SIZE TOTAL FREE RSVD SURPLUS "TOTAL MiB"
  local nodes=()
  mapfile -t nodes < <(numa_nodes)
  for kb in "${sizes[@]}"; do
    sz=$(fmt_size "$kb")
    for node in "" "${nodes[@]}"; do
      d=$(pool_dir "$node" "$kb")
      [[ -d $d ]] || continue
      total=$(read_int "$d/nr_hugepages")
      free=$(read_int "$d/free_hugepages")
      surp=$(read_int "$d/surplus_hugepages")
      resv=-
      [[ -e $d/resv_hugepages ]] && resv=$(read_int "$d/resv_hugepages")
      printf '%-12s %5s %8s %8s %8s %8s %10s\n' "$(pool_label "$node")" "$sz" "$total" "$free" "$resv" "$surp" \
        $(((total + surp) * kb / 1024))
    done
  done
  say ""
  say "hugetlbfs mounts:"
  local any=0 dir fstype opts
  while read -r _ dir fstype opts _; do
    [[ $fstype == hugetlbfs ]] || continue
    any=1
    local mine=""
    [[ -n $(state_get mount "$dir" 2>/dev/null || true) ]] && mine="  (mounted by $PROG)"
    printf '  %-28s pagesize=%s%s\n' "$dir" "$(fmt_size "$(mount_pagesize_kb "$opts")")" "$mine"
  done </proc/mounts
  ((any)) || say "  none"
  say ""
  if [[ ! -f $STATE ]]; then
    say "state: nothing reserved by $PROG ($STATE absent)"
    return 0
  fi
  if [[ ! -r $STATE ]]; then
    say "state: $STATE exists but is not readable by this user"
    return 0
  fi
  say "state ($STATE):"
  local r file prev left created
  while read -r file prev left; do
    [[ -n $file ]] || continue
    d=${file%/nr_hugepages}
    say "  ${d#"$SYS"/}: nr_hugepages $prev -> $left (release puts back $prev)"
  done < <(state_records pages)
  while read -r dir kb created; do
    [[ -n $dir ]] || continue
    r=""
    [[ $created == 1 ]] && r=", directory created by $PROG"
    say "  mount $dir pagesize=$(fmt_size "$kb")$r"
  done < <(state_records mount)
}

main() {
  (($#)) || { usage >&2; exit "$E_USAGE"; }
  local cmd=$1
  shift
  case $cmd in
    reserve) cmd_reserve "$@" ;;
    release) cmd_release "$@" ;;
    status) cmd_status "$@" ;;
    -h | --help | help) usage ;;
    *) usage_error "unknown command '$cmd'" ;;
  esac
}

main "$@"
