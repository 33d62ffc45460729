#!/usr/bin/env python3
"""Veil end-to-end: RTP relayed both ways between the untrusted and the trusted host over IPv4,
IPv6 and IPv6<->IPv4, with latching, no loss, intact payloads, Veil's own address as the only
source either host sees, no trace of either host on the other side's wire, and idle flows
reported after flow_idle_timeout (5 s in the lab)."""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import (EXT_HOST4, EXT_HOST6, EXT_VEIL4, EXT_VEIL6, INT_HOST4, INT_HOST6,  # noqa: E402
                 INT_VEIL4, INT_VEIL6, Failure, addr_needles, check, find_leaks, log, rtp_ok, run_tests, udp_of,
                 wait_for)

COUNT = 100
INTERVAL = 0.005
IDLE_TIMEOUT = 5  # flow_idle_timeout in tools/veil-lab.sh's configuration


def ep(addr, port):
    return '[%s]:%d' % (addr, port) if ':' in addr else '%s:%d' % (addr, port)


class State:
    captures = {}
    expected_udp = {'ext': 0, 'int': 0}  # relayed packets each capture must show
    stream_end = {}  # flow id -> monotonic time its last packet was relayed (about)


def install_pair(lab, fid, ext_veil, ext_host, int_veil, int_host):
    """Flow fid: untrusted host -> Veil's external address -> trusted host; fid+1 the reverse.
    Both latch; each one's latched source is the other's destination."""
    lab.flow_add(id=fid, port='external', local=ext_veil, remote=ext_host,
                 egress_port='internal', egress_local=int_veil, egress_remote=int_host, peer=fid + 1)
    lab.flow_add(id=fid + 1, port='internal', local=int_veil, remote=int_host,
                 egress_port='external', egress_local=ext_veil, egress_remote=ext_host, peer=fid)


def relay_both_ways(lab, fid, ext_veil, ext_host, int_veil, int_host, label):
    before = lab.events()
    install_pair(lab, fid, ext_veil, ext_host, int_veil, int_host)
    # Both peers bind first and start sending together (--delay): nothing is lost to a peer
    # that is not listening yet.
    pi = lab.peer('int', int_host, send_to=int_veil, count=COUNT, interval=INTERVAL, ssrc=0x1A1A0000 + fid)
    pe = lab.peer('ext', ext_host, send_to=ext_veil, count=COUNT, interval=INTERVAL, ssrc=0x2B2B0000 + fid)
    re_, ri = pe.json(30), pi.json(30)
    State.stream_end[fid] = State.stream_end[fid + 1] = time.monotonic() - 1.0  # minus --linger
    log('  %s: untrusted host %s' % (label, re_))
    log('  %s: trusted host   %s' % (label, ri))
    check(re_['sent'] == COUNT and ri['sent'] == COUNT, '%s: a peer did not send all %d packets' % (label, COUNT))
    rtp_ok(re_, '%s, untrusted host' % label, COUNT, ext_veil)
    rtp_ok(ri, '%s, trusted host' % label, COUNT, int_veil)
    check(re_['ssrcs'] == ['0x%08x' % (0x1A1A0000 + fid)] and ri['ssrcs'] == ['0x%08x' % (0x2B2B0000 + fid)],
          '%s: SSRCs changed on the way: %s / %s' % (label, re_['ssrcs'], ri['ssrcs']))
    check((re_['first_seq'], re_['last_seq']) == (1000, 1000 + COUNT - 1),
          '%s: the untrusted host saw sequence numbers %s..%s' % (label, re_['first_seq'], re_['last_seq']))
    for f, host, remote in ((fid, 'untrusted', ext_host), (fid + 1, 'trusted', int_host)):
        d = lab.flow(f)
        check(d['packets'] == COUNT, '%s: flow %d relayed %d packets, expected %d: %s'
              % (label, f, d['packets'], COUNT, d))
        check(d['latch'] == 'latched', '%s: flow %d latch state is %r, expected "latched"' % (label, f, d['latch']))
        check(d['learned_remote'] == remote, '%s: flow %d learned %s, expected the %s host %s'
              % (label, f, d['learned_remote'], host, remote))
        check(d['drops'] == 0, '%s: flow %d dropped packets: %s' % (label, f, d['drops_by_reason']))
        check(not d['reported_idle'], '%s: flow %d is reported idle right after its stream' % (label, f))
    after = lab.events()
    check(after['relayed'] - before['relayed'] == 2 * COUNT, '%s: relayed went from %d to %d, expected +%d'
          % (label, before['relayed'], after['relayed'], 2 * COUNT))
    check(after['latched'] - before['latched'] == 2, '%s: latched went from %d to %d, expected +2'
          % (label, before['latched'], after['latched']))
    State.expected_udp['ext'] += COUNT
    State.expected_udp['int'] += COUNT


