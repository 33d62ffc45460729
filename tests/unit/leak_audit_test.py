#!/usr/bin/env python3
"""Tests for tools/veil-leak-audit.py: builds pcap and pcapng captures in a temporary directory
(every byte order and timestamp resolution, several link types) with packets that leak in each way
the tool knows, and clean packets with near misses, then runs the tool as a subprocess and checks
its findings, exit codes and JSON.

  python3 tests/unit/leak_audit_test.py            # unittest output
  python3 tests/unit/leak_audit_test.py --tap      # TAP (meson: protocol 'tap')

VEIL_LEAK_AUDIT overrides the path of the tool.
"""
import base64
import gzip
import ipaddress
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.environ.get('VEIL_LEAK_AUDIT') or os.path.join(HERE, '..', '..', 'tools', 'veil-leak-audit.py')

# Documentation addresses only: untrusted side 203.0.113.0/24 and 2001:db8:1::/48, trusted side
# 198.51.100.0/24 and 2001:db8:2::/48.
FORBID = ['--forbid', '198.51.100.0/24', '--forbid', '2001:db8:2::/48',
          '--forbid-name', 'pbx.internal.example', '--forbid-mac', '02:11:00:00:00:10']
MAC_VEIL_EXT = '02:00:00:00:00:01'
MAC_CLIENT = '02:00:00:00:00:0a'
MAC_PBX = '02:11:00:00:00:10'          # forbidden
T0 = 1795000000                        # 2026-11-18T11:06:40Z


# ------------------------------------------------------------------------------------------------
# Packet builders


def mac(s):
    return bytes(int(x, 16) for x in s.split(':'))


def ip(s):
    return ipaddress.ip_address(s).packed


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ipv4(src, dst, proto, payload, ident=1, frag_off=0, more=False):
    fl = (0x2000 if more else 0) | (frag_off // 8)
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), ident, fl, 64, proto, 0, ip(src), ip(dst))
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + payload


def ipv6(src, dst, nh, payload):
    return struct.pack('!IHBB16s16s', 0x60000000, len(payload), nh, 64, ip(src), ip(dst)) + payload


def udp(sport, dport, payload):
    return struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload


def tcp(sport, dport, seq, payload, flags=0x18):
    return struct.pack('!HHIIBBHHH', sport, dport, seq, 1, 5 << 4, flags, 65535, 0, 0) + payload


def eth(payload, smac=MAC_VEIL_EXT, dmac=MAC_CLIENT, etype=0x0800, vlan=None):
    h = mac(dmac) + mac(smac)
    if vlan is not None:
        h += struct.pack('!HH', 0x8100, vlan)
    return h + struct.pack('!H', etype) + payload


def eth4(src, dst, l4, proto=17, **kw):
    return eth(ipv4(src, dst, proto, l4), **kw)


def eth6(src, dst, l4, nh=17, **kw):
    return eth(ipv6(src, dst, nh, l4), etype=0x86DD, **kw)


def sll(payload, etype=0x0800, addr=MAC_VEIL_EXT):
    return struct.pack('!HHH', 4, 1, 6) + mac(addr) + b'\0\0' + struct.pack('!H', etype) + payload


def sll2(payload, ifindex, etype=0x0800, addr=MAC_VEIL_EXT):
    return struct.pack('!HHIHBB', etype, 0, ifindex, 1, 4, 6) + mac(addr) + b'\0\0' + payload


def sip(first, *headers, body=b''):
    lines = [first] + list(headers) + ['Content-Length: %d' % len(body), '', '']
    return '\r\n'.join(lines).encode() + body


def stun_binding_response(addr, port, txid=b'veil-txid-01'):
    a = ipaddress.ip_address(addr)
    cookie = 0x2112A442
    if a.version == 4:
        x = int(a) ^ cookie
        val = struct.pack('!BBHI', 0, 1, port ^ 0x2112, x)
    else:
        x = int(a) ^ int.from_bytes(struct.pack('!I', cookie) + txid, 'big')
        val = struct.pack('!BBH', 0, 2, port ^ 0x2112) + x.to_bytes(16, 'big')
    attr = struct.pack('!HH', 0x0020, len(val)) + val
    return struct.pack('!HHI', 0x0101, len(attr), cookie) + txid + attr


# ------------------------------------------------------------------------------------------------
# Capture writers. pkts: [(data, ts_seconds_float_or_(sec, nsec))]


def ts_split(ts):
    if isinstance(ts, tuple):
        return ts
    sec = int(ts)
    return sec, int(round((ts - sec) * 1e9))


