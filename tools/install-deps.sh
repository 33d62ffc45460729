#!/usr/bin/env bash
# Installs everything Veil needs to build, run and test, from Debian packages.
# Idempotent: a second run only checks. Needs root (apt).
set -euo pipefail

pkgs=(
  build-essential meson ninja-build pkg-config
  libdpdk-dev dpdk dpdk-dev libnuma-dev libpcap-dev
  libssl-dev libsofia-sip-ua-dev libtomlplusplus-dev libboost-dev openssl
  libgtest-dev libgmock-dev
  dpkg-dev fakeroot autoconf automake libtool
  iproute2 iputils-ping sip-tester baresip-core kamailio tshark tcpdump python3 python3-websockets python3-cryptography
  shellcheck chromium
)
# node and npm for the browser-side test tools (tests/browser): Debian's, unless a node is
# already installed (NodeSource's package brings its own npm and conflicts with Debian's).
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# Source packages (for libsrtp2 on OpenSSL, see docs/dependencies.md) need deb-src entries.
need_src=0
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
  need_src=1
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -i -E 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb deb-src/' "$f"
  done
  if [ -f /etc/apt/sources.list ] && grep -qE '^deb ' /etc/apt/sources.list; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >/etc/apt/sources.list.d/veil-src.list
  fi
fi

if [ ${#missing[@]} -gt 0 ] || [ $need_src -eq 1 ] || [ ! -d /var/lib/apt/lists ] || \
   ! ls /var/lib/apt/lists/*Sources* >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    # Packages installed here are tools and test peers, never services of this host (kamailio
    # would otherwise start listening on 5060): invoke-rc.d and deb-systemd-invoke start
    # nothing while a policy-rc.d says 101. Ours only if there is none already.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    rc=0
    apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    if [ $own_policy = 1 ]; then rm -f "$policy"; fi
    [ $rc = 0 ] || exit $rc
  fi
fi
# kamailio is a test peer (the PBX of tests/e2e/test_kamailio.py, started inside a lab
# namespace): never a service on the host.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet kamailio 2>/dev/null; then
  systemctl disable --now kamailio >/dev/null 2>&1 || true
fi
# Browser-side test tools from npm (playwright-core drives Debian's chromium; sip.js is the
# page's SIP stack), pinned by tests/browser/package-lock.json. playwright never downloads a
# browser here (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD, and only playwright-core is installed).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
browser_dir=$here/tests/browser
lock_sum=$(sha256sum "$browser_dir/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$browser_dir/node_modules/.veil-lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
  echo "install-deps: npm ci in tests/browser"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$browser_dir" --no-audit --no-fund --loglevel=error
  echo "$lock_sum" >"$browser_dir/node_modules/.veil-lock-sha256"
fi
echo "install-deps: all dependencies present"