def test_start_captures(lab):
    """Scenario 4 (set-up): tcpdump on both hosts' eth0 for the whole media run."""
    for host in ('ext', 'int'):
        State.captures[host] = lab.capture(host, 'media', persistent=True)  # spans the media tests


def test_rtp_ipv4(lab):
    """Scenario 2: RTP both ways over IPv4 through a latching flow pair."""
    relay_both_ways(lab, 1, ep(EXT_VEIL4, 20000), ep(EXT_HOST4, 4000), ep(INT_VEIL4, 30000), ep(INT_HOST4, 4000),
                    'IPv4')
    # Veil resolved both hosts (it primes ARP when a flow is installed).
    neigh = {(n['port'], n['address']): n['mac'] for n in lab.ctl('neighbours')}
    for port, addr, host in (('ext0', EXT_HOST4, 'ext'), ('int0', INT_HOST4, 'int')):
        check(neigh.get((port, addr)) == lab.mac(host), 'veilctl neighbours has %s on %s as %s, the host\'s MAC is %s'
              % (addr, port, neigh.get((port, addr)), lab.mac(host)))


def test_rtp_ipv6(lab):
    """Scenario 3: the same over IPv6."""
    relay_both_ways(lab, 3, ep(EXT_VEIL6, 20002), ep(EXT_HOST6, 4002), ep(INT_VEIL6, 30002), ep(INT_HOST6, 4002),
                    'IPv6')


def test_rtp_ipv6_to_ipv4(lab):
    """Scenario 3: interworking, untrusted host on IPv6, trusted host on IPv4."""
    relay_both_ways(lab, 5, ep(EXT_VEIL6, 20004), ep(EXT_HOST6, 4004), ep(INT_VEIL4, 30004), ep(INT_HOST4, 4004),
                    'IPv6<->IPv4')


