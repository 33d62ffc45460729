#!/usr/bin/env python3
"""veil-leak-audit: find forbidden addresses, host names and MACs anywhere in packet captures.

  veil-leak-audit.py --forbid 198.51.100.0/24 --forbid 2001:db8:2::/48 \\
      --forbid-name pbx.internal.example --forbid-mac 02:11:00:00:00:10 \\
      capture.pcap [more.pcapng ...] [--json] [--ignore-l2-l3]

Every byte of every packet (link-layer header, IP header, transport header, payload) is searched
for every form in which a forbidden item can appear:

  prefixes  binary (4/16 bytes, any address inside the prefix), dotted quad, IPv6 text in any valid
            spelling (compressed, full, mixed case, bracketed, with a zone, IPv4-mapped/NAT64/6to4/
            Teredo embeddings of a forbidden IPv4), hex digits, reverse-DNS names (text and DNS wire
            format), STUN XOR-*-ADDRESS attributes
  names     case-insensitive text and DNS wire format
  MACs      binary, text (: - . or bare hex), and the EUI-64 interface identifier derived from it
            (binary or inside IPv6 text)

and the text forms again after URL decoding (%2E), base64 decoding, WebSocket unmasking, and across
the boundary of consecutive TCP segments and IP fragments.

Binary matches are listed where an address can be (address fields, options, ICMP bodies, binary
payloads); those that are chance by position or content (across fixed header fields, inside
RTP/SRTP/DTLS/TLS payloads, text characters inside text) are only counted (--binary all lists them).

Exit status: 0 no findings, 1 findings, 2 usage error or a capture that could not be read
(completely or partly: the audit is incomplete). See docs/leak-audit.md.
"""
import argparse
import binascii
import bisect
import datetime
import gzip
import ipaddress
import json
import os
import re
import struct
import sys
import zlib

TOOL = 'veil-leak-audit'
BATCH_BYTES = 4 << 20          # packets are searched in batches of about this many bytes
MAX_RECORD = 256 << 20          # a record longer than this means a corrupt file
STATE_CAP = 65536               # TCP/fragment streams remembered for cross-packet searching

# ----------------------------------------------------------------------------------------------
# Rules


class Rule:
    """One forbidden item. kind: 'prefix' (IPv4 or IPv6), 'name' or 'mac'."""

    def __init__(self, kind, text):
        self.kind = kind
        self.text = text


class PrefixRule(Rule):
    def __init__(self, net):
        super().__init__('prefix', str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
        self.version = net.version
        self.bits = net.prefixlen
        self.alen = 4 if net.version == 4 else 16
        self.net = int(net.network_address)
        self.mask = int(net.netmask)
        packed = net.network_address.packed
        k, r = divmod(self.bits, 8)
        self.fixed = packed[:k]                          # whole bytes every match starts with
        self.rmask = (0xff << (8 - r)) & 0xff if r else 0
        self.rval = packed[k] & self.rmask if r else 0
        f, fr = divmod(self.bits, 4)
        self.hexfixed = packed.hex()[:f].encode()        # whole nibbles every hex match starts with
        self.hexlen = self.alen * 2
        self.hex_rmask = (0xf << (4 - fr)) & 0xf if fr else 0
        self.hex_rval = int(packed.hex()[f], 16) & self.hex_rmask if fr else 0
        self.hex_anywhere = self.bits >= 24              # shorter: hex digit boundaries required

    def contains(self, a):
        return (a & self.mask) == self.net

    def fmt(self, a):
        return str(ipaddress.ip_address(a) if self.version == 6 else ipaddress.IPv4Address(a))


class NameRule(Rule):
    def __init__(self, name):
        super().__init__('name', name.lower())
        self.low = name.lower().encode('idna' if any(ord(c) > 127 for c in name) else 'ascii')
        labels = self.low.split(b'.')
        self.wire = b''.join(bytes([len(x)]) + x for x in labels if x)


class MacRule(Rule):
    def __init__(self, mac):
        super().__init__('mac', ':'.join('%02x' % b for b in mac))
        self.mac = mac
        self.eui = bytes([mac[0] ^ 2]) + mac[1:3] + b'\xff\xfe' + mac[3:6]
        self.eui_int = int.from_bytes(self.eui, 'big')
        self.mac_list = list(mac)
        h = mac.hex().encode()
        # dashed, Cisco dotted, bare hex; colon forms (padded or not) are found by the walker of
        # hex-and-colon runs (Scanner._v6_run)
        self.literals = [b'-'.join(h[i:i + 2] for i in range(0, 12, 2)), b'.'.join((h[0:4], h[4:8], h[8:12])), h]


RE_MAC_ARG = re.compile(r'^(?:[0-9A-Fa-f]{1,2}[:-]){5}[0-9A-Fa-f]{1,2}$'
                        r'|^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$|^[0-9A-Fa-f]{12}$')


def parse_mac(text):
    t = text.strip()
    if not RE_MAC_ARG.match(t):
        raise ValueError('not a MAC address: %r' % text)
    if len(t) == 12:
        return bytes.fromhex(t)
    if '.' in t:
        return bytes.fromhex(t.replace('.', ''))
    return bytes(int(x, 16) for x in re.split('[:-]', t))


def parse_prefix(text):
    t = text.strip()
    if t.startswith('[') and t.endswith(']'):
        t = t[1:-1]
    net = ipaddress.ip_network(t, strict=False)
    return net


def parse_name(text):
    t = text.strip().rstrip('.')
    if not t or any(c.isspace() or ord(c) < 33 for c in t):
        raise ValueError('not a host name: %r' % text)
    return t


class Rules:
    def __init__(self):
        self.v4 = []
        self.v6 = []
        self.names = []
        self.macs = []
        self.all = []
        self.seen = set()

    def add_prefix(self, net):
        r = PrefixRule(net)
        if r.text in self.seen:
            return
        self.seen.add(r.text)
        (self.v4 if r.version == 4 else self.v6).append(r)
        self.all.append(r)

    def add_name(self, name):
        r = NameRule(name)
        if r.low in self.seen:
            return
        self.seen.add(r.low)
        self.names.append(r)
        self.all.append(r)

    def add_mac(self, mac):
        r = MacRule(mac)
        if r.text in self.seen:
            return
        self.seen.add(r.text)
        self.macs.append(r)
        self.all.append(r)

    def finish(self):
        self.longest_text = max([45] + [len(n.low) + 8 for n in self.names])
        # The dotted-quad search only looks at quads whose first octet a forbidden prefix allows.
        firsts = set()
        generic = False
        for p in self.v4:
            if p.bits < 8:
                generic = True
                break
            firsts.add(p.net >> 24)
        # probes: the first octet's digits and its dot, found with bytes.find; None: regex over all
        self.v4_probes = None if (generic or not firsts) else [(str(o) + '.').encode() for o in sorted(firsts)]
        self.need_v6text = bool(self.v6 or self.v4 or self.macs)
        self.v6_short = any(p.bits < 16 or (p.net >> 112) < 0x100 for p in self.v6)
        self.need_low = bool(self.names or self.macs or self.v4 or self.v6)

    def check_v4(self, a):
        return [p for p in self.v4 if p.contains(a)]


# ----------------------------------------------------------------------------------------------
# Address text parsing

HEXDIGITS = frozenset(b'0123456789abcdefABCDEF')


def parse_v4_text(s):
    parts = s.split('.')
    if len(parts) != 4:
        return None
    a = 0
    for x in parts:
        if not (1 <= len(x) <= 3) or not x.isdigit():
            return None
        v = int(x)
        if v > 255:
            return None
        a = (a << 8) | v
    return a


def parse_v6_text(s):
    """s: ASCII text of hex digits, ':' and '.' only. Returns the address as an int or None."""
    if '::' in s:
        if s.count('::') > 1 or ':::' in s:
            return None
        head, tail = s.split('::')
        hp = head.split(':') if head else []
        tp = tail.split(':') if tail else []
        dbl = True
    else:
        hp = s.split(':')
        tp = []
        dbl = False
    last = tp if tp else hp
    if last and '.' in last[-1]:
        if dbl and not tp:
            return None
        v4 = parse_v4_text(last[-1])
        if v4 is None:
            return None
        last[-1:] = ['%x' % (v4 >> 16), '%x' % (v4 & 0xffff)]
    n = len(hp) + len(tp)
    if (dbl and n > 7) or (not dbl and n != 8):
        return None
    a = 0
    for g in hp:
        if not (1 <= len(g) <= 4) or '.' in g:
            return None
        a = (a << 16) | int(g, 16)
    a <<= 16 * (8 - len(hp))
    t = 0
    for g in tp:
        if not (1 <= len(g) <= 4) or '.' in g:
            return None
        t = (t << 16) | int(g, 16)
    return a | t


def v4str(a):
    return '%d.%d.%d.%d' % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)


def v6str(a):
    return str(ipaddress.IPv6Address(a))


# IPv6 prefixes that carry an IPv4 address (text forms are decoded; binary forms hold the 4 bytes
# verbatim and are found by the binary search, except Teredo's obfuscated client address).
MAPPED = (0xffff << 32, (1 << 128) - (1 << 32))
NAT64 = (0x0064ff9b << 96, (1 << 128) - (1 << 32))
COMPAT = (0, (1 << 128) - (1 << 32))
SIX2FOUR = (0x2002 << 112, ((1 << 16) - 1) << 112)
TEREDO = (0x20010000 << 96, ((1 << 32) - 1) << 96)


