#!/usr/bin/env python3
"""Veil end-to-end: unwanted media is dropped in the dataplane and counted by name (no flow,
wrong source on a strict flow, not RTP) without reaching the trusted side, and a flow's
destination can be changed while media runs without losing or duplicating a packet."""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import check, log, run_tests, udp_of, wait_for  # noqa: E402

MARK = b'VEIL-E2E-MUST-NOT-PASS'  # in every payload that must be dropped
OK_MARK = b'VEIL-E2E-MAY-PASS'
N = 10


def rtp(seq, payload, ssrc=0x0DD0D00D):
    return struct.pack('!BBHII', 0x80, 0, seq, seq * 160, ssrc) + payload


def is_icmp_error(frame):
    """ICMP destination unreachable / time exceeded (IPv4) or ICMPv6 error (type < 128)."""
    if len(frame) < 14:
        return False
    et = struct.unpack('!H', frame[12:14])[0]
    if et == 0x0800 and len(frame) >= 34 and frame[23] == 1:
        return frame[14 + (frame[14] & 0x0F) * 4] in (3, 11, 12)
    if et == 0x86DD and len(frame) >= 55 and frame[20] == 58:
        return frame[54] < 128
    return False


def wait_drop(lab, reason, base, n):
    """Waits until the global drop counter `reason` reached base + n."""
    def done():
        d = lab.drops()
        return d[reason] >= base + n and d
    d = wait_for('drop counter %s did not rise by %d (from %d)' % (reason, n, base), done, 3)
    check(d[reason] == base + n, 'drop counter %s rose by %d, expected exactly %d' % (reason, d[reason] - base, n))
    return d


def test_drops_by_name(lab):
    """Scenario 5: media_no_flow, src_mismatch (strict latching) and not_rtp, each counted
    in `veilctl drops` (and per flow), and none of those packets reaches the trusted host."""
    cap = lab.capture('int', 'drops')
    cap_ext = lab.capture('ext', 'drops')

    # 1. UDP to a media port that has no flow.
    base = lab.drops()
    lab.send_udp('ext', '203.0.113.10:4000', '203.0.113.1:25000', rtp(1, MARK), count=N)
    wait_drop(lab, 'media_no_flow', base['media_no_flow'], N)

    # 2. A strict flow that expects 203.0.113.10:4000 receiving from port 4001.
    lab.flow_add(id=12, port='external', local='203.0.113.1:20012', remote='203.0.113.10:4000', latch='strict',
                 egress_port='internal', egress_local='198.51.100.1:30012', egress_remote='198.51.100.10:4012')
    base = lab.drops()
    lab.send_udp('ext', '203.0.113.10:4001', '203.0.113.1:20012', rtp(1, MARK), count=N)
    wait_drop(lab, 'src_mismatch', base['src_mismatch'], N)
    f = lab.flow(12)
    check(f['drops_by_reason'].get('src_mismatch') == N, 'flow 12 drops_by_reason: %s, expected src_mismatch=%d'
          % (f['drops_by_reason'], N))
    check(f['packets'] == 0 and f['latch'] == 'strict', 'flow 12 after wrong-source packets: %s' % f)
    # The signaled source still passes (and proves the flow works).
    lab.send_udp('ext', '203.0.113.10:4000', '203.0.113.1:20012', rtp(2, OK_MARK), count=3)
    wait_for('flow 12 did not relay the 3 packets from its signaled source', lambda: lab.flow(12)['packets'] == 3, 3)

    # 3. A latching flow receiving a payload that is not RTP (first byte 0x00).
    lab.flow_add(id=13, port='external', local='203.0.113.1:20014', remote='203.0.113.10:4000',
                 egress_port='internal', egress_local='198.51.100.1:30014', egress_remote='198.51.100.10:4012')
    base = lab.drops()
    lab.send_udp('ext', '203.0.113.10:4000', '203.0.113.1:20014', b'\x00' * 12 + MARK, count=N)
    wait_drop(lab, 'not_rtp', base['not_rtp'], N)
    f = lab.flow(13)
    check(f['drops_by_reason'].get('not_rtp') == N, 'flow 13 drops_by_reason: %s, expected not_rtp=%d'
          % (f['drops_by_reason'], N))
    check(f['packets'] == 0 and f['latch'] == 'waiting',
          'flow 13 relayed or latched on non-RTP packets: %s' % f)

    frames = cap.stop()
    leaked = [i for i, fr in enumerate(frames) if MARK in fr]
    check(not leaked, '%d dropped packet(s) reached the trusted host\'s wire anyway' % len(leaked))
    relayed = [u for u in (udp_of(fr) for fr in frames if OK_MARK in fr) if u]  # not the ICMP errors quoting them
    check(len(relayed) == 3 and all(u and u[:2] == ('198.51.100.1', 30012) for u in relayed),
          'the trusted host\'s wire shows %d packets from the signaled source (expected 3 from 198.51.100.1:30012): %s'
          % (len(relayed), relayed))
    # Dropped means silently dropped: no ICMP error tells a scanner anything about media ports.
    icmp = [fr for fr in cap_ext.stop() if is_icmp_error(fr)]
    check(not icmp, 'the untrusted host received %d ICMP error(s) for the dropped media, first: %s'
          % (len(icmp), icmp[0][:80].hex() if icmp else ''))
    stats = lab.ctl('stats')['drops']
    for reason in ('media_no_flow', 'src_mismatch', 'not_rtp'):
        check(stats.get(reason, 0) >= N, 'veilctl stats does not list %s: %s' % (reason, stats))


