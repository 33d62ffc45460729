#!/usr/bin/env bash
# Builds libsrtp2 against OpenSSL from Debian's source package and prints its install prefix.
#
# Why: Debian's libsrtp2 binary package is built on NSS and is about 4.6x slower per protect
# than the same libsrtp 2.5.0 built with --enable-openssl (see docs/dependencies.md).
#
# Output contract (the top-level meson.build relies on it): all progress goes to stderr; the
# LAST line of stdout is the install prefix, which holds include/srtp2/srtp.h and
# lib/libsrtp2.a (static, -fPIC) plus lib/pkgconfig/libsrtp2.pc.
#
# The install is cached in ${VEIL_DEPS_DIR:-/var/cache/veil-deps}/libsrtp2-openssl-<version>
# (or ~/.cache/veil-deps when that is not writable) and reused by every checkout on the
# machine. A stamp file, written last and recording the build recipe, marks a complete
# install; anything else is rebuilt. Safe to run concurrently (flock).
#
# Usage: tools/build-srtp.sh [--force]
#   --force, or VEIL_SRTP_REBUILD=1: rebuild even if the cache is complete.
# Needs: the packages from tools/install-deps.sh (build-essential, dpkg-dev, pkg-config,
# libssl-dev) and deb-src entries in apt's sources. Talks to nothing but apt's own archive.
set -euo pipefail
umask 022

readonly SRTP_VERSION=2.5.0
readonly SRTP_CFLAGS='-O2 -fPIC'
readonly SRTP_CONFIGURE=(--enable-openssl --disable-pcap --disable-debug-logging --disable-log-stdout)
# Bump when the recipe changes in a way the line below does not capture.
readonly RECIPE_REV=1
readonly RECIPE="rev=$RECIPE_REV version=$SRTP_VERSION cflags=$SRTP_CFLAGS configure=${SRTP_CONFIGURE[*]}"
readonly STAMP_NAME=.veil-build-complete

# Keep stdout for the final prefix line only: everything else goes to stderr.
exec 3>&1 1>&2

log() { printf 'build-srtp: %s\n' "$*" >&2; }
die() { printf 'build-srtp: ERROR: %s\n' "$*" >&2; exit 1; }

force=${VEIL_SRTP_REBUILD:-0}
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (try --help)" ;;
  esac
done