def embedded_v4(a, dotted):
    """[(ipv4, how)] embedded in IPv6 address a."""
    out = []
    if a & MAPPED[1] == MAPPED[0]:
        out.append((a & 0xffffffff, 'IPv4-mapped'))
    elif a & NAT64[1] == NAT64[0]:
        out.append((a & 0xffffffff, 'NAT64'))
    elif a & COMPAT[1] == COMPAT[0] and dotted:
        out.append((a & 0xffffffff, 'IPv4-compatible'))
    if a & SIX2FOUR[1] == SIX2FOUR[0]:
        out.append(((a >> 80) & 0xffffffff, '6to4'))
    if a & TEREDO[1] == TEREDO[0]:
        out.append(((a >> 64) & 0xffffffff, 'Teredo server'))
        out.append((~a & 0xffffffff, 'Teredo client'))
    return out


# ----------------------------------------------------------------------------------------------
# Searching. Every scan function takes a buffer and appends hits:
#   (start, end, rule, kind, shown, address)
# in buffer coordinates. 'shown' is the matched text or bytes as printed, 'address' the normalised
# forbidden thing that matched.

RE_V4_ANY = re.compile(rb'(?<![0-9])(?=([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})(?![0-9]))')
RE_V4_AT = re.compile(rb'[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9])')
# Every IPv6 text address holds '::' or three inner groups between colons; so does a MAC with ':'.
RE_V6_PROBE = re.compile(rb'::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:')
RE_RUN_FWD = re.compile(rb'[0-9A-Fa-f.:]*')
RUNCHARS = frozenset(b'0123456789abcdefABCDEF.:')
DIGITS = frozenset(b'0123456789')
RE_INADDR = re.compile(rb'(?<![0-9])((?:[0-9]{1,3}\.){1,4})in-addr\.arpa')
RE_INADDR_WIRE = re.compile(rb'((?:[\x01-\x03][0-9]{1,3}){1,4})\x07in-addr\x04arpa')
RE_IP6ARPA = re.compile(rb'(?<![0-9a-z])((?:[0-9a-f]\.){1,32})ip6\.arpa')
RE_IP6ARPA_WIRE = re.compile(rb'((?:\x01[0-9a-f]){1,32})\x03ip6\x04arpa')
RE_HEXRUN = re.compile(rb'[0-9a-f]+')
RE_PCT = re.compile(rb'%[0-9A-Fa-f]{2}')
RE_B64 = re.compile(rb'[A-Za-z0-9+/_-]{10,}')
B64_URLSAFE = bytes.maketrans(b'-_', b'+/')
STUN_COOKIE = b'\x21\x12\xa4\x42'
STUN_XOR_ATTRS = {0x0020: 'XOR-MAPPED-ADDRESS', 0x8020: 'XOR-MAPPED-ADDRESS', 0x0012: 'XOR-PEER-ADDRESS',
                  0x0016: 'XOR-RELAYED-ADDRESS'}


def printable(b):
    return ''.join(chr(c) if 32 <= c < 127 else '.' for c in b)


def hexbytes(b):
    return ' '.join('%02x' % c for c in b)