def write_pcap(path, linktype, pkts, endian='<', nano=False, snaplen=262144):
    magic = 0xa1b23c4d if nano else 0xa1b2c3d4
    out = [struct.pack(endian + 'IHHiIII', magic, 2, 4, 0, 0, snaplen, linktype)]
    for p in pkts:
        data, ts = p[0], p[1]
        orig = p[2] if len(p) > 2 else len(data)
        sec, ns = ts_split(ts)
        out.append(struct.pack(endian + 'IIII', sec, ns if nano else ns // 1000, len(data), orig) + data)
    with open(path, 'wb') as f:
        f.write(b''.join(out))


def pad4(b):
    return b + b'\0' * (-len(b) % 4)


def ng_block(e, btype, body):
    return struct.pack(e + 'II', btype, len(body) + 12) + body + struct.pack(e + 'I', len(body) + 12)


def ng_opt(e, code, val):
    return struct.pack(e + 'HH', code, len(val)) + pad4(val)


def write_pcapng(path, ifaces, pkts, endian='<', spb=()):
    """ifaces: [(linktype, name, tsresol or None)]; pkts: [(iface, data, ts)]; spb: [data] (iface 0)."""
    e = endian
    out = [ng_block(e, 0x0A0D0D0A, struct.pack(e + 'IHHq', 0x1A2B3C4D, 1, 0, -1))]
    res = []
    for lt, name, tsresol in ifaces:
        opts = b''
        if name:
            opts += ng_opt(e, 2, name.encode())
        if tsresol is not None:
            opts += ng_opt(e, 9, bytes([tsresol]))
        if opts:
            opts += struct.pack(e + 'HH', 0, 0)
        out.append(ng_block(e, 1, struct.pack(e + 'HHI', lt, 0, 0) + opts))
        res.append(10 ** (tsresol if tsresol is not None else 6))
    # a name resolution block, which the reader must skip
    out.append(ng_block(e, 4, struct.pack(e + 'HH', 0, 0)))
    for ifid, data, ts in pkts:
        sec, ns = ts_split(ts)
        ticks = sec * res[ifid] + ns * res[ifid] // 10 ** 9
        body = struct.pack(e + 'IIIII', ifid, ticks >> 32, ticks & 0xffffffff, len(data), len(data)) + pad4(data)
        out.append(ng_block(e, 6, body))
    for data in spb:
        out.append(ng_block(e, 3, struct.pack(e + 'I', len(data)) + pad4(data)))
    with open(path, 'wb') as f:
        f.write(b''.join(out))


# ------------------------------------------------------------------------------------------------
# The packets


def clean_packets():
    """Untrusted-side traffic that must not raise a finding, with near misses."""
    inv = sip('INVITE sip:bob@203.0.113.1 SIP/2.0',
              'Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds',
              'Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK198.51.1000',
              'X-Near-Miss: 198.51.1000 198.51.10.0 198.51.100 1198.51.100.77 198.51.100.256 198.51.1.100',
              'X-Near-Miss-6: 2001:db8:20::1 2001:db8:1::5 2001:db8::2 [2001:db8:3::2]:5060',
              'X-Near-Miss-Name: pbx.internal.exampl pbx-internal.example internal.example',
              'X-Near-Miss-Mac: 02:11:00:00:00:11 02-11-00-00-00-01 12:11:00:00:00:10x',
              'X-Near-Miss-Hex: c633 c6336 0xc633',
              'Date: Sat, 13 Nov 2026 23:29:00 GMT',
              'Call-ID: a84b4c76e66710@203.0.113.10',
              body=b'v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\nc=IN IP4 203.0.113.1\r\n'
                   b'a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:'
                   b'4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF\r\n'
                   b'a=candidate:1 1 udp 2130706431 203.0.113.1 20000 typ host\r\n'
                   b'a=candidate:2 1 udp 2130706431 2001:db8:1::1 20000 typ host\r\n')
    rtp = struct.pack('!BBHII', 0x80, 0, 1, 160, 0x5EED0001) + bytes(range(256))[:160]
    return [
        eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, inv)),
        eth4('203.0.113.1', '203.0.113.10', udp(20000, 4000, rtp)),
        eth6('2001:db8:1::1', '2001:db8:1::10', udp(5060, 5060, b'OPTIONS sip:2001:db8:1::10 SIP/2.0\r\n')),
        eth(struct.pack('!HHBBH', 1, 0x0800, 6, 4, 2) + mac(MAC_VEIL_EXT) + ip('203.0.113.1')
            + mac(MAC_CLIENT) + ip('203.0.113.10'), etype=0x0806),
        eth4('203.0.113.1', '203.0.113.10', udp(3478, 4000, stun_binding_response('203.0.113.10', 4000))),
    ]


SIP_VIA_LEAK = sip('SIP/2.0 200 OK', 'Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bKpbx',
                   'To: <sip:bob@203.0.113.1>;tag=1')
SDP6_LEAK = (b'v=0\r\no=- 1 1 IN IP6 2001:db8:1::1\r\ns=-\r\nc=IN IP6 2001:DB8:2::1F\r\n'
             b'm=audio 20000 RTP/AVP 0\r\n')
NAME_LEAK = sip('SIP/2.0 200 OK', 'Contact: <sip:pbx@PBX.Internal.Example:5060>')
MAPPED_LEAK = b'a=candidate:1 1 udp 2130706431 ::ffff:198.51.100.20 5004 typ host\r\n'
MACTEXT_LEAK = b'X-Debug: peer hw 02-11-00-00-00-10\r\n'


def leak_packets():
    """One leak of each main kind per packet, numbered from 1."""
    return [
        # 1: binary IPv4 in the IP header (the trusted PBX's packet escaped to the untrusted side)
        eth4('198.51.100.7', '203.0.113.10', udp(5060, 5060, b'keepalive')),
        # 2: dotted quad in a SIP header
        eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, SIP_VIA_LEAK)),
        # 3: compressed, mixed-case IPv6 in SDP
        eth6('2001:db8:1::1', '2001:db8:1::10', udp(5060, 5060, SDP6_LEAK)),
        # 4: the PBX's MAC as the Ethernet source
        eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, b'hello'), smac=MAC_PBX),
        # 5: host name, different case
        eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, NAME_LEAK)),
        # 6: IPv4-mapped IPv6 in an ICE candidate
        eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, MAPPED_LEAK)),
        # 7: MAC as text with dashes
        eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, MACTEXT_LEAK)),
    ]


# ------------------------------------------------------------------------------------------------