# --- cache location -------------------------------------------------------------------------
pick_deps_dir() {
  local d
  if [ -n "${VEIL_DEPS_DIR:-}" ]; then
    mkdir -p "$VEIL_DEPS_DIR" 2>/dev/null || die "cannot create VEIL_DEPS_DIR=$VEIL_DEPS_DIR"
    [ -w "$VEIL_DEPS_DIR" ] || die "VEIL_DEPS_DIR=$VEIL_DEPS_DIR is not writable"
    printf '%s\n' "$VEIL_DEPS_DIR"; return
  fi
  d=/var/cache/veil-deps
  if mkdir -p "$d" 2>/dev/null && [ -w "$d" ]; then printf '%s\n' "$d"; return; fi
  # A complete install there is still usable read-only (e.g. built earlier by root).
  if [ -f "$d/libsrtp2-openssl-$SRTP_VERSION/$STAMP_NAME" ]; then printf '%s\n' "$d"; return; fi
  d=${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/veil-deps
  mkdir -p "$d" || die "cannot create cache directory $d (set VEIL_DEPS_DIR)"
  printf '%s\n' "$d"
}
deps_dir=$(pick_deps_dir)
deps_dir=$(cd "$deps_dir" && pwd -P)
prefix=$deps_dir/libsrtp2-openssl-$SRTP_VERSION
stamp=$prefix/$STAMP_NAME

is_complete() {
  [ -f "$stamp" ] && [ -f "$prefix/lib/libsrtp2.a" ] && [ -f "$prefix/include/srtp2/srtp.h" ] &&
    grep -qxF "recipe=$RECIPE" "$stamp"
}

finish() {
  printf '%s\n' "$prefix" >&3
  exit 0
}

# Fast path: no lock, no apt, no compiler.
if [ "$force" != 1 ] && is_complete; then
  log "using cached $prefix"
  finish
fi

[ -w "$deps_dir" ] || die "$prefix is missing or incomplete and $deps_dir is not writable; run as a user who can write it, or set VEIL_DEPS_DIR"

# --- serialise concurrent runs --------------------------------------------------------------
command -v flock >/dev/null || die "flock not found (package util-linux)"
lock=$deps_dir/.libsrtp2-openssl-$SRTP_VERSION.lock
exec 9>"$lock" || die "cannot open lock file $lock"
if ! flock -n 9; then
  log "another build holds $lock; waiting (up to 30 min)"
  flock -w 1800 9 || die "timed out waiting for $lock"
fi
# Someone else may have finished the build while we waited.
if [ "$force" != 1 ] && is_complete; then
  log "using cached $prefix (built by a concurrent run)"
  finish
fi

# --- prerequisites --------------------------------------------------------------------------
missing=()
for tool in apt-get dpkg-source dpkg-parsechangelog cc make pkg-config ar; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (run tools/install-deps.sh)"
pkg-config --exists libcrypto || die "OpenSSL development files not found (libssl-dev; run tools/install-deps.sh)"

work=$(mktemp -d "${TMPDIR:-/tmp}/veil-srtp-build.XXXXXX")
stage=$prefix.tmp.$$
old=$prefix.old.$$
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() { rm -rf "$work" "$stage" "$old"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- source ---------------------------------------------------------------------------------
fetch_source() {
  (cd "$work" && apt-get source -q libsrtp2) >"$work/apt-source.log" 2>&1
}
log "fetching Debian source package libsrtp2 into $work"
if ! fetch_source; then
  if [ "$(id -u)" -eq 0 ]; then
    log "apt-get source failed; refreshing package lists once (apt-get update) and retrying"
    apt-get update -q >&2 || die "apt-get update failed"
    rm -rf "${work:?}"/*
    fetch_source || { cat "$work/apt-source.log" >&2; die "apt-get source libsrtp2 failed (are deb-src entries enabled? tools/install-deps.sh enables them)"; }
  else
    cat "$work/apt-source.log" >&2
    die "apt-get source libsrtp2 failed; as root run tools/install-deps.sh (enables deb-src) or apt-get update, then retry"
  fi
fi
srcdir=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'libsrtp2-*' | head -n1)
[ -n "$srcdir" ] || { cat "$work/apt-source.log" >&2; die "no unpacked libsrtp2 source directory in $work"; }
deb_version=$(cd "$srcdir" && dpkg-parsechangelog -S Version)
upstream=${deb_version#*:}
upstream=${upstream%-*}
upstream=${upstream%%+*}
[ "$upstream" = "$SRTP_VERSION" ] ||
  die "apt offers libsrtp2 $deb_version but this script pins upstream $SRTP_VERSION; update SRTP_VERSION in $0 (and docs/dependencies.md) after checking the new version"
log "source: libsrtp2 $deb_version (Debian patches applied)"

# --- configure + build ----------------------------------------------------------------------
jobs=$(nproc 2>/dev/null || echo 2)
cd "$srcdir"
log "configuring with OpenSSL crypto: ${SRTP_CONFIGURE[*]} CFLAGS='$SRTP_CFLAGS'"
./configure --prefix="$prefix" "${SRTP_CONFIGURE[@]}" CFLAGS="$SRTP_CFLAGS" >"$work/configure.log" 2>&1 ||
  { tail -n 40 "$work/configure.log" >&2; die "configure failed (full log was $work/configure.log)"; }
grep -qx '#define OPENSSL 1' crypto/include/config.h || die "configure did not enable OpenSSL crypto"
if grep -qx '#define NSS 1' crypto/include/config.h; then die "configure enabled NSS crypto"; fi
grep -qx '#define GCM 1' crypto/include/config.h || die "configure did not enable AES-GCM"

log "building libsrtp2.a and self-test drivers (make -j$jobs)"
make -j"$jobs" libsrtp2.a test/srtp_driver crypto/test/cipher_driver >"$work/make.log" 2>&1 ||
  { tail -n 40 "$work/make.log" >&2; die "make failed"; }

# The archive must call into OpenSSL (EVP) and never into NSS (PK11_*).
syms=$(nm -u libsrtp2.a 2>/dev/null || true)
grep -q 'EVP_EncryptInit_ex' <<<"$syms" || die "libsrtp2.a does not reference OpenSSL EVP; not an OpenSSL build"
if grep -q 'PK11_' <<<"$syms"; then die "libsrtp2.a references NSS (PK11_*)"; fi

log "running libsrtp self tests (srtp_driver, cipher_driver)"
test/srtp_driver -v >"$work/selftest.log" 2>&1 || { tail -n 40 "$work/selftest.log" >&2; die "srtp_driver self test failed"; }
crypto/test/cipher_driver -v >>"$work/selftest.log" 2>&1 || { tail -n 40 "$work/selftest.log" >&2; die "cipher_driver self test failed"; }
grep -q 'counter mode using openssl' "$work/selftest.log" || die "self test did not exercise the OpenSSL AES-CM cipher"

# --- install atomically ---------------------------------------------------------------------
log "installing into $stage"
rm -rf "$stage"
# Configured with the final prefix (so libsrtp2.pc points there); staged by overriding prefix.
make install prefix="$stage" >"$work/install.log" 2>&1 || { tail -n 20 "$work/install.log" >&2; die "make install failed"; }
if [ ! -f "$stage/lib/libsrtp2.a" ] || [ ! -f "$stage/include/srtp2/srtp.h" ]; then
  die "install layout unexpected in $stage"
fi
rm -f "$stage"/lib/libsrtp2.so*  # static only
{
  echo "recipe=$RECIPE"
  echo "debian_source=libsrtp2 $deb_version"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$stage/$STAMP_NAME.tmp"
mv "$stage/$STAMP_NAME.tmp" "$stage/$STAMP_NAME"   # stamp written last
if [ -e "$prefix" ]; then mv "$prefix" "$old"; fi
mv "$stage" "$prefix"
rm -rf "$old"
log "installed libsrtp2 $SRTP_VERSION (OpenSSL) into $prefix"
finish