class Scanner:
    def __init__(self, rules, binary_mode):
        self.r = rules
        self.binary_mode = binary_mode
        self.run_cache = {}

    # -- binary ---------------------------------------------------------------------------------
    def scan_binary(self, buf, hits):
        if self.binary_mode == 'none':
            return
        n = len(buf)
        for p in self.r.v4 + self.r.v6:
            fixed = p.fixed
            if not fixed:                   # shorter than /8: would match nearly everything
                continue
            k = len(fixed)
            L = p.alen
            i = buf.find(fixed)
            while i >= 0:
                if i + L <= n and (not p.rmask or (buf[i + k] & p.rmask) == p.rval):
                    b = buf[i:i + L]
                    a = int.from_bytes(b, 'big')
                    hits.append((i, i + L, p, 'ipv%d-binary' % p.version, hexbytes(b), p.fmt(a)))
                i = buf.find(fixed, i + 1)
        for m in self.r.macs:
            for pat, kind in ((m.mac, 'mac-binary'), (m.eui, 'mac-eui64-binary')):
                i = buf.find(pat)
                while i >= 0:
                    hits.append((i, i + len(pat), m, kind, hexbytes(pat), m.text))
                    i = buf.find(pat, i + 1)

    # -- STUN -----------------------------------------------------------------------------------
    def scan_stun(self, buf, bounds, hits):
        """bounds(start) -> end of the packet holding buffer offset start (or None)."""
        if not (self.r.v4 or self.r.v6):
            return
        i = buf.find(STUN_COOKIE, 4)
        while i >= 0:
            h = i - 4
            end_pkt = bounds(h)
            if end_pkt is not None and h + 20 <= end_pkt:
                mtype, mlen = struct.unpack_from('!HH', buf, h)
                if mtype & 0xC000 == 0 and mlen % 4 == 0 and h + 20 + mlen <= end_pkt:
                    txid = buf[i + 4:i + 16]
                    p = h + 20
                    end = p + mlen
                    while p + 4 <= end:
                        at, al = struct.unpack_from('!HH', buf, p)
                        v = p + 4
                        if v + al > end:
                            break
                        if at in STUN_XOR_ATTRS and al >= 8:
                            fam = buf[v + 1]
                            if fam == 1 and al == 8:
                                a = int.from_bytes(buf[v + 4:v + 8], 'big') ^ 0x2112A442
                                for rule in self.r.check_v4(a):
                                    hits.append((v + 4, v + 8, rule, 'stun-xor',
                                                 '%s %s' % (STUN_XOR_ATTRS[at], hexbytes(buf[v + 4:v + 8])),
                                                 v4str(a)))
                            elif fam == 2 and al == 20:
                                a = (int.from_bytes(buf[v + 4:v + 20], 'big')
                                     ^ int.from_bytes(STUN_COOKIE + txid, 'big'))
                                for rule in self.r.v6:
                                    if rule.contains(a):
                                        hits.append((v + 4, v + 20, rule, 'stun-xor',
                                                     '%s %s' % (STUN_XOR_ATTRS[at], hexbytes(buf[v + 4:v + 20])),
                                                     v6str(a)))
                                for e, how in embedded_v4(a, False):
                                    for rule in self.r.check_v4(e):
                                        hits.append((v + 4, v + 20, rule, 'stun-xor',
                                                     '%s %s' % (STUN_XOR_ATTRS[at], hexbytes(buf[v + 4:v + 20])),
                                                     '%s (%s %s)' % (v4str(e), how, v6str(a))))
                        p = v + ((al + 3) & ~3)
            i = buf.find(STUN_COOKIE, i + 1)

    # -- text -----------------------------------------------------------------------------------
    def scan_text(self, buf, hits, low=None):
        r = self.r
        if r.v4:
            if r.v4_probes is None:
                for m in RE_V4_ANY.finditer(buf):
                    self._v4_at(buf, m.start(), hits)
            else:
                for probe in r.v4_probes:
                    room = 3 - (len(probe) - 1)          # leading zeros the octet may carry
                    i = buf.find(probe)
                    while i >= 0:
                        s = i
                        while room and s > 0 and buf[s - 1] == 0x30 and i - s < room:
                            s -= 1
                        if s == 0 or buf[s - 1] not in DIGITS:
                            self._v4_at(buf, s, hits)
                        i = buf.find(probe, i + 1)
        if r.need_v6text:
            last = -1
            for m in RE_V6_PROBE.finditer(buf):
                h = m.start()
                if h < last:
                    continue
                s = h
                while s > 0 and buf[s - 1] in RUNCHARS:
                    s -= 1
                e = RE_RUN_FWD.match(buf, h).end()
                last = e
                self._v6_run(buf[s:e], s, hits)
        if not r.need_low:
            return
        if low is None:
            low = buf.lower()
        for nm in r.names:
            for pat, kind in ((nm.low, 'name'), (nm.wire, 'name-dns-wire')):
                i = low.find(pat)
                while i >= 0:
                    hits.append((i, i + len(pat), nm, kind, printable(buf[i:i + len(pat)]), nm.text))
                    i = low.find(pat, i + 1)
        for mc in r.macs:
            for pat in mc.literals:
                i = low.find(pat)
                while i >= 0:
                    hits.append((i, i + len(pat), mc, 'mac-text', printable(buf[i:i + len(pat)]), mc.text))
                    i = low.find(pat, i + 1)
        for p in r.v4 + r.v6:
            self._hex(buf, low, p, hits)
        if b'arpa' in low:
            self._arpa(buf, low, hits)

    def _v4_at(self, buf, s, hits):
        m = RE_V4_AT.match(buf, s)
        if not m:
            return
        q = m.group().decode('ascii')
        a = parse_v4_text(q)
        if a is None:
            return
        for rule in self.r.check_v4(a):
            hits.append((s, s + len(q), rule, 'ipv4-text', q, v4str(a)))

    def _hex(self, buf, low, p, hits):
        pat = p.hexfixed
        if not pat:
            return
        L = p.hexlen
        n = len(low)
        i = low.find(pat)
        while i >= 0:
            e = i + L
            if e <= n:
                cand = low[i:e]
                if RE_HEXRUN.fullmatch(cand):
                    ok = True
                    if p.hex_rmask:
                        ok = (int(cand[len(pat):len(pat) + 1], 16) & p.hex_rmask) == p.hex_rval
                    if ok and not p.hex_anywhere:
                        ok = (i == 0 or low[i - 1] not in HEXDIGITS) and (e == n or low[e] not in HEXDIGITS)
                    if ok:
                        a = int(cand, 16)
                        hits.append((i, e, p, 'ipv%d-hex' % p.version, printable(buf[i:e]), p.fmt(a)))
            i = low.find(pat, i + 1)

    def _arpa(self, buf, low, hits):
        # Only the 80 bytes before each 'arpa' can hold a reverse name: search those windows.
        found = []
        seen = set()
        i = low.find(b'arpa')
        while i >= 0:
            w0 = max(0, i - 80)
            for rx, ver, kind in ((RE_INADDR, 4, 'reverse-dns'), (RE_INADDR_WIRE, 4, 'reverse-dns-wire'),
                                  (RE_IP6ARPA, 6, 'reverse-dns'), (RE_IP6ARPA_WIRE, 6, 'reverse-dns-wire')):
                for m in rx.finditer(low, w0, i + 4):
                    if (m.start(), m.end()) in seen:
                        continue
                    seen.add((m.start(), m.end()))
                    g = m.group(1)
                    if ver == 4 and kind == 'reverse-dns':
                        units = [int(x) for x in reversed(g.split(b'.')[:-1])]
                    elif ver == 4:
                        labels, p = [], 0
                        while p < len(g):
                            ln = g[p]
                            labels.append(g[p + 1:p + 1 + ln])
                            p += 1 + ln
                        if not all(x.isdigit() for x in labels):
                            continue
                        units = [int(x) for x in reversed(labels)]
                    elif kind == 'reverse-dns':
                        units = [int(x, 16) for x in reversed(g.split(b'.')[:-1])]
                    else:
                        units = [int(chr(x), 16) for x in reversed(g[1::2])]
                    found.append((m.start(), m.end(), ver, units, kind))
            i = low.find(b'arpa', i + 1)
        for s, e, ver, units, kind in found:
            if ver == 4:
                if any(u > 255 for u in units):
                    continue
                bits = 8 * len(units)
                a = 0
                for u in units:
                    a = (a << 8) | u
                a <<= 32 - bits
                for p in self.r.v4:
                    if bits >= p.bits and p.contains(a):
                        hits.append((s, e, p, kind, printable(buf[s:e]),
                                     v4str(a) + ('' if bits == 32 else '/%d' % bits)))
            else:
                bits = 4 * len(units)
                a = 0
                for u in units:
                    a = (a << 4) | u
                a <<= 128 - bits
                for p in self.r.v6:
                    if bits >= p.bits and p.contains(a):
                        hits.append((s, e, p, kind, printable(buf[s:e]),
                                     v6str(a) + ('' if bits == 128 else '/%d' % bits)))

    def _v6_run(self, run, start, hits):
        # Captures repeat the same few addresses over and over: remember each run's result.
        res = self.run_cache.get(run)
        if res is None:
            res = []
            self._v6_run_uncached(run, 0, res)
            if len(self.run_cache) > 200000:
                self.run_cache.clear()
            self.run_cache[run] = res
        for h in res:
            hits.append((h[0] + start, h[1] + start) + h[2:])

    def _v6_run_uncached(self, run, start, hits):
        # A run of hex digits, ':' and '.'. The address may be all of it or part of it (glued to
        # a word ending in a hex letter, followed by :port), so every window of colon-separated
        # parts that can be an address is tried: eight groups, seven and a dotted quad, or any
        # shorter window holding the '::'.
        text = run.decode('ascii')
        lead = len(text) - len(text.lstrip('.'))
        text = text.strip('.')
        start += lead
        parts = text.split(':')
        n = len(parts)
        r = self.r
        dbl = '::' in text
        if r.macs and n >= 6:
            vals = [int(x, 16) if 0 < len(x) <= 2 and '.' not in x else -1 for x in parts]
            for mc in r.macs:
                i = -1
                while True:
                    try:
                        i = vals.index(mc.mac[0], i + 1)
                    except ValueError:
                        break
                    if vals[i:i + 6] == mc.mac_list:
                        hs = start + len(':'.join(parts[:i])) + (1 if i else 0)
                        t = ':'.join(parts[i:i + 6])
                        hits.append((hs, hs + len(t), mc, 'mac-text', t, mc.text))
        if not (r.v4 or r.v6 or r.macs):
            return
        if not dbl and (n < 7 or (not r.v6_short and max(len(x) for x in parts) <= 2)):
            return                        # no window can be an address (see skip_short below)
        offs = []
        o = 0
        # prefix sums: empty parts, parts that cannot be inside a window (dotted or > 4 digits),
        # parts of 1-2 digits (MAC octets)
        emp, bad, two = [0], [0], [0]
        for x in parts:
            offs.append(o)
            o += len(x) + 1
            lx = len(x)
            dot = '.' in x
            emp.append(emp[-1] + (lx == 0))
            bad.append(bad[-1] + (dot or lx > 4))
            two.append(two[-1] + (0 < lx <= 2 and not dot))
        # Windows of eight one- or two-digit groups (certificate fingerprints, hex dumps) cannot hold
        # an address of a prefix whose first group has 3-4 digits, an embedded IPv4 or an EUI-64.
        skip_short = not r.v6_short
        if emp[n] == 0:                   # no '::': eight groups, or seven and a dotted quad
            if n < 7:
                return
            windows = [(i, j) for i in range(n - 6) for j in (i + 6, i + 7) if j < n]
        else:
            nxt = [n] * (n + 1)           # index of the first empty part at or after i
            for k in range(n - 1, -1, -1):
                nxt[k] = k if parts[k] == '' else nxt[k + 1]
            windows = []
            for i in range(n):
                if parts[i] == '' and (i + 1 >= n or parts[i + 1] != ''):
                    continue              # a window may start with '::' but not with one ':'
                lo = i + 6 if nxt[i] > i + 9 else max(i + 1, nxt[i])
                for j in range(lo, min(n, i + 10)):
                    if parts[j] == '' and parts[j - 1] != '':
                        continue          # nor end with one ':'
                    windows.append((i, j))
        for i, j in windows:
            if True:
                if bad[j] - bad[i + 1] > 0:           # something unusable inside the window
                    continue
                cnt = j - i + 1
                ne = emp[j + 1] - emp[i]
                if ne == 0:
                    if not (cnt == 8 or (cnt == 7 and '.' in parts[j])):
                        continue
                    if skip_short and two[j + 1] - two[i] == cnt:
                        continue
                elif ne > 3:
                    continue
                pi, pj = parts[i], parts[j]
                starts = [(pi, offs[i])]
                if len(pi) > 4 and '.' not in pi:
                    starts = [(pi[-k:], offs[i] + len(pi) - k) for k in (4, 3, 2, 1)]
                ends = [pj]
                if len(pj) > 4 and '.' not in pj:
                    ends = [pj[:k] for k in (4, 3, 2, 1)]
                mid = parts[i + 1:j]
                for sp, so in starts:
                    for ep in ends:
                        s = ':'.join([sp] + mid + [ep])
                        a = parse_v6_text(s)
                        if a is None:
                            continue
                        hs = start + so
                        he = hs + len(s)
                        for p in r.v6:
                            if p.contains(a):
                                hits.append((hs, he, p, 'ipv6-text', s, v6str(a)))
                        if r.v4:
                            for e, how in embedded_v4(a, '.' in ep):
                                for p in r.check_v4(e):
                                    hits.append((hs, he, p, 'ipv6-text', s, '%s (%s)' % (v4str(e), how)))
                        for mc in r.macs:
                            if a & 0xffffffffffffffff == mc.eui_int:
                                hits.append((hs, he, mc, 'mac-eui64-text', s, mc.text))


# ----------------------------------------------------------------------------------------------
# Capture files


class CaptureError(Exception):
    pass


class Prefixed:
    """A read-only stream with some bytes put back in front (for sniffing stdin)."""

    def __init__(self, head, f):
        self.head = head
        self.f = f

    def read(self, n=-1):
        if self.head:
            if n < 0:
                out = self.head + self.f.read()
                self.head = b''
                return out
            out = self.head[:n]
            self.head = self.head[n:]
            if len(out) < n:
                out += self.f.read(n - len(out))
            return out
        return self.f.read(n)

    def close(self):
        pass


class Record:
    __slots__ = ('pktno', 'sec', 'nsec', 'digits', 'iface', 'ifname', 'linktype', 'data', 'origlen')


def read_exact(f, n):
    b = f.read(n)
    if len(b) == n:
        return b
    out = [b]
    got = len(b)
    while got < n and b:
        b = f.read(n - got)
        out.append(b)
        got += len(b)
    return b''.join(out)


PCAP_MAGICS = {
    b'\xa1\xb2\xc3\xd4': ('>', 6, 0), b'\xd4\xc3\xb2\xa1': ('<', 6, 0),
    b'\xa1\xb2\x3c\x4d': ('>', 9, 0), b'\x4d\x3c\xb2\xa1': ('<', 9, 0),
    b'\xa1\xb2\xcd\x34': ('>', 6, 8), b'\x34\xcd\xb2\xa1': ('<', 6, 8),   # Kuznetzov's modified pcap
}
PCAPNG_SHB = b'\x0a\x0d\x0d\x0a'