def test_no_leaks_on_the_wire(lab):
    """Scenario 4: nothing the trusted host received names the untrusted host (address in raw
    or text form, MAC), and the other way round; the captures did see the relayed media."""
    frames = {}
    for host, cap in State.captures.items():
        frames[host] = cap.stop()
    macs = {h: lab.mac(h) for h in ('ext', 'int')}
    sides = {
        'int': ('untrusted', addr_needles(EXT_HOST4, EXT_HOST6, macs['ext']), (INT_VEIL4, INT_VEIL6)),
        'ext': ('trusted', addr_needles(INT_HOST4, INT_HOST6, macs['int']), (EXT_VEIL4, EXT_VEIL6)),
    }
    # The hosts' IPv6 link-local addresses too.
    for host, other in (('ext', 'int'), ('int', 'ext')):
        r = lab.sh(host, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link'])
        for ll in re.findall(r'inet6 (fe80::[0-9a-f:]+)/', r.stdout):
            sides[other][1][ll + ' (raw)'] = socket.inet_pton(socket.AF_INET6, ll)
    for host, (other, needles, veil_addrs) in sides.items():
        fr = frames[host]
        media = [u for u in (udp_of(f) for f in fr) if u and u[0] in veil_addrs and u[1] >= 20000]
        log('  %s host capture: %d frames, %d relayed media packets from Veil' % (host, len(fr), len(media)))
        check(len(media) >= State.expected_udp[host],
              'the %s host capture holds %d media packets from Veil, expected at least %d (is the capture working?)'
              % (host, len(media), State.expected_udp[host]))
        # The detector itself works: the other capture is full of that host's own identity.
        own = {name for _, name in find_leaks(frames['ext' if host == 'int' else 'int'], needles)}
        check(len(own) >= 4, 'self-check: the %s host\'s own capture shows only %s of its identities'
              % (other, sorted(own)))
        log('  searched the %s host capture for %d identities of the %s host: %s'
            % (host, len(needles), other, ', '.join(sorted(needles))))
        leaks = find_leaks(fr, needles)
        if leaks:
            i, what = leaks[0]
            raise Failure('%d frame(s) on the %s host\'s wire carry the %s host\'s identity; first: frame %d '
                          'contains %s: %s' % (len(leaks), host, other, i, what, fr[i][:96].hex()))


def test_idle_report(lab):
    """Scenario 10: flows whose stream stopped (the IPv6<->IPv4 pair, the last to run) are
    reported idle (reported_idle true) once flow_idle_timeout has passed, within 2 s more
    (the control plane scans once a second), and never before."""
    t_end = State.stream_end.get(5)
    check(t_end is not None, 'the IPv6<->IPv4 stream did not run')
    # idle_s (seconds since the flow's last packet, from the dataplane's clock) and
    # reported_idle come from the same answer, so they can be compared exactly.
    deadline = t_end + IDLE_TIMEOUT + 4
    polls = 0
    while True:
        flows = {f['id']: f for f in lab.ctl('flows')}
        polls += 1
        for fid in (5, 6):
            f = flows[fid]
            if f['reported_idle']:
                check(f['idle_s'] >= IDLE_TIMEOUT - 0.05, 'flow %d is reported idle after only %.2f s without '
                      'packets (flow_idle_timeout = %d): %s' % (fid, f['idle_s'], IDLE_TIMEOUT, f))
            else:
                check(f['idle_s'] < IDLE_TIMEOUT + 2, 'flow %d is not reported idle after %.2f s without packets '
                      '(flow_idle_timeout = %d): %s' % (fid, f['idle_s'], IDLE_TIMEOUT, f))
        if flows[5]['reported_idle'] and flows[6]['reported_idle']:
            break
        check(time.monotonic() < deadline, 'flows 5 and 6 were not reported idle %.1f s after their stream '
              'stopped: %s / %s' % (time.monotonic() - t_end, flows[5], flows[6]))
        time.sleep(0.2)
    log('  flows 5/6 reported idle at idle_s %.1f / %.1f (flow_idle_timeout %d s, %d looks%s)'
        % (flows[5]['idle_s'], flows[6]['idle_s'], IDLE_TIMEOUT, polls,
           '; already idle at the first look, so only "not before the timeout" was checked' if polls == 1 else ''))
    # The earlier pairs have been silent longer still.
    for fid in (1, 2, 3, 4):
        check(flows[fid]['reported_idle'], 'flow %d (silent for longer) is not reported idle: %s' % (fid, flows[fid]))
    # Traffic again clears the report: one packet on flow 1 from its latched source.
    lab.send_udp('ext', ep(EXT_HOST4, 4000), ep(EXT_VEIL4, 20000), rtp_packet(7), count=1)
    wait_for('flow 1 is still reported idle 2.5 s after a new packet',
             lambda: not lab.flow(1)['reported_idle'], 2.5, interval=0.2)


def rtp_packet(seq, payload=b'\x00' * 160):
    import struct
    return struct.pack('!BBHII', 0x80, 0, seq, 160 * seq, 0x2B2B0001) + payload


if __name__ == '__main__':
    sys.exit(run_tests('media', [test_start_captures, test_rtp_ipv4, test_rtp_ipv6, test_rtp_ipv6_to_ipv4,
                             test_no_leaks_on_the_wire, test_idle_report]))