def test_flow_update_under_traffic(lab):
    """Scenario 7: while the untrusted host streams, flow 11's egress-remote moves from the
    trusted host's port 4000 to port 4002; every packet arrives at exactly one of them."""
    count, interval = 300, 0.005
    spec = dict(id=11, port='external', local='203.0.113.1:20010', remote='203.0.113.10:4010',
                egress_port='internal', egress_local='198.51.100.1:30010')
    lab.flow_add(egress_remote='198.51.100.10:4000', **spec)
    dur = 0.5 + count * interval + 2.5
    r1 = lab.peer('int', '198.51.100.10:4000', duration=dur, desc='trusted receiver on port 4000')
    r2 = lab.peer('int', '198.51.100.10:4002', duration=dur, desc='trusted receiver on port 4002')
    time.sleep(0.3)
    snd = lab.peer('ext', '203.0.113.10:4010', send_to='203.0.113.1:20010', count=count, interval=interval,
                   delay=0.3, linger=0.5, desc='RTP sender on the untrusted host')
    # Switch early in the stream (leaves a second of slack on a loaded machine).
    wait_for('flow 11 relayed nothing', lambda: lab.flow(11)['packets'] >= count // 4, 10, interval=0.05)
    t0 = time.monotonic()
    upd = lab.flow_update(egress_remote='198.51.100.10:4002', **spec)
    at = upd['packets']
    log('  flow-update after %d packets (%.1f ms)' % (at, (time.monotonic() - t0) * 1000))
    s = snd.json(30)
    a, b = r1.json(30), r2.json(30)
    log('  sender %s\n  port 4000: %s\n  port 4002: %s' % (s, a, b))
    check(s['sent'] == count, 'the sender sent %d of %d' % (s['sent'], count))
    total = a['received'] + b['received']
    check(a['bad'] == 0 and b['bad'] == 0, 'damaged packets: %s / %s' % (a, b))
    check(total == count, 'the two trusted receivers got %d + %d = %d packets, %d were sent'
          % (a['received'], b['received'], total, count))
    check(a['received'] > 0 and b['received'] > 0, 'the switch did not happen mid-stream: %d / %d'
          % (a['received'], b['received']))
    # Each receiver got one contiguous run, and the runs meet: no packet went to both.
    for r, port in ((a, 4000), (b, 4002)):
        check(r['last_seq'] - r['first_seq'] + 1 == r['received'],
              'port %d received %d packets spread over sequence numbers %d..%d (gaps or duplicates)'
              % (port, r['received'], r['first_seq'], r['last_seq']))
        check(list(r['sources']) == ['198.51.100.1:30010'], 'port %d saw sources %s' % (port, r['sources']))
    check(a['first_seq'] == 1000 and a['last_seq'] + 1 == b['first_seq'] and b['last_seq'] == 1000 + count - 1,
          'the stream did not split cleanly: port 4000 got %d..%d, port 4002 got %d..%d'
          % (a['first_seq'], a['last_seq'], b['first_seq'], b['last_seq']))
    f = lab.flow(11)
    check(f['packets'] == count and f['drops'] == 0, 'flow 11 after the stream: %s' % f)
    check(f['egress_dst'] == '198.51.100.10:4002', 'flow 11 egress_dst is %s after the update' % f['egress_dst'])
    check(f['latch'] == 'latched' and f['learned_remote'] == '203.0.113.10:4010',
          'flow 11 lost its latched source in the update: %s' % f)


if __name__ == '__main__':
    sys.exit(run_tests('drops', [test_drops_by_name, test_flow_update_under_traffic]))