class Capture:
    """Iterates over the packets of a pcap or pcapng file (optionally gzip-compressed)."""

    def __init__(self, path):
        self.path = path
        self.format = None
        self.warnings = []
        self.truncated = False           # the file ended in the middle of a record
        self.compressed = False
        if path == '-':
            raw = sys.stdin.buffer
        else:
            try:
                raw = open(path, 'rb')
            except OSError as e:
                raise CaptureError('cannot open: %s' % (e.strerror or e))
        self._raw = raw
        head = read_exact(raw, 4)
        f = Prefixed(head, raw)
        if head[:2] == b'\x1f\x8b':
            f = gzip.GzipFile(fileobj=f, mode='rb')
            head = read_exact(f, 4)
            f = Prefixed(head, f)
            self.compressed = True
        self.f = f
        if head in PCAP_MAGICS:
            self.format = 'pcap'
        elif head == PCAPNG_SHB:
            self.format = 'pcapng'
        elif len(head) < 4:
            raise CaptureError('empty or too short to be a capture')
        else:
            raise CaptureError('not a pcap or pcapng file (magic %s)' % head.hex())

    def close(self):
        if self._raw is not sys.stdin.buffer:
            self._raw.close()

    def packets(self):
        try:
            if self.format == 'pcap':
                yield from self._pcap()
            else:
                yield from self._pcapng()
        except (OSError, EOFError, zlib.error) as e:
            raise CaptureError('read error: %s' % e)

    def _short(self, what, got, want):
        if got == 0:
            return
        self.truncated = True
        self.warnings.append('file ends inside %s (%d of %d bytes): the capture was cut off; '
                             'the partial record was not audited' % (what, got, want))

    def _pcap(self):
        gh = read_exact(self.f, 24)
        if len(gh) < 24:
            raise CaptureError('pcap global header is truncated')
        e, digits, extra = PCAP_MAGICS[gh[:4]]
        network = struct.unpack(e + 'I', gh[20:24])[0]
        linktype = network & 0xffff
        self.linktypes = {linktype}
        hl = 16 + extra
        div = 1000 if digits == 6 else 1
        pktno = 0
        while True:
            rh = read_exact(self.f, hl)
            if len(rh) < hl:
                self._short('a record header', len(rh), hl)
                return
            sec, frac, incl, orig = struct.unpack(e + 'IIII', rh[:16])
            if incl > MAX_RECORD:
                raise CaptureError('record %d claims %d bytes: the file is corrupt' % (pktno + 1, incl))
            data = read_exact(self.f, incl)
            if len(data) < incl:
                self._short('packet %d' % (pktno + 1), len(data), incl)
                return
            pktno += 1
            r = Record()
            r.pktno = pktno
            r.sec = sec
            r.nsec = frac * (1000 if div == 1000 else 1)
            r.digits = digits
            r.iface = None
            r.ifname = None
            r.linktype = linktype
            r.data = data
            r.origlen = orig
            yield r

    def _pcapng(self):
        e = '<'
        ifaces = []
        pktno = 0
        self.linktypes = set()
        first = True
        while True:
            bh = read_exact(self.f, 8)
            if len(bh) < 8:
                self._short('a block header', len(bh), 8)
                return
            if bh[:4] == PCAPNG_SHB:
                bom = read_exact(self.f, 4)
                if len(bom) < 4:
                    self._short('a section header', len(bom), 4)
                    return
                if bom == b'\x4d\x3c\x2b\x1a':
                    e = '<'
                elif bom == b'\x1a\x2b\x3c\x4d':
                    e = '>'
                else:
                    raise CaptureError('pcapng section header with a bad byte-order magic %s' % bom.hex())
                blen = struct.unpack(e + 'I', bh[4:])[0]
                if blen < 28 or blen % 4 or blen > MAX_RECORD:
                    raise CaptureError('pcapng section header with a bad length %d' % blen)
                rest = read_exact(self.f, blen - 12)
                if len(rest) < blen - 12:
                    self._short('a section header', len(rest) + 12, blen)
                    return
                ifaces = []
                first = False
                continue
            if first:
                raise CaptureError('pcapng file does not start with a section header block')
            btype, blen = struct.unpack(e + 'II', bh)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                raise CaptureError('pcapng block of type 0x%x with a bad length %d (after packet %d): '
                                   'the file is corrupt' % (btype, blen, pktno))
            body = read_exact(self.f, blen - 8)
            if len(body) < blen - 8:
                self._short('a block', len(body) + 8, blen)
                return
            body = body[:-4]
            if btype == 1:                                     # interface description
                if len(body) < 8:
                    raise CaptureError('pcapng interface block too short')
                lt, _res, snap = struct.unpack(e + 'HHI', body[:8])
                units, digits, tsoff, name = 10 ** 6, 6, 0, None
                for code, val in pcapng_options(body[8:], e):
                    if code == 2:
                        name = val.rstrip(b'\0').decode('utf-8', 'replace')
                    elif code == 9 and val:
                        v = val[0]
                        if v & 0x80:
                            units, digits = 2 ** (v & 0x7f), 9
                        else:
                            units, digits = 10 ** v, min(v, 9)
                    elif code == 14 and len(val) >= 8:
                        tsoff = struct.unpack(e + 'q', val[:8])[0]
                ifaces.append((lt, snap, units, digits, tsoff, name))
                self.linktypes.add(lt)
                continue
            if btype == 6 or btype == 2:                      # enhanced / obsolete packet
                if btype == 6:
                    if len(body) < 20:
                        raise CaptureError('pcapng packet block too short')
                    ifid, hi, lo, cap, orig = struct.unpack(e + 'IIIII', body[:20])
                else:
                    if len(body) < 20:
                        raise CaptureError('pcapng packet block too short')
                    ifid, _drops, hi, lo, cap, orig = struct.unpack(e + 'HHIIII', body[:20])
                if cap > len(body) - 20:
                    raise CaptureError('pcapng packet block %d: captured length %d exceeds the block'
                                       % (pktno + 1, cap))
                data = body[20:20 + cap]
                if ifid >= len(ifaces):
                    raise CaptureError('pcapng packet %d refers to interface %d, which was not described'
                                       % (pktno + 1, ifid))
                lt, snap, units, digits, tsoff, name = ifaces[ifid]
                ticks = (hi << 32) | lo
                sec = ticks // units + tsoff
                nsec = (ticks % units) * 1000000000 // units
            elif btype == 3:                                   # simple packet
                if len(body) < 4 or not ifaces:
                    raise CaptureError('pcapng simple packet block without an interface')
                orig = struct.unpack(e + 'I', body[:4])[0]
                lt, snap, units, digits, tsoff, name = ifaces[0]
                cap = min(orig, len(body) - 4, snap or orig)
                data = body[4:4 + cap]
                ifid, sec, nsec = 0, None, 0
            else:
                continue                                        # name resolution, statistics, ...
            pktno += 1
            r = Record()
            r.pktno = pktno
            r.sec = sec
            r.nsec = nsec
            r.digits = digits
            r.iface = ifid
            r.ifname = name
            r.linktype = lt
            r.data = data
            r.origlen = orig
            yield r


def pcapng_options(b, e):
    p = 0
    while p + 4 <= len(b):
        code, ln = struct.unpack(e + 'HH', b[p:p + 4])
        if code == 0:
            return
        yield code, b[p + 4:p + 4 + ln]
        p += 4 + ((ln + 3) & ~3)


# ----------------------------------------------------------------------------------------------
# Dissection: enough of each packet to name its 5-tuple, say which header a match sits in, and
# find TCP segments, IP fragments and WebSocket frames.

ETH_VLAN = (0x8100, 0x88a8, 0x9100)
IPPROTO = {1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP', 47: 'GRE', 50: 'ESP', 51: 'AH',
           4: 'IPIP', 41: 'IPv6-in-IP', 2: 'IGMP', 89: 'OSPF', 112: 'VRRP'}
LINKTYPES = {0: 'NULL', 1: 'Ethernet', 101: 'raw IP', 108: 'LOOP', 113: 'Linux cooked (SLL)',
             228: 'raw IPv4', 229: 'raw IPv6', 276: 'Linux cooked v2 (SLL2)'}


class Info:
    __slots__ = ('proto', 'src', 'dst', 'sport', 'dport', 'regions', 'own', 'l4pay', 'tcp', 'frag',
                 'ifindex', 'fixed', 'addrs', 'paykind')

    def __init__(self):
        self.proto = None
        self.src = self.dst = None
        self.sport = self.dport = None
        self.regions = []        # (start, end, name): most specific last
        self.own = []            # (start, end): the packet's own L2/L3 addressing
        self.l4pay = None        # (start, end) of the UDP/TCP/SCTP payload
        self.tcp = None          # (seq, payload start, payload end)
        self.frag = None         # (key, offset, payload start, payload end, more)
        self.ifindex = None
        self.fixed = []          # (start, end): fixed-layout header bytes
        self.addrs = []          # (start, end): address fields inside them
        self.paykind = None      # 'tls' when the TCP flow carries TLS (set while reading)


def ipstr(b):
    return v4str(int.from_bytes(b, 'big')) if len(b) == 4 else v6str(int.from_bytes(b, 'big'))


def dissect(lt, d):
    inf = Info()
    n = len(d)
    et = None
    off = 0
    try:
        if lt == 1:
            if n < 14:
                return inf
            inf.regions += [(0, 6, 'Ethernet destination'), (6, 12, 'Ethernet source')]
            inf.addrs += [(0, 6), (6, 12)]
            et = (d[12] << 8) | d[13]
            off = 14
            while et in ETH_VLAN and n >= off + 4:
                inf.regions.append((off - 2, off + 2, 'VLAN tag'))
                et = (d[off + 2] << 8) | d[off + 3]
                off += 4
            inf.regions.insert(0, (0, off, 'Ethernet header'))
        elif lt == 113:
            if n < 16:
                return inf
            alen = min((d[4] << 8) | d[5], 8)
            inf.regions += [(0, 16, 'SLL header'), (6, 6 + alen, 'SLL link-layer address')]
            inf.addrs.append((6, 6 + alen))
            et = (d[14] << 8) | d[15]
            off = 16
        elif lt == 276:
            if n < 20:
                return inf
            alen = min(d[11], 8)
            inf.regions += [(0, 20, 'SLL2 header'), (12, 12 + alen, 'SLL2 link-layer address')]
            inf.addrs.append((12, 12 + alen))
            et = (d[0] << 8) | d[1]
            inf.ifindex = struct.unpack('!I', d[4:8])[0]
            off = 20
        elif lt in (101, 228, 229):
            et = 0x0800 if (n and d[0] >> 4 == 4) else 0x86DD if (n and d[0] >> 4 == 6) else None
        elif lt in (0, 108):
            if n < 4:
                return inf
            fam = struct.unpack('<I' if lt == 0 else '!I', d[:4])[0]
            if lt == 0 and fam > 0xffff:
                fam = struct.unpack('!I', d[:4])[0]
            inf.regions.append((0, 4, 'loopback header'))
            et = 0x0800 if fam == 2 else 0x86DD if fam in (10, 24, 28, 30) else None
            off = 4
        if off:
            inf.own.append((0, off))
            inf.fixed.append((0, off))
        if et == 0x0800:
            ip4(d, off, inf)
        elif et == 0x86DD:
            ip6(d, off, inf)
        elif et == 0x0806 and n >= off + 8:
            hl, pl = d[off + 4], d[off + 5]
            e = off + 8 + 2 * hl + 2 * pl
            inf.proto = 'ARP'
            inf.regions.append((off, min(e, n), 'ARP'))
            inf.own.append((off, min(e, n)))
            inf.fixed.append((off, min(e, n)))
            if e <= n:
                p = off + 8
                f = [(p, p + hl, 'ARP sender MAC'), (p + hl, p + hl + pl, 'ARP sender address'),
                     (p + hl + pl, p + 2 * hl + pl, 'ARP target MAC'), (p + 2 * hl + pl, e, 'ARP target address')]
                inf.regions += f
                inf.addrs += [(x[0], x[1]) for x in f]
                if pl in (4, 16):
                    inf.src = ipstr(d[p + hl:p + hl + pl])
                    inf.dst = ipstr(d[p + 2 * hl + pl:e])
        elif et is not None and inf.regions:
            inf.proto = 'ethertype 0x%04x' % et
    except (IndexError, struct.error):
        pass
    return inf