def run_tool(args, stdin=None):
    p = subprocess.run([sys.executable, TOOL] + args, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class LeakAuditTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix='veil-leak-audit-')
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def pcap(self, name, pkts, linktype=1, **kw):
        p = self.path(name)
        write_pcap(p, linktype, [(d, T0 + i * 0.25) for i, d in enumerate(pkts)], **kw)
        return p

    def audit_json(self, files, extra=(), rc=None, forbid=FORBID):
        code, out, err = run_tool(list(forbid) + list(extra) + ['--json'] + list(files))
        try:
            doc = json.loads(out)
        except ValueError:
            self.fail('no JSON (exit %d): %s\n%s' % (code, out, err))
        self.assertEqual(doc['summary']['exit_code'], code)
        if rc is not None:
            self.assertEqual(code, rc, 'exit %d, wanted %d\n%s\n%s' % (code, rc, out, err))
        return doc

    def kinds(self, doc):
        return sorted((f['packet'], f['kind'], f['rule']) for f in doc['findings'])

    # -- clean ------------------------------------------------------------------------------------
    def test_clean_capture_with_near_misses(self):
        p = self.pcap('clean.pcap', clean_packets())
        code, out, err = run_tool(FORBID + [p])
        self.assertEqual(code, 0, out + err)
        self.assertIn('clean: no forbidden address, name or MAC in 5 packet(s) in 1 file(s)', out)
        doc = self.audit_json([p], rc=0)
        self.assertEqual(doc['findings'], [])
        self.assertEqual(doc['summary']['result'], 'clean')
        self.assertEqual(doc['summary']['packets'], 5)
        self.assertEqual(doc['files'][0]['format'], 'pcap')
        self.assertEqual(doc['files'][0]['linktypes'], [1])

    # -- each kind of leak ------------------------------------------------------------------------
    def test_each_leak_kind(self):
        p = self.pcap('leaks.pcap', leak_packets())
        doc = self.audit_json([p], rc=1)
        self.assertEqual(self.kinds(doc), [
            (1, 'ipv4-binary', '198.51.100.0/24'),
            (2, 'ipv4-text', '198.51.100.0/24'),
            (3, 'ipv6-text', '2001:db8:2::/48'),
            (4, 'mac-binary', '02:11:00:00:00:10'),
            (5, 'name', 'pbx.internal.example'),
            (6, 'ipv6-text', '198.51.100.0/24'),      # one finding: the mapped address, not also its quad
            (7, 'mac-text', '02:11:00:00:00:10'),
        ])
        f = {x['packet']: x for x in doc['findings']}
        # binary, IP header: the offset is the IPv4 source address field
        self.assertEqual(f[1]['offset'], 14 + 12)
        self.assertEqual(f[1]['where'], 'IPv4 source address')
        self.assertEqual(f[1]['address'], '198.51.100.7')
        self.assertEqual(f[1]['match'], 'c6 33 64 07')
        self.assertEqual((f[1]['proto'], f[1]['src'], f[1]['sport'], f[1]['dst'], f[1]['dport']),
                         ('UDP', '198.51.100.7', 5060, '203.0.113.10', 5060))
        # text in a SIP header: offset and context
        pay = 14 + 20 + 8
        self.assertEqual(f[2]['offset'], pay + SIP_VIA_LEAK.index(b'198.51.100.10'))
        self.assertEqual(f[2]['where'], 'UDP payload')
        self.assertEqual(f[2]['where_offset'], SIP_VIA_LEAK.index(b'198.51.100.10'))
        self.assertEqual(f[2]['match'], '198.51.100.10')
        self.assertIn('Via: SIP/2.0/UDP 198.51.100.10:5060', f[2]['context'])
        # IPv6 text as written, address normalised
        self.assertEqual(f[3]['match'], '2001:DB8:2::1F')
        self.assertEqual(f[3]['address'], '2001:db8:2::1f')
        self.assertEqual((f[3]['src'], f[3]['dst']), ('2001:db8:1::1', '2001:db8:1::10'))
        self.assertEqual(f[4]['where'], 'Ethernet source')
        self.assertEqual(f[4]['offset'], 6)
        self.assertEqual(f[5]['match'], 'PBX.Internal.Example')
        self.assertEqual(f[6]['match'], '::ffff:198.51.100.20')
        self.assertEqual(f[6]['address'], '198.51.100.20 (IPv4-mapped)')
        self.assertEqual(f[7]['match'], '02-11-00-00-00-10')
        self.assertEqual(doc['summary']['findings'], 7)
        self.assertEqual(doc['summary']['packets_with_findings'], 7)
        self.assertEqual(doc['summary']['by_rule'],
                         {'198.51.100.0/24': 3, '2001:db8:2::/48': 1, 'pbx.internal.example': 1,
                          '02:11:00:00:00:10': 2})

    def test_text_output_and_mixed_with_clean(self):
        p = self.pcap('mixed.pcap', clean_packets() + leak_packets())
        code, out, err = run_tool(FORBID + [p])
        self.assertEqual(code, 1, out + err)
        self.assertIn('%s:7 ' % p, out)        # packet 7 = the SIP Via leak
        line = [x for x in out.splitlines() if x.startswith('%s:7 ' % p)][0]
        self.assertIn('UDP 203.0.113.1:5060 > 203.0.113.10:5060: 198.51.100.0/24 ipv4-text "198.51.100.10"', line)
        self.assertIn('(UDP payload +', line)
        self.assertIn('LEAKS: 7 finding(s) in 7 of 12 packet(s) in 1 file(s)', out)
        for n in range(1, 6):
            self.assertNotIn('%s:%d ' % (p, n), out)

    def test_more_forms(self):
        mac_ll = 'fe80::11:ff:fe00:10'                  # SLAAC link-local from 02:11:00:00:00:10
        pkts = [
            b'X-Hex: id=c6336409-77\r\n',                                   # 1 hex IPv4
            b'X-Hex6: 20010DB8000200000000000000000042\r\n',                # 2 hex IPv6
            b'PTR 9.100.51.198.in-addr.arpa.\r\n',                          # 3 reverse DNS
            b'zone 100.51.198.IN-ADDR.ARPA\r\n',                            # 4 reverse zone (/24)
            b'Contact: <sip:x@198%2E51%2E100%2E9:5060>\r\n',                # 5 URL-encoded
            b'X-Token: ' + base64.b64encode(b'{"via":"198.51.100.11"}') + b'\r\n',   # 6 base64
            b'Via: SIP/2.0/UDP [2001:db8:2::5%25eth0]:5060\r\n',             # 7 bracketed, zone
            b'c=IN IP6 2001:0DB8:0002:0000:0000:0000:0000:0005\r\n',        # 8 full form
            stun_binding_response('198.51.100.12', 40000),                  # 9 STUN XOR-MAPPED
            stun_binding_response('2001:db8:2::12', 40000),                 # 10 STUN XOR-MAPPED v6
            b'a=candidate:3 1 udp 1 ' + mac_ll.encode() + b' 5000 typ host\r\n',  # 11 EUI-64 text
            b'\x03PBX\x08internal\x07example\x00\x00\x01',                  # 12 DNS wire name
            b'a=candidate:4 1 udp 1 64:ff9b::198.51.100.30 5000 typ host\r\n',    # 13 NAT64
            b'a=rtcp:20001 IN IP6 2001:db8:2:0:0:0:0:99\r\n',              # 14 uncompressed groups
            b'candidate:2001:db8:2::7\r\n',                                 # 15 glued to a hex letter
            b'X-Url6: 2001%3Adb8%3A2%3A%3A8\r\n',                            # 16 URL-encoded IPv6
        ]
        frames = [eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, x)) for x in pkts]
        # 17: the PBX's address as the IPv6 header's source; 18: EUI-64 of the MAC in binary
        frames.append(eth6('2001:db8:2::1', '2001:db8:1::10', udp(5060, 5060, b'x')))
        frames.append(eth6('fe80::11:ff:fe00:10', 'ff02::1', b'\x86\x00' + b'\0' * 14, nh=58))
        p = self.pcap('forms.pcap', frames)
        doc = self.audit_json([p], rc=1)
        got = {}
        for f in doc['findings']:
            got.setdefault(f['packet'], []).append((f['kind'], f['encoding'], f['address']))
        want = {
            1: [('ipv4-hex', None, '198.51.100.9')],
            2: [('ipv6-hex', None, '2001:db8:2::42')],
            3: [('reverse-dns', None, '198.51.100.9')],
            4: [('reverse-dns', None, '198.51.100.0/24')],
            5: [('ipv4-text', 'url', '198.51.100.9')],
            6: [('ipv4-text', 'base64', '198.51.100.11')],
            7: [('ipv6-text', None, '2001:db8:2::5')],
            8: [('ipv6-text', None, '2001:db8:2::5')],
            9: [('stun-xor', None, '198.51.100.12')],
            10: [('stun-xor', None, '2001:db8:2::12')],
            11: [('mac-eui64-text', None, '02:11:00:00:00:10')],
            12: [('name-dns-wire', None, 'pbx.internal.example')],
            13: [('ipv6-text', None, '198.51.100.30 (NAT64)')],
            14: [('ipv6-text', None, '2001:db8:2::99')],
            15: [('ipv6-text', None, '2001:db8:2::7')],
            16: [('ipv6-text', 'url', '2001:db8:2::8')],
            17: [('ipv6-binary', None, '2001:db8:2::1')],
            18: [('mac-eui64-binary', None, '02:11:00:00:00:10')],
        }
        for n, w in want.items():
            self.assertEqual(sorted(got.get(n, [])), sorted(w), 'packet %d: %r' % (n, got.get(n)))
        self.assertEqual(sorted(got), sorted(want))
        f6 = [f for f in doc['findings'] if f['packet'] == 6][0]
        # the base64 finding points into the token, not at the header name
        self.assertTrue(f6['offset'] >= 42 + len(b'X-Token: '))

    def test_split_across_tcp_segments_and_ip_fragments(self):
        msg = SIP_VIA_LEAK
        cut = msg.index(b'198.51.100.10') + 6              # "198.51" | ".100.10"
        seq = 1000
        a = eth4('203.0.113.1', '203.0.113.10', tcp(5060, 40000, seq, msg[:cut]), proto=6)
        b = eth4('203.0.113.1', '203.0.113.10', tcp(5060, 40000, seq + cut, msg[cut:]), proto=6)
        # UDP SIP fragmented at the IP layer: the address straddles the fragment boundary
        dg = udp(5060, 5060, b'X' * 27 + b'Route: <sip:pbx.internal.example;lr>\r\n')
        cut2 = 56                                          # a multiple of 8, inside the name
        f1 = eth(ipv4('203.0.113.1', '203.0.113.10', 17, dg[:cut2], ident=77, more=True))
        f2 = eth(ipv4('203.0.113.1', '203.0.113.10', 17, dg[cut2:], ident=77, frag_off=cut2))
        p = self.pcap('split.pcap', [a, b, f1, f2])
        doc = self.audit_json([p], rc=1)
        self.assertEqual([(f['packet'], f['kind'], f['encoding'], f['address']) for f in doc['findings']],
                         [(2, 'ipv4-text', 'split', '198.51.100.10'),
                          (4, 'name', 'split', 'pbx.internal.example')])
        self.assertIn('starts in packet 1', doc['findings'][0]['note'])
        self.assertEqual(doc['findings'][0]['proto'], 'TCP')
        self.assertEqual(doc['findings'][1]['proto'], 'UDP fragment')
        self.assertIn('starts in packet 3', doc['findings'][1]['note'])

    def test_websocket_masked_frame(self):
        text = sip('MESSAGE sip:alice@203.0.113.10 SIP/2.0', 'Via: SIP/2.0/WS 198.51.100.44;branch=z9hG4bK1')
        key = b'\x11\x22\x33\x44'
        masked = bytes(c ^ key[i % 4] for i, c in enumerate(text))
        frame = bytes([0x81, 0x80 | 126]) + struct.pack('!H', len(text)) + key + masked
        p = self.pcap('ws.pcap', [eth4('203.0.113.10', '203.0.113.1', tcp(40000, 80, 1, frame), proto=6)])
        doc = self.audit_json([p], rc=1)
        self.assertEqual([(f['kind'], f['encoding'], f['address']) for f in doc['findings']],
                         [('ipv4-text', 'websocket-masked', '198.51.100.44')])

    # -- capture formats --------------------------------------------------------------------------
    def test_pcap_byte_orders_and_resolutions(self):
        pkts = leak_packets()
        ref = None
        for name, kw in (('le-us.pcap', {}), ('be-us.pcap', {'endian': '>'}),
                         ('le-ns.pcap', {'nano': True}), ('be-ns.pcap', {'endian': '>', 'nano': True})):
            p = self.path(name)
            write_pcap(p, 1, [(d, (T0 + i, 123456789)) for i, d in enumerate(pkts)], **kw)
            doc = self.audit_json([p], rc=1)
            got = [(f['packet'], f['kind'], f['offset']) for f in doc['findings']]
            if ref is None:
                ref = got
            self.assertEqual(got, ref, name)
            t = doc['findings'][0]['time']
            self.assertEqual(t, '2026-11-18T11:06:40.123456789Z' if kw.get('nano') else '2026-11-18T11:06:40.123456Z',
                             name)

    def test_pcapng_interfaces_link_types_byte_orders(self):
        pk_eth = eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, SIP_VIA_LEAK))
        pk_raw = ipv4('198.51.100.1', '198.51.100.10', 17, udp(5060, 5060, b'REGISTER sip:203.0.113.77 SIP/2.0'))
        pk_raw6 = ipv6('2001:db8:2::1', '2001:db8:2::10', 17, udp(5060, 5060, b'c=IN IP4 203.0.113.78'))
        pk_sll2 = sll2(ipv4('203.0.113.1', '203.0.113.10', 17, udp(5060, 5060, NAME_LEAK)), ifindex=7)
        ifaces = [(1, 'ext0', None), (101, 'int0', 9), (276, 'any', 3)]
        pkts = [(0, pk_eth, (T0, 500000000)), (1, pk_raw, (T0 + 1, 123456789)),
                (1, pk_raw6, (T0 + 2, 0)), (2, pk_sll2, (T0 + 3, 250000000))]
        forbid = FORBID + ['--forbid', '203.0.113.0/24']      # both sides, for this test only
        for endian in ('<', '>'):
            p = self.path('multi-%s.pcapng' % ('le' if endian == '<' else 'be'))
            write_pcapng(p, ifaces, pkts, endian=endian, spb=[eth4('203.0.113.2', '203.0.113.9', udp(1, 2, b''))])
            doc = self.audit_json([p], rc=1, forbid=FORBID)
            self.assertEqual(doc['files'][0]['format'], 'pcapng')
            self.assertEqual(doc['files'][0]['linktypes'], [1, 101, 276])
            self.assertEqual(doc['summary']['packets'], 5)
            self.assertEqual([(x['packet'], x['kind'], x['where']) for x in doc['findings']],
                             [(1, 'ipv4-text', 'UDP payload'), (2, 'ipv4-binary', 'IPv4 source address'),
                              (2, 'ipv4-binary', 'IPv4 destination address'),
                              (3, 'ipv6-binary', 'IPv6 source address'),
                              (3, 'ipv6-binary', 'IPv6 destination address'), (4, 'name', 'UDP payload')])
            f = {(x['packet'], x['kind']): x for x in doc['findings'][::-1]}
            self.assertEqual(f[(1, 'ipv4-text')]['interface'], 'ext0')
            self.assertEqual(f[(1, 'ipv4-text')]['time'], '2026-11-18T11:06:40.500000Z')
            raw = f[(2, 'ipv4-binary')]
            self.assertEqual(raw['interface'], 'int0')
            self.assertEqual(raw['time'], '2026-11-18T11:06:41.123456789Z')
            self.assertEqual((raw['proto'], raw['src'], raw['dst'], raw['sport']), ('UDP', '198.51.100.1',
                                                                                     '198.51.100.10', 5060))
            self.assertEqual(raw['offset'], 12)
            sl = f[(4, 'name')]
            self.assertEqual((sl['interface'], sl['ifindex'], sl['src'], sl['time']),
                             ('any', 7, '203.0.113.1', '2026-11-18T11:06:43.250Z'))
            self.assertEqual(sl['offset'], 20 + 28 + NAME_LEAK.lower().index(b'pbx.internal.example'))
            # the untrusted prefix forbidden too: the raw IP packets' payloads and the SPB leak it
            doc = self.audit_json([p], rc=1, forbid=forbid)
            six = [(x['packet'], x['kind'], x['address']) for x in doc['findings'] if x['rule'] == '203.0.113.0/24']
            self.assertIn((2, 'ipv4-text', '203.0.113.77'), six)
            self.assertIn((3, 'ipv4-text', '203.0.113.78'), six)
            self.assertIn((5, 'ipv4-binary', '203.0.113.2'), six)
            # --interface picks packets by pcapng interface name or SLL2 ifindex
            doc = self.audit_json([p], extra=['--interface', 'int0'], rc=1)
            self.assertEqual(sorted({x['packet'] for x in doc['findings']}), [2, 3])
            self.assertEqual(doc['summary']['audited'], 2)
            doc = self.audit_json([p], extra=['--interface', '7'], rc=1)
            self.assertEqual(sorted({x['packet'] for x in doc['findings']}), [4])

    def test_rarer_formats(self):
        # Kuznetzov's modified pcap (8 more bytes per record), a pcapng file of two sections with
        # different byte orders and link types, and BSD loopback (link type 0)
        d = leak_packets()[1]
        mod = self.path('mod.pcap')
        with open(mod, 'wb') as f:
            f.write(struct.pack('<IHHiIII', 0xa1b2cd34, 2, 4, 0, 0, 65535, 1)
                    + struct.pack('<IIII', T0, 5, len(d), len(d)) + b'\0' * 8 + d)
        doc = self.audit_json([mod], rc=1)
        self.assertEqual([(f['packet'], f['kind'], f['time']) for f in doc['findings']],
                         [(1, 'ipv4-text', '2026-11-18T11:06:40.000005Z')])
        s1, s2 = self.path('s1.pcapng'), self.path('s2.pcapng')
        write_pcapng(s1, [(1, 'ext0', None)], [(0, leak_packets()[0], T0)], endian='<')
        write_pcapng(s2, [(101, 'int0', None)],
                     [(0, ipv4('203.0.113.1', '203.0.113.2', 17, udp(1, 2, b'pbx.internal.example')), T0 + 1)],
                     endian='>')
        multi = self.path('multi.pcapng')
        with open(multi, 'wb') as f:
            for x in (s1, s2):
                with open(x, 'rb') as g:
                    f.write(g.read())
        doc = self.audit_json([multi], rc=1)
        self.assertEqual([(f['packet'], f['interface'], f['kind']) for f in doc['findings']],
                         [(1, 'ext0', 'ipv4-binary'), (2, 'int0', 'name')])
        null = self.pcap('null.pcap', [struct.pack('<I', 2) + ipv4('203.0.113.1', '203.0.113.2', 17,
                                                                    udp(1, 2, b'198.51.100.3'))], linktype=0)
        doc = self.audit_json([null], rc=1)
        f = doc['findings'][0]
        self.assertEqual((f['kind'], f['offset'], f['src'], f['where']),
                         ('ipv4-text', 32, '203.0.113.1', 'UDP payload'))

    def test_linux_cooked_and_vlan(self):
        p1 = self.pcap('sll.pcap', [sll(ipv4('203.0.113.1', '203.0.113.10', 17, udp(5060, 5060, SIP_VIA_LEAK))),
                                    sll(ipv4('203.0.113.1', '203.0.113.10', 17, udp(5060, 5060, b'ok')),
                                        addr=MAC_PBX)],
                       linktype=113)
        doc = self.audit_json([p1], rc=1)
        self.assertEqual([(f['packet'], f['kind'], f['where']) for f in doc['findings']],
                         [(1, 'ipv4-text', 'UDP payload'), (2, 'mac-binary', 'SLL link-layer address')])
        self.assertEqual(doc['findings'][0]['offset'], 16 + 28 + SIP_VIA_LEAK.index(b'198.51'))
        p2 = self.pcap('vlan.pcap', [eth4('203.0.113.1', '198.51.100.9', udp(5060, 5060, b'x'), vlan=100)])
        doc = self.audit_json([p2], rc=1)
        f = doc['findings'][0]
        self.assertEqual((f['where'], f['offset'], f['dst'], f['proto']),
                         ('IPv4 destination address', 18 + 16, '198.51.100.9', 'UDP'))

    def test_gzip_and_stdin(self):
        p = self.pcap('leaks.pcap', leak_packets())
        with open(p, 'rb') as f:
            raw = f.read()
        gz = self.path('leaks.pcap.gz')
        with gzip.open(gz, 'wb') as f:
            f.write(raw)
        doc = self.audit_json([gz], rc=1)
        self.assertEqual(doc['summary']['findings'], 7)
        code, out, err = run_tool(FORBID + ['--json', '-'], stdin=raw)
        self.assertEqual(code, 1, err)
        self.assertEqual(json.loads(out)['summary']['findings'], 7)

    # -- header options ---------------------------------------------------------------------------
    def test_ignore_l2_l3(self):
        # Captured on the trusted side, auditing that nothing but trusted addresses is spoken:
        # the PBX's own headers are legitimate, its payload mentioning 198.51.100.66 is not, nor an
        # ICMP error quoting a trusted packet.
        quoted = ipv4('198.51.100.10', '203.0.113.10', 17, udp(5060, 5060, b''))
        pkts = [
            eth4('198.51.100.10', '203.0.113.10', udp(5060, 5060, b'ok'), smac=MAC_PBX),        # 1 headers only
            eth4('198.51.100.10', '203.0.113.10', udp(5060, 5060, b'Via: SIP/2.0/UDP 198.51.100.66')),  # 2
            eth4('203.0.113.1', '203.0.113.10', b'\x03\x03\x00\x00\x00\x00\x00\x00' + quoted, proto=1),  # 3
            eth(struct.pack('!HHBBH', 1, 0x0800, 6, 4, 2) + mac(MAC_PBX) + ip('198.51.100.10')
                + mac(MAC_CLIENT) + ip('198.51.100.1'), etype=0x0806),                           # 4 ARP
            eth6('2001:db8:2::10', 'ff02::1', b'\x88\x00' + b'\0' * 6 + ip('2001:db8:2::10'), nh=58),  # 5 NA
        ]
        p = self.pcap('hdr.pcap', pkts)
        doc = self.audit_json([p], rc=1)
        self.assertEqual(sorted({f['packet'] for f in doc['findings']}), [1, 2, 3, 4, 5])
        doc = self.audit_json([p], extra=['--ignore-l2-l3'], rc=1)
        got = [(f['packet'], f['kind'], f['where']) for f in doc['findings']]
        self.assertEqual(got, [(2, 'ipv4-text', 'UDP payload'), (3, 'ipv4-binary', 'ICMP quoted IPv4 source address')])
        self.assertTrue(doc['options']['ignore_l2_l3'])
        # precise: only Veil's own trusted-side address (198.51.100.10 here) is allowed in headers
        doc = self.audit_json([p], extra=['--allow-in-headers', '198.51.100.10', '--allow-in-headers', MAC_PBX],
                              rc=1)
        got = sorted((f['packet'], f['kind'], f['address']) for f in doc['findings'])
        self.assertEqual(got, [(2, 'ipv4-text', '198.51.100.66'), (3, 'ipv4-binary', '198.51.100.10'),
                               (4, 'ipv4-binary', '198.51.100.1'), (5, 'ipv6-binary', '2001:db8:2::10'),
                               (5, 'ipv6-binary', '2001:db8:2::10')])
        # headers only: clean
        p2 = self.pcap('hdronly.pcap', [pkts[0]])
        code, out, err = run_tool(FORBID + ['--ignore-l2-l3', p2])
        self.assertEqual(code, 0, out + err)

    def test_allow_own_address(self):
        # Untrusted side, peer privacy: Veil (203.0.113.1) talks to two clients; client .10's address
        # may appear in its own packets (Via received=) but not in what client .20 gets.
        to10 = sip('SIP/2.0 200 OK', 'Via: SIP/2.0/UDP 203.0.113.10:5060;received=203.0.113.10;rport=5060')
        to20 = sip('INVITE sip:carol@203.0.113.20 SIP/2.0', 'Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK3',
                   body=b'v=0\r\nc=IN IP4 203.0.113.10\r\n')
        pkts = [eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, to10)),
                eth4('203.0.113.1', '203.0.113.20', udp(5060, 5060, to20))]
        p = self.pcap('peers.pcap', pkts)
        forbid = ['--forbid', '203.0.113.0/24']
        doc = self.audit_json([p], extra=['--allow-own-address'], rc=1, forbid=forbid)
        self.assertEqual([(f['packet'], f['kind'], f['address']) for f in doc['findings']],
                         [(2, 'ipv4-text', '203.0.113.10')])
        self.assertTrue(doc['options']['allow_own_address'])
        doc = self.audit_json([p], rc=1, forbid=forbid)
        self.assertEqual(doc['summary']['findings'], 9)     # 4 + 5: headers and text

    def test_binary_matches_judged_by_position_and_content(self):
        # 198.51.100.5 as 4 raw bytes: in an RTP payload (chance: not listed by default), in a DNS
        # answer (a real leak: listed), in the IP header (listed)
        rtp = struct.pack('!BBHII', 0x80, 0, 1, 160, 1) + b'\x00' * 20 + ip('198.51.100.5') + b'\x00' * 20
        dns = (struct.pack('!HHHHHH', 0x1234, 0x8180, 1, 1, 0, 0) + b'\x03pbx\x00\x00\x01\x00\x01'
               + b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04' + ip('198.51.100.5'))
        pkts = [eth4('203.0.113.1', '203.0.113.10', udp(20000, 4000, rtp)),
                eth4('203.0.113.1', '203.0.113.10', udp(53, 4000, dns)),
                eth4('198.51.100.5', '203.0.113.10', udp(20000, 4000, b'x'))]
        p = self.pcap('bin.pcap', pkts)
        doc = self.audit_json([p], rc=1)
        self.assertEqual([f['packet'] for f in doc['findings']], [2, 3])
        self.assertIn('binary match inside the payload', doc['findings'][0]['note'])
        self.assertEqual(doc['summary']['binary_not_listed'], {'random': 1})
        self.assertEqual(doc['summary']['binary_in_payload'], 1)
        doc = self.audit_json([p], extra=['--binary', 'all'], rc=1)
        self.assertEqual([f['packet'] for f in doc['findings']], [1, 2, 3])
        doc = self.audit_json([p], extra=['--binary', 'headers'], rc=1)
        self.assertEqual([f['packet'] for f in doc['findings']], [3])
        self.audit_json([p], extra=['--binary', 'none'], rc=0)
        out = run_tool(FORBID + [p])[1]
        self.assertIn('1 binary match(es) taken for chance bytes and not listed (1 inside RTP/SRTP/DTLS/TLS '
                      'payloads); --binary all lists them', out)

    def test_short_private_prefix(self):
        # 10.0.0.0/8: one fixed byte, 0x0a, which is also '\n' and the last byte of 203.0.113.10.
        # Binary matches across header fields, in RTP and in text are chance; the text form is not.
        # (The one non-documentation prefix in these tests: only bytes in a file, never sent, and the
        # private /8 is what trusted sides really use; no documentation prefix starts with a text byte.)
        p = self.pcap('clean.pcap', clean_packets())
        doc = self.audit_json([p], rc=0, forbid=['--forbid', '10.0.0.0/8'])
        self.assertGreater(sum(doc['summary']['binary_not_listed'].values()), 10)
        self.assertEqual(set(doc['summary']['binary_not_listed']), {'header', 'random', 'text'})
        q = self.pcap('ten.pcap', [eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, SIP_VIA_LEAK.replace(
            b'198.51.100.10', b'10.20.30.40')))])
        doc = self.audit_json([q], rc=1, forbid=['--forbid', '10.0.0.0/8'])
        self.assertEqual([(f['kind'], f['address']) for f in doc['findings']], [('ipv4-text', '10.20.30.40')])

    # -- exit codes and errors --------------------------------------------------------------------
    def test_exit_codes(self):
        clean = self.pcap('clean.pcap', clean_packets())
        leaks = self.pcap('leaks.pcap', leak_packets())
        garbage = self.path('garbage.pcap')
        with open(garbage, 'wb') as f:
            f.write(b'this is not a capture at all')
        self.assertEqual(run_tool(FORBID + [clean])[0], 0)
        self.assertEqual(run_tool(FORBID + [clean, leaks])[0], 1)
        code, out, err = run_tool(FORBID + [self.path('missing.pcap')])
        self.assertEqual(code, 2)
        self.assertIn('cannot open', err)
        code, out, err = run_tool(FORBID + [garbage])
        self.assertEqual(code, 2)
        self.assertIn('not a pcap or pcapng file', err)
        # leaks in one file, another unreadable: the audit is incomplete, 2 wins; findings still listed
        doc = self.audit_json([leaks, garbage], rc=2)
        self.assertEqual(doc['summary']['findings'], 7)
        self.assertEqual(doc['summary']['result'], 'error')
        self.assertIsNotNone(doc['files'][1]['error'])
        # usage errors
        self.assertEqual(run_tool([clean])[0], 2)                                     # no rules
        self.assertEqual(run_tool(['--forbid', '198.51.100.0/33', clean])[0], 2)      # bad prefix
        self.assertEqual(run_tool(['--forbid-mac', '02:11:00', clean])[0], 2)        # bad MAC
        self.assertEqual(run_tool(FORBID)[0], 2)                                       # no capture
        self.assertEqual(run_tool(FORBID + ['--binary', 'some', clean])[0], 2)
        # nothing audited: an empty capture, or no packet on the chosen interface
        empty = self.pcap('empty.pcap', [])
        code, out, err = run_tool(FORBID + [empty])
        self.assertEqual(code, 2)
        self.assertIn('NOTHING AUDITED: 0 packet(s) in 1 file(s) (the captures hold no packet)', out)
        code, out, err = run_tool(FORBID + ['--interface', 'ext0', clean])
        self.assertEqual(code, 2)
        self.assertIn('NOTHING AUDITED: 0 packet(s) in 1 file(s) (0 of 5 selected by --interface)', out)

    def test_truncated_capture(self):
        p = self.pcap('cut.pcap', clean_packets() + leak_packets()[1:2])
        with open(p, 'rb') as f:
            raw = f.read()
        with open(p, 'wb') as f:
            f.write(raw[:-40])                 # tcpdump killed mid-write: last record cut off
        code, out, err = run_tool(FORBID + [p])
        self.assertEqual(code, 0, out + err)
        self.assertIn('the capture was cut off', err)
        self.assertIn('5 packet(s)', out)
        # snap length: packets captured short are audited as far as they go, with a warning
        q = self.path('snap.pcap')
        write_pcap(q, 1, [(clean_packets()[0][:96], T0, 600)])
        code, out, err = run_tool(FORBID + [q])
        self.assertEqual(code, 0)
        self.assertIn('cut short by the capture snap length', err)
        # corrupt pcapng block length
        r = self.path('bad.pcapng')
        write_pcapng(r, [(1, 'ext0', None)], [(0, leak_packets()[1], T0)])
        with open(r, 'rb') as f:
            raw = bytearray(f.read())
        pos = raw.index(struct.pack('<I', 6))
        raw[pos + 4:pos + 8] = struct.pack('<I', 13)
        with open(r, 'wb') as f:
            f.write(bytes(raw))
        code, out, err = run_tool(FORBID + [r])
        self.assertEqual(code, 2)
        self.assertIn('corrupt', err)

    def test_forbid_file_and_json_shape(self):
        rules = self.path('rules.txt')
        with open(rules, 'w') as f:
            f.write('# trusted side\n198.51.100.0/24\n2001:db8:2::/48  # PBX LAN\nPBX.internal.example\n'
                    '0211.0000.0010\n')
        p = self.pcap('leaks.pcap', leak_packets())
        doc = self.audit_json([p], rc=1, forbid=['--forbid-file', rules])
        self.assertEqual([(r['rule'], r['type']) for r in doc['rules']],
                         [('198.51.100.0/24', 'ipv4-prefix'), ('2001:db8:2::/48', 'ipv6-prefix'),
                          ('pbx.internal.example', 'name'), ('02:11:00:00:00:10', 'mac')])
        self.assertEqual(doc['summary']['findings'], 7)
        keys = {'file', 'packet', 'time', 'interface', 'proto', 'src', 'sport', 'dst', 'dport', 'rule',
                'rule_type', 'kind', 'encoding', 'address', 'match', 'offset', 'length', 'where',
                'where_offset', 'context', 'note'}
        for f in doc['findings']:
            self.assertTrue(keys <= set(f), sorted(keys - set(f)))
            self.assertEqual(f['file'], p)
        self.assertEqual(set(doc['summary']), {'result', 'exit_code', 'files', 'packets', 'audited', 'findings',
                                               'packets_with_findings', 'findings_listed', 'binary_in_payload',
                                               'binary_not_listed',
                                               'by_rule', 'by_kind', 'notes'})
        doc = self.audit_json([p], extra=['--max-findings', '2'], rc=1)
        self.assertEqual(len(doc['findings']), 2)
        self.assertEqual(doc['summary']['findings'], 7)

    def test_single_address_and_short_prefix(self):
        pkts = [eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, b'Via: SIP/2.0/UDP 198.51.100.10:5060\r\n')),
                eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, b'Via: SIP/2.0/UDP 198.51.100.11:5060\r\n')),
                eth4('203.0.113.1', '203.0.113.10', udp(5060, 5060, b'c=IN IP6 2001:db8:2::5:5060\r\n'))]
        p = self.pcap('single.pcap', pkts)
        doc = self.audit_json([p], rc=1, forbid=['--forbid', '198.51.100.11', '--forbid', '2001:db8:2::5'])
        self.assertEqual([(f['packet'], f['address']) for f in doc['findings']],
                         [(2, '198.51.100.11'), (3, '2001:db8:2::5')])
        # a /20 (not on an octet boundary): 198.51.96.0-198.51.111.255
        doc = self.audit_json([p], rc=1, forbid=['--forbid', '198.51.96.0/20'])
        self.assertEqual([f['packet'] for f in doc['findings']], [1, 2])
        doc = self.audit_json([p], rc=0, forbid=['--forbid', '198.51.112.0/20'])


# ------------------------------------------------------------------------------------------------
# TAP output for meson


class TapResult(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.n = 0

    def _point(self, test, ok, extra=''):
        self.n += 1
        print('%s %d - %s%s' % ('ok' if ok else 'not ok', self.n, test.id().split('.')[-1], extra), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._point(test, True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._point(test, False)
        for line in self._exc_info_to_string(err, test).splitlines():
            print('# ' + line)

    def addError(self, test, err):
        super().addError(test, err)
        self._point(test, False)
        for line in self._exc_info_to_string(err, test).splitlines():
            print('# ' + line)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._point(test, True, ' # SKIP %s' % reason)


def main():
    if '--tap' in sys.argv:
        sys.argv.remove('--tap')
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(LeakAuditTest)
        print('1..%d' % suite.countTestCases(), flush=True)
        with open(os.devnull, 'w') as devnull:
            res = unittest.TextTestRunner(stream=devnull, resultclass=TapResult, verbosity=0).run(suite)
        sys.exit(0 if res.wasSuccessful() else 1)
    unittest.main()


if __name__ == '__main__':
    main()