def needs_dissect(lt, d):
    """True for packets that must be dissected as they are read: TCP segments, IP fragments,
    anything not plainly IPv4/IPv6 over a known link (cheap checks only)."""
    try:
        if lt == 1:
            off = 14
            et = (d[12] << 8) | d[13]
            while et in ETH_VLAN:
                et = (d[off + 2] << 8) | d[off + 3]
                off += 4
        elif lt == 113:
            off = 16
            et = (d[14] << 8) | d[15]
        elif lt == 276:
            off = 20
            et = (d[0] << 8) | d[1]
        elif lt in (101, 228, 229):
            off = 0
            v = d[0] >> 4
            et = 0x0800 if v == 4 else 0x86DD if v == 6 else 0
        else:
            return True
        if et == 0x0800:
            return d[off + 9] == 6 or bool(d[off + 6] & 0x3f) or bool(d[off + 7])
        if et == 0x86DD:
            return d[off + 6] in (6, 0, 43, 44, 51, 60)
        return False
    except IndexError:
        return False


def ip4(d, off, inf):
    n = len(d)
    if n < off + 20 or d[off] >> 4 != 4:
        return
    hl = (d[off] & 15) * 4
    tot = (d[off + 2] << 8) | d[off + 3]
    end = min(n, off + tot) if tot >= hl else n
    proto = d[off + 9]
    fl = (d[off + 6] << 8) | d[off + 7]
    fo = (fl & 0x1fff) * 8
    mf = bool(fl & 0x2000)
    src, dst = d[off + 12:off + 16], d[off + 16:off + 20]
    inf.src, inf.dst = ipstr(src), ipstr(dst)
    inf.regions += [(off, off + hl, 'IPv4 header'), (off + 12, off + 16, 'IPv4 source address'),
                    (off + 16, off + 20, 'IPv4 destination address')]
    if hl > 20:
        inf.regions.append((off + 20, off + hl, 'IPv4 options'))
    inf.own.append((off, off + hl))
    inf.fixed.append((off, off + 20))
    inf.addrs += [(off + 12, off + 16), (off + 16, off + 20)]
    pay = off + hl
    if fo or mf:
        ident = (d[off + 4] << 8) | d[off + 5]
        inf.frag = ((4, src, dst, proto, ident), fo, pay, end, mf)
    if fo:
        inf.proto = '%s fragment' % IPPROTO.get(proto, 'IP proto %d' % proto)
        inf.regions.append((pay, end, 'IPv4 fragment data'))
        return
    l4(d, pay, end, proto, inf, 4)


def ip6(d, off, inf):
    n = len(d)
    if n < off + 40 or d[off] >> 4 != 6:
        return
    plen = (d[off + 4] << 8) | d[off + 5]
    end = min(n, off + 40 + plen) if plen else n
    nh = d[off + 6]
    src, dst = d[off + 8:off + 24], d[off + 24:off + 40]
    inf.src, inf.dst = ipstr(src), ipstr(dst)
    inf.regions += [(off, off + 40, 'IPv6 header'), (off + 8, off + 24, 'IPv6 source address'),
                    (off + 24, off + 40, 'IPv6 destination address')]
    inf.fixed.append((off, off + 40))
    inf.addrs += [(off + 8, off + 24), (off + 24, off + 40)]
    p = off + 40
    frag = None
    while nh in (0, 43, 60, 44, 51) and p + 8 <= end:
        if nh == 44:
            fl = (d[p + 2] << 8) | d[p + 3]
            frag = ((6, src, dst, d[p], d[p + 4:p + 8]), fl & 0xfff8, fl & 1)
            ln = 8
            inf.fixed.append((p, p + 8))
        elif nh == 51:
            ln = (d[p + 1] + 2) * 4
        else:
            ln = (d[p + 1] + 1) * 8
        inf.regions.append((p, p + ln, 'IPv6 extension header'))
        nh = d[p]
        p += ln
    inf.own.append((off, p))
    if frag:
        key, fo, mf = frag
        inf.frag = (key, fo, p, end, bool(mf))
        if fo:
            inf.proto = '%s fragment' % IPPROTO.get(key[3], 'IP proto %d' % key[3])
            inf.regions.append((p, end, 'IPv6 fragment data'))
            return
    l4(d, p, end, nh, inf, 6)


def inner_ip(d, q, end, inf, what):
    """An IP header carried inside a packet (ICMP error, IP-in-IP): its fixed fields and addresses,
    without touching the packet's own 5-tuple."""
    if q + 20 > end:
        return
    v = d[q] >> 4
    if v == 4:
        hl = max(20, (d[q] & 15) * 4)
        inf.fixed.append((q, q + 20))
        inf.addrs += [(q + 12, q + 16), (q + 16, q + 20)]
        inf.regions += [(q, q + hl, what + ' IPv4 header'), (q + 12, q + 16, what + ' IPv4 source address'),
                        (q + 16, q + 20, what + ' IPv4 destination address')]
        proto, p = d[q + 9], q + hl
    elif v == 6 and q + 40 <= end:
        inf.fixed.append((q, q + 40))
        inf.addrs += [(q + 8, q + 24), (q + 24, q + 40)]
        inf.regions += [(q, q + 40, what + ' IPv6 header'), (q + 8, q + 24, what + ' IPv6 source address'),
                        (q + 24, q + 40, what + ' IPv6 destination address')]
        proto, p = d[q + 6], q + 40
    else:
        return
    if proto in (6, 17, 132) and p + 8 <= end:
        inf.fixed.append((p, p + 8))
        inf.regions.append((p, p + 8, what + ' ' + IPPROTO[proto] + ' header'))


def l4(d, p, end, proto, inf, ver):
    name = IPPROTO.get(proto, 'IP proto %d' % proto)
    inf.proto = name
    if proto in (17, 6, 132) and p + 8 <= end:
        inf.sport = (d[p] << 8) | d[p + 1]
        inf.dport = (d[p + 2] << 8) | d[p + 3]
        if proto == 17:
            hl = 8
        elif proto == 6:
            hl = (d[p + 12] >> 4) * 4 if p + 13 <= end else 20
        else:
            hl = 12
        hl = max(hl, 8)
        inf.regions += [(p, min(p + hl, end), name + ' header'), (p + hl, end, name + ' payload')]
        inf.fixed.append((p, min(p + (20 if proto == 6 else hl), end)))
        inf.l4pay = (p + hl, end)
        if proto == 6 and p + hl <= end:
            seq = struct.unpack('!I', d[p + 4:p + 8])[0]
            inf.tcp = (seq, p + hl, end)
    elif proto in (1, 58) and p + 4 <= end:
        t = d[p]
        inf.regions.append((p, end, '%s message (type %d)' % (name, t)))
        inf.fixed.append((p, min(p + 8, end)))
        if proto == 1 and t == 5:
            inf.addrs.append((p + 4, p + 8))               # redirect: gateway address
        if proto == 58 and 133 <= t <= 137:
            inf.own.append((p, end))      # neighbour discovery: the sender's own addressing
            if t in (135, 136, 137) and p + 24 <= end:     # NS, NA, redirect: target address
                inf.fixed.append((p + 8, p + 24))
                inf.addrs.append((p + 8, p + 24))
                inf.regions.append((p + 8, p + 24, 'ND target address'))
            if t == 137 and p + 40 <= end:
                inf.fixed.append((p + 24, p + 40))
                inf.addrs.append((p + 24, p + 40))
        if (proto == 1 and t in (3, 4, 5, 11, 12)) or (proto == 58 and t in (1, 2, 3, 4)):
            inf.regions.append((p + 8, end, '%s quoted packet' % name))
            inner_ip(d, p + 8, end, inf, name + ' quoted')
    elif proto in (4, 41):
        inf.regions.append((p, end, 'tunnelled packet'))
        inner_ip(d, p, end, inf, 'tunnelled')


PRINTABLE_WS = bytes(range(32, 127)) + b'\r\n\t'


def looks_tls(d, p, end):
    return end - p >= 5 and 20 <= d[p] <= 23 and d[p + 1] == 3 and d[p + 2] <= 4


def payload_kind(inf, d):
    """What the UDP/TCP payload looks like, for judging binary matches in it: 'random' (RTP/RTCP,
    SRTP, DTLS, TLS: chance bytes), 'text' (95% printable), or 'binary'."""
    if inf.paykind is None:
        ps, pe = inf.l4pay
        pay = d[ps:pe]
        kind = 'binary'
        if inf.proto == 'UDP' and len(pay) >= 12 and inf.sport >= 1024 and inf.dport >= 1024 \
                and pay[0] >> 6 == 2 and pay[4:8] != STUN_COOKIE:
            kind = 'random'                                   # RTP / RTCP, plain or SRTP
        elif inf.proto == 'UDP' and len(pay) >= 13 and 20 <= pay[0] <= 25 and pay[1] == 0xfe:
            kind = 'random'                                   # DTLS record
        elif inf.proto == 'TCP' and looks_tls(pay, 0, len(pay)):
            kind = 'random'
        elif len(pay.translate(None, PRINTABLE_WS)) * 20 <= len(pay):
            kind = 'text'
        inf.paykind = kind
    return inf.paykind


def where(inf, s, e, pkt_len):
    best = None
    for rs, re_, name in inf.regions:
        if rs <= s < re_:
            best = (rs, name)
    if best is None:
        return 'packet', s
    return best[1], s - best[0]


# ----------------------------------------------------------------------------------------------
# Decoded views of packet bytes, searched with the text rules


class Layer:
    """Many chunks joined by '\\n' into one buffer, with each chunk's owner remembered."""

    def __init__(self):
        self.parts = []
        self.starts = []
        self.meta = []
        self.pos = 0

    def add(self, data, meta):
        self.starts.append(self.pos)
        self.parts.append(data)
        self.meta.append(meta)
        self.pos += len(data) + 1

    def __len__(self):
        return len(self.parts)

    def buf(self):
        return b'\n'.join(self.parts)

    def locate(self, s, e):
        i = bisect.bisect_right(self.starts, s) - 1
        cs = self.starts[i]
        if e > cs + len(self.parts[i]):
            return None
        return i, s - cs, e - cs

    def end_of(self, s):
        i = bisect.bisect_right(self.starts, s) - 1
        if i < 0:
            return None
        return self.starts[i] + len(self.parts[i])


# ----------------------------------------------------------------------------------------------
# The audit


class Packet:
    __slots__ = ('fileno', 'rec', 'inf')

    def __init__(self, fileno, rec, inf):
        self.fileno = fileno
        self.rec = rec
        self.inf = inf


class Audit:
    def __init__(self, args, rules):
        self.a = args
        self.rules = rules
        self.sc = Scanner(rules, args.binary)
        self.findings_total = 0
        self.packets_with = 0
        self.by_rule = {}
        self.by_kind = {}
        self.json_findings = []
        self.files = []
        self.payload_binary = 0
        self.unlisted = {}
        self.printed = 0
        self.bytes_scanned = 0
        self.seam = max(64, rules.longest_text + 8)
        self.allow = args.allow_in_headers
        self.ifaces = set(args.interface or [])
        self.out = sys.stdout

    # -- per file -------------------------------------------------------------------------------
    def run_file(self, fileno, path):
        st = {'path': path, 'format': None, 'linktypes': [], 'packets': 0, 'audited': 0,
              'cut_by_snaplen': 0, 'findings': 0, 'error': None, 'warnings': []}
        self.files.append(st)
        try:
            cap = Capture(path)
        except CaptureError as e:
            st['error'] = str(e)
            return
        st['format'] = cap.format
        self.cur = st
        self.reset_batch()
        self.tcp_state = {}
        self.frag_state = {}
        self.tls_flows = set()
        try:
            ifaces = self.ifaces
            for rec in cap.packets():
                st['packets'] += 1
                if ifaces and not self.iface_selected(rec):
                    continue
                st['audited'] += 1
                if rec.origlen > len(rec.data):
                    st['cut_by_snaplen'] += 1
                self.add(fileno, rec)
                if self.batch_bytes >= BATCH_BYTES:
                    self.flush()
        except CaptureError as e:
            st['error'] = '%s (after packet %d)' % (e, st['packets'])
        finally:
            self.flush()
            cap.close()
        st['linktypes'] = sorted(getattr(cap, 'linktypes', ()))
        st['warnings'] += cap.warnings
        for lt in st['linktypes']:
            if lt not in LINKTYPES:
                st['warnings'].append('link type %d is not dissected: every byte is still searched, but no '
                                      '5-tuple or header names are shown and --ignore-l2-l3 has no effect' % lt)
        if st['cut_by_snaplen']:
            st['warnings'].append('%d packet(s) were cut short by the capture snap length: the bytes not '
                                  'captured were not audited (capture with -s 0)' % st['cut_by_snaplen'])

    def iface_selected(self, rec):
        keys = set()
        if rec.linktype == 276 and len(rec.data) >= 8:
            keys.add(str(struct.unpack('!I', rec.data[4:8])[0]))
        elif rec.iface is not None:
            keys.add(str(rec.iface))
        if rec.ifname:
            keys.add(rec.ifname)
        return bool(keys & self.ifaces)

    # -- batches --------------------------------------------------------------------------------
    def reset_batch(self):
        self.main = Layer()
        self.seams = Layer()
        self.ws = Layer()
        self.batch_bytes = 0

    def add(self, fileno, rec):
        d = rec.data
        idx = len(self.main)
        # Most packets (UDP media) are dissected only if they turn out to hold a finding.
        if not needs_dissect(rec.linktype, d):
            self.main.add(d, Packet(fileno, rec, None))
            self.batch_bytes += len(d) + 1
            self.bytes_scanned += len(d)
            return
        inf = dissect(rec.linktype, d)
        self.main.add(d, Packet(fileno, rec, inf))
        self.batch_bytes += len(d) + 1
        self.bytes_scanned += len(d)
        if inf.tcp:
            seq, ps, pe = inf.tcp
            if pe > ps:
                key = (inf.src, inf.sport, inf.dst, inf.dport)
                fk = (key, (inf.dst, inf.dport, inf.src, inf.sport))
                fk = min(fk)
                if fk in self.tls_flows:
                    inf.paykind = 'random'
                elif looks_tls(d, ps, pe):
                    if len(self.tls_flows) > STATE_CAP:
                        self.tls_flows.clear()
                    self.tls_flows.add(fk)
                    inf.paykind = 'random'
                prev = self.tcp_state.get(key)
                if prev and prev[0] == seq:
                    tail = prev[1]
                    self.seams.add(tail + d[ps:ps + self.seam], (idx, len(tail), ps, prev[2], 'TCP segment'))
                if len(self.tcp_state) > STATE_CAP:
                    self.tcp_state.clear()
                self.tcp_state[key] = ((seq + pe - ps) & 0xffffffff, d[max(ps, pe - self.seam):pe], rec.pktno)
                self.websocket(idx, d, ps, pe)
        if inf.frag:
            key, fo, ps, pe, mf = inf.frag
            prev = self.frag_state.get(key)
            if fo and prev and prev[0] == fo:
                tail = prev[1]
                self.seams.add(tail + d[ps:ps + self.seam], (idx, len(tail), ps, prev[2], 'IP fragment'))
            if mf:
                if len(self.frag_state) > STATE_CAP:
                    self.frag_state.clear()
                self.frag_state[key] = (fo + pe - ps, d[max(ps, pe - self.seam):pe], rec.pktno)
            else:
                self.frag_state.pop(key, None)

    def websocket(self, idx, d, p, end):
        # Client-to-server WebSocket frames are XOR-masked; unmask whole frames that start in
        # this segment (SIP over plain ws://; wss:// is TLS and cannot be audited).
        frames = 0
        while p + 6 <= end and frames < 64:
            b0, b1 = d[p], d[p + 1]
            if b0 & 0x70 or (b0 & 0x0f) not in (0, 1, 2) or not b1 & 0x80:
                return
            ln = b1 & 0x7f
            h = p + 2
            if ln == 126:
                if h + 2 > end:
                    return
                ln = (d[h] << 8) | d[h + 1]
                h += 2
            elif ln == 127:
                if h + 8 > end:
                    return
                ln = int.from_bytes(d[h:h + 8], 'big')
                h += 8
            if h + 4 > end:
                return
            key = d[h:h + 4]
            ps = h + 4
            pe = min(end, ps + ln)
            if pe > ps:
                m = (key * ((pe - ps) // 4 + 1))[:pe - ps]
                un = (int.from_bytes(d[ps:pe], 'big') ^ int.from_bytes(m, 'big')).to_bytes(pe - ps, 'big')
                self.ws.add(un, (idx, ps))
            p = ps + ln
            frames += 1

    def flush(self):
        if not len(self.main):
            return
        main = self.main
        buf = main.buf()
        sc = self.sc
        hits = {}                        # packet index -> [(s, e, rule, kind, shown, address, encoding, note)]

        def put(idx, s, e, h, enc=None, note=None):
            hits.setdefault(idx, []).append((s, e, h[2], h[3], h[4], h[5], enc, note))

        raw = []
        sc.scan_binary(buf, raw)
        sc.scan_text(buf, raw)
        sc.scan_stun(buf, raw_bounds(main), raw)
        for h in raw:
            loc = main.locate(h[0], h[1])
            if loc:
                put(loc[0], loc[1], loc[2], h)

        # TCP segment and IP fragment seams: only matches that straddle the boundary are new.
        if len(self.seams):
            sb = self.seams.buf()
            sh = []
            sc.scan_binary(sb, sh)
            sc.scan_text(sb, sh)
            for h in sh:
                loc = self.seams.locate(h[0], h[1])
                if not loc:
                    continue
                ci, s, e = loc
                idx, tl, ps, prevno, what = self.seams.meta[ci]
                if s < tl < e:
                    put(idx, ps, ps + (e - tl), h, 'split',
                        'starts in packet %d; this %s holds the rest' % (prevno, what))

        # Unmasked WebSocket payloads map byte for byte onto the packet.
        if len(self.ws):
            wb = self.ws.buf()
            wh = []
            sc.scan_text(wb, wh)
            for h in wh:
                loc = self.ws.locate(h[0], h[1])
                if loc:
                    ci, s, e = loc
                    idx, ps = self.ws.meta[ci]
                    put(idx, ps + s, ps + e, h, 'websocket-masked')

        # URL-encoded text: decode packets that hold %XX escapes.
        pct = {}
        for m in RE_PCT.finditer(buf):
            loc = main.locate(m.start(), m.end())
            if loc:
                pct.setdefault(loc[0], []).append(loc[1])
        if pct:
            ul = Layer()
            for idx, escs in pct.items():
                data = main.parts[idx]
                dec = RE_PCT.sub(lambda m: bytes([int(m.group()[1:], 16)]), data)
                # decoded offset of escape k is escs[k] - 2k
                ul.add(dec, (idx, [x - 2 * k for k, x in enumerate(escs)]))
            uh = []
            ub = ul.buf()
            sc.scan_text(ub, uh)
            for h in uh:
                loc = ul.locate(h[0], h[1])
                if not loc:
                    continue
                ci, s, e = loc
                idx, decpos = ul.meta[ci]
                k0 = bisect.bisect_left(decpos, s)
                k1 = bisect.bisect_left(decpos, e)
                if k1 == k0:
                    continue                     # no escape inside: the plain search found it
                os_, oe = s + 2 * k0, e + 2 * k1
                put(idx, os_, oe, h, 'url', None)

        # base64: every run of base64 characters is decoded from its start and, if it holds a
        # '-' or '_' (a word glued in front of the token, or URL-safe base64), also from after the
        # last of them. All pieces are decoded by one call: each is made a multiple of 4
        # characters long ('A' = zero bits fill the last group) and followed by 'CgoK' (three
        # newlines), so piece k decodes to 3/4 of its length at a known offset.
        if self.a.base64:
            runs = []
            for m in RE_B64.finditer(buf):
                loc = main.locate(m.start(), m.end())
                if loc:
                    runs.append((loc[0], loc[1], m.group()))
            if runs:
                pieces, dstarts, owners = [], [], []
                pos = 0
                for idx, rs, run in runs:
                    cut = max(run.rfind(b'-'), run.rfind(b'_')) + 1
                    run = run.translate(B64_URLSAFE)
                    for al in ((0, cut) if 0 < cut < len(run) else (0,)):
                        seg = run[al:]
                        r = len(seg) & 3
                        if r == 1:
                            seg = seg[:-1]
                        elif r:
                            seg += b'AA' if r == 2 else b'A'
                        if len(seg) < 8:
                            continue
                        pieces.append(seg)
                        pieces.append(b'CgoK')
                        dstarts.append(pos)
                        owners.append((idx, rs + al, rs + len(run), len(seg) // 4 * 3))
                        pos += len(seg) // 4 * 3 + 3
                if pieces:
                    dec = binascii.a2b_base64(b''.join(pieces))
                    bh = []
                    sc.scan_text(dec, bh)
                    for h in bh:
                        k = bisect.bisect_right(dstarts, h[0]) - 1
                        idx, o, oend, dlen = owners[k]
                        s, e = h[0] - dstarts[k], h[1] - dstarts[k]
                        if e > dlen:
                            continue
                        put(idx, o + (s // 3) * 4, min(oend, o + ((e + 2) // 3) * 4), h, 'base64', None)

        for idx in sorted(hits):
            self.report(main.meta[idx], hits[idx])
        self.reset_batch()

    # -- findings -------------------------------------------------------------------------------
    def report(self, pk, hl):
        rec = pk.rec
        inf = pk.inf if pk.inf is not None else dissect(rec.linktype, rec.data)
        d = rec.data
        keep = []
        mode = self.a.binary
        for h in hl:
            s, e, rule, kind = h[0], h[1], h[2], h[3]
            if self.allow is not None and any(os_ <= s and e <= oe for os_, oe in inf.own):
                if self.allowed(rule, h):
                    continue
            if self.a.allow_own_address and rule.kind == 'prefix' and h[5].split(' ')[0] in (inf.src, inf.dst):
                continue
            if mode != 'all' and kind.endswith('-binary'):
                why = self.chance(inf, d, h)
                if why:
                    self.unlisted[why] = self.unlisted.get(why, 0) + 1
                    continue
            keep.append(h)
        if not keep:
            return
        # Per rule, a match inside another match of the same rule says nothing new.
        keep.sort(key=lambda h: (h[0], -h[1]))
        final = []
        for h in keep:
            if any(k[2] is h[2] and k[0] <= h[0] and h[1] <= k[1] for k in final):
                continue
            final.append(h)
        self.packets_with += 1
        self.cur['findings'] += len(final)
        fname = self.files[pk.fileno]['path']
        ts = fmt_time(rec)
        for s, e, rule, kind, shown, address, enc, note in final:
            self.findings_total += 1
            self.by_rule[rule.text] = self.by_rule.get(rule.text, 0) + 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            wname, woff = where(inf, s, e, len(d))
            c0, c1 = max(0, s - self.a.context), min(len(d), e + self.a.context)
            ctx = ('...' if c0 else '') + printable(d[c0:c1]) + ('...' if c1 < len(d) else '')
            if kind.endswith('-binary') and inf.l4pay and inf.l4pay[0] <= s < inf.l4pay[1]:
                note = ((note + '; ') if note else '') + \
                    'binary match inside the payload: may be chance if the payload is random or encrypted'
                self.payload_binary += 1
            f = {'file': fname, 'packet': rec.pktno, 'time': ts,
                 'interface': rec.ifname if rec.ifname else (rec.iface if rec.iface is not None else None),
                 'proto': inf.proto, 'src': inf.src, 'sport': inf.sport, 'dst': inf.dst, 'dport': inf.dport,
                 'rule': rule.text, 'rule_type': rule.kind if rule.kind != 'prefix' else
                 'ipv%d-prefix' % rule.version,
                 'kind': kind, 'encoding': enc, 'address': address, 'match': shown,
                 'offset': s, 'length': e - s, 'where': wname, 'where_offset': woff,
                 'context': ctx, 'note': note}
            if inf.ifindex is not None:
                f['ifindex'] = inf.ifindex
            if self.a.json:
                if self.a.max_findings == 0 or len(self.json_findings) < self.a.max_findings:
                    self.json_findings.append(f)
            elif not self.a.quiet and (self.a.max_findings == 0 or self.printed < self.a.max_findings):
                self.printed += 1
                self.print_finding(f)

    def chance(self, inf, d, h):
        """Why a binary match is taken for chance bytes rather than an address, or None."""
        s, e = h[0], h[1]
        for fs, fe in inf.addrs:
            if fs <= s and e <= fe:
                return None                           # an address field (or inside one: EUI-64, mapped)
        for fs, fe in inf.fixed:
            if fs <= s < fe:
                return 'header'                       # across fixed header fields (ports, lengths, ...)
        if inf.l4pay and inf.l4pay[0] <= s < inf.l4pay[1]:
            if self.a.binary == 'headers':
                return 'payload'
            k = payload_kind(inf, d)
            if k == 'random':
                return 'random'
            if k == 'text' and not bytes.fromhex(h[4].replace(' ', '')).translate(None, PRINTABLE_WS):
                return 'text'
        return None

    def allowed(self, rule, h):
        if not self.allow:                  # --ignore-l2-l3: everything in own headers
            return True
        addr = h[5]
        for a in self.allow:
            if isinstance(a, bytes):
                if rule.kind == 'mac' and rule.mac == a:
                    return True
            else:
                try:
                    ip = ipaddress.ip_address(addr.split(' ')[0].split('/')[0])
                except ValueError:
                    continue
                if ip.version == a.version and ip in a:
                    return True
        return False

    def print_finding(self, f):
        tup = f['proto'] or 'packet'
        if f['src']:
            if f['sport'] is not None:
                tup += ' %s > %s' % (hostport(f['src'], f['sport']), hostport(f['dst'], f['dport']))
            else:
                tup += ' %s > %s' % (f['src'], f['dst'])
        iface = ' if=%s' % f['interface'] if f['interface'] is not None else ''
        enc = ' via %s' % f['encoding'] if f['encoding'] else ''
        addr = '' if f['address'] == f['match'] else ' = %s' % f['address']
        w = self.out.write
        wh = f['where'] + (' +%d' % f['where_offset'] if f['where_offset'] else '')
        w('%s:%d %s%s %s: %s %s%s "%s"%s at byte %d (%s)\n' % (
            f['file'], f['packet'], f['time'], iface, tup, f['rule'], f['kind'], enc, f['match'], addr,
            f['offset'], wh))
        w('    | %s\n' % f['context'])
        if f['note']:
            w('    note: %s\n' % f['note'])

    # -- summary --------------------------------------------------------------------------------
    def chance_notes(self):
        notes = []
        if self.a.binary == 'none':
            return notes
        for p in self.rules.v4 + self.rules.v6:
            if not p.fixed:
                notes.append('%s is shorter than /8: its binary form is not searched (it would match '
                             'almost every packet); its text forms are' % p.text)
        if self.payload_binary:
            exp = ['%.2g for %s' % (self.bytes_scanned / float(2 ** p.bits), p.text)
                   for p in self.rules.v4 + self.rules.v6 if p.fixed]
            notes.append('%d finding(s) are binary matches inside UDP/TCP payloads. Had all %d bytes been '
                         'random, the number of such matches expected by chance would be: %s. Look at each '
                         'one, or use --binary headers' % (self.payload_binary, self.bytes_scanned, ', '.join(exp)))
        if self.unlisted:
            why = {'header': 'across fixed header fields', 'random': 'inside RTP/SRTP/DTLS/TLS payloads',
                   'text': 'made of text characters inside text payloads', 'payload': 'inside payloads'}
            parts = ['%d %s' % (n, why[k]) for k, n in sorted(self.unlisted.items())]
            notes.append('%d binary match(es) taken for chance bytes and not listed (%s); --binary all '
                         'lists them' % (sum(self.unlisted.values()), ', '.join(parts)))
        return notes

    def finish(self):
        errors = [f for f in self.files if f['error']]
        packets = sum(f['packets'] for f in self.files)
        audited = sum(f['audited'] for f in self.files)
        empty = not errors and audited == 0
        rc = 2 if (errors or empty) else (1 if self.findings_total else 0)
        result = 'error' if errors else 'empty' if empty else ('leaks' if self.findings_total else 'clean')
        notes = self.chance_notes()
        for f in self.files:
            for w in f['warnings']:
                sys.stderr.write('%s: warning: %s: %s\n' % (TOOL, f['path'], w))
            if f['error']:
                sys.stderr.write('%s: error: %s: %s\n' % (TOOL, f['path'], f['error']))
        if self.a.json:
            doc = {'tool': TOOL, 'version': 1,
                   'rules': [{'rule': r.text, 'type': r.kind if r.kind != 'prefix' else 'ipv%d-prefix' % r.version}
                             for r in self.rules.all],
                   'options': {'ignore_l2_l3': self.allow is not None and not self.allow,
                               'allow_own_address': self.a.allow_own_address,
                               'allow_in_headers': [allow_text(a) for a in (self.allow or [])],
                               'binary': self.a.binary, 'interface': sorted(self.ifaces)},
                   'files': self.files,
                   'findings': self.json_findings,
                   'summary': {'result': result, 'exit_code': rc, 'files': len(self.files),
                               'packets': packets, 'audited': audited, 'findings': self.findings_total,
                               'packets_with_findings': self.packets_with,
                               'findings_listed': len(self.json_findings),
                               'binary_in_payload': self.payload_binary,
                               'binary_not_listed': self.unlisted,
                               'by_rule': self.by_rule, 'by_kind': self.by_kind, 'notes': notes}}
            json.dump(doc, self.out, indent=2)
            self.out.write('\n')
            return rc
        w = self.out.write
        if self.a.max_findings and self.findings_total > self.printed and not self.a.quiet:
            w('... %d more finding(s) not shown (--max-findings %d)\n'
              % (self.findings_total - self.printed, self.a.max_findings))
        nfiles = len(self.files)
        what = '%d packet(s) in %d file(s)' % (audited, nfiles)
        if audited != packets:
            what += ' (%d of %d selected by --interface)' % (audited, packets)
        if self.findings_total:
            w('%s: LEAKS: %d finding(s) in %d of %s\n' % (TOOL, self.findings_total, self.packets_with, what))
            for r in self.rules.all:
                if r.text in self.by_rule:
                    w('  %s: %d\n' % (r.text, self.by_rule[r.text]))
        elif errors:
            w('%s: INCOMPLETE: %d file(s) could not be read completely; no finding in %s\n'
              % (TOOL, len(errors), what))
        elif empty:
            w('%s: NOTHING AUDITED: %s%s\n' % (TOOL, what, '' if packets else ' (the captures hold no packet)'))
        else:
            w('%s: clean: no forbidden address, name or MAC in %s\n' % (TOOL, what))
        if errors and self.findings_total:
            w('%s: INCOMPLETE: %d file(s) could not be read completely\n' % (TOOL, len(errors)))
        for n in notes:
            w('  note: %s\n' % n)
        return rc


def raw_bounds(layer):
    return layer.end_of


def hostport(h, p):
    return '[%s]:%d' % (h, p) if ':' in h else '%s:%d' % (h, p)


def allow_text(a):
    return ':'.join('%02x' % b for b in a) if isinstance(a, bytes) else str(a)


def fmt_time(rec):
    if rec.sec is None:
        return '-'
    try:
        t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=rec.sec)
    except (OverflowError, ValueError):
        return '%d.%09d' % (rec.sec, rec.nsec)
    digits = rec.digits
    frac = ''
    if digits:
        frac = '.' + ('%09d' % rec.nsec)[:digits]
    return t.strftime('%Y-%m-%dT%H:%M:%S') + frac + 'Z'


# ----------------------------------------------------------------------------------------------
# Command line


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog='veil-leak-audit.py',
        description='Search packet captures (pcap, pcapng, optionally gzipped) for forbidden addresses, '
                    'host names and MACs in every byte of every packet. Exit status: 0 clean, 1 findings, '
                    '2 usage error, unreadable capture or nothing audited.',
        epilog='Typical use: capture on the untrusted side and forbid the trusted prefixes, names and MACs; '
               'capture on the trusted side and forbid the untrusted clients\' prefixes. See docs/leak-audit.md.')
    ap.add_argument('captures', nargs='*', metavar='CAPTURE', help="capture files ('-' for standard input)")
    ap.add_argument('--forbid', action='append', default=[], metavar='PREFIX',
                    help='forbidden IPv4/IPv6 address or prefix (repeatable)')
    ap.add_argument('--forbid-name', action='append', default=[], metavar='NAME',
                    help='forbidden host or domain name, matched case-insensitively anywhere (repeatable)')
    ap.add_argument('--forbid-mac', action='append', default=[], metavar='MAC',
                    help='forbidden MAC address (repeatable)')
    ap.add_argument('--forbid-file', action='append', default=[], metavar='FILE',
                    help='file of forbidden items, one per line (prefix, MAC or name; # comments)')
    ap.add_argument('--ignore-l2-l3', action='store_true',
                    help="do not report matches inside each packet's own link-layer and outer IP header, ARP "
                         "and neighbour discovery (the packet's own addressing); payloads, ICMP-quoted and "
                         "tunnelled packets are still audited")
    ap.add_argument('--allow-in-headers', action='append', default=[], metavar='PREFIX|MAC',
                    help='like --ignore-l2-l3, but only for addresses inside PREFIX (or this MAC): for a '
                         'capture where that address is legitimately an endpoint (repeatable)')
    ap.add_argument('--allow-own-address', action='store_true',
                    help="an address may appear anywhere in a packet whose own source or destination it is: "
                         "to audit that untrusted peers do not learn each other's addresses")
    ap.add_argument('--binary', choices=('auto', 'all', 'headers', 'none'), default='auto',
                    help='binary (4/16/6/8-byte) forms are searched in every byte; auto (default) does not '
                         'list matches that are chance by position or content (across fixed header fields '
                         'rather than in an address field, inside RTP/SRTP/DTLS/TLS payloads, text characters '
                         'inside text), only counts them; all lists every match; headers also drops matches '
                         'inside UDP/TCP payloads; none does not search binary forms')
    ap.add_argument('--no-base64', dest='base64', action='store_false',
                    help='do not search base64-decoded text (faster on captures that are mostly text)')
    ap.add_argument('--interface', action='append', metavar='NAME|INDEX',
                    help='audit only packets captured on this interface (pcapng interface name or number, '
                         'or SLL2 ifindex; repeatable)')
    ap.add_argument('--json', action='store_true', help='print one JSON document')
    ap.add_argument('--max-findings', type=int, default=0, metavar='N',
                    help='list at most N findings (0: all; the counts always cover all)')
    ap.add_argument('--context', type=int, default=24, metavar='BYTES',
                    help='bytes of context shown on each side of a match (default 24)')
    ap.add_argument('-q', '--quiet', action='store_true', help='print only the summary')
    args = ap.parse_args(argv)

    rules = Rules()
    try:
        for t in args.forbid:
            for x in t.split(','):
                if x.strip():
                    rules.add_prefix(parse_prefix(x))
        for t in args.forbid_name:
            rules.add_name(parse_name(t))
        for t in args.forbid_mac:
            rules.add_mac(parse_mac(t))
        for fn in args.forbid_file:
            try:
                with open(fn, encoding='utf-8') as fh:
                    lines = fh.read().splitlines()
            except OSError as e:
                ap.error('--forbid-file %s: %s' % (fn, e.strerror or e))
            for ln, line in enumerate(lines, 1):
                item = line.split('#', 1)[0].strip()
                if not item:
                    continue
                try:
                    if RE_MAC_ARG.match(item):
                        rules.add_mac(parse_mac(item))
                        continue
                    try:
                        rules.add_prefix(parse_prefix(item))
                        continue
                    except ValueError:
                        pass
                    rules.add_name(parse_name(item))
                except ValueError as e:
                    ap.error('%s:%d: %s' % (fn, ln, e))
        allow = []
        for t in args.allow_in_headers:
            if RE_MAC_ARG.match(t.strip()):
                allow.append(parse_mac(t))
            else:
                allow.append(parse_prefix(t))
    except ValueError as e:
        ap.error(str(e))
    if not rules.all:
        ap.error('nothing to look for: give --forbid, --forbid-name, --forbid-mac or --forbid-file')
    if not args.captures:
        ap.error('no capture file given')
    if args.context < 0 or args.max_findings < 0:
        ap.error('--context and --max-findings take a number >= 0')
    args.allow_in_headers = [] if args.ignore_l2_l3 else (allow or None)
    rules.finish()
    audit = Audit(args, rules)
    for i, path in enumerate(args.captures):
        audit.run_file(i, path)
    return audit.finish()


if __name__ == '__main__':
    try:
        sys.exit(main())
    except BrokenPipeError:
        try:
            sys.stdout = None
        except Exception:
            pass
        os._exit(1)
    except KeyboardInterrupt:
        sys.stderr.write('%s: interrupted\n' % TOOL)
        sys.exit(2)
