#!/usr/bin/env python3
"""Veil end-to-end: veilctl's inspection commands against a live lab with RTP flowing:
`flows` filters and sorting (done by the daemon's API), `top --once` showing the busy flows
with non-zero rates, Prometheus /metrics (VEIL_METRICS) parsing and agreeing with the API,
and flow-del refusing without --yes when there is no terminal, removing with it."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import (EXT_HOST4, EXT_VEIL4, INT_HOST4, INT_VEIL4, Failure, check, log, read_pcap, run_tests, udp_of,  # noqa: E402
                 wait_for)

METRICS = '127.0.0.1:9464'  # inside the lab's SBC namespace (each lab has its own)
os.environ['VEIL_METRICS'] = METRICS  # inherited by veild through tools/veil-lab.sh
IDLE_TIMEOUT = 5  # flow_idle_timeout in tools/veil-lab.sh's configuration

# Three pairs of flows: A (10/11) busy, B (20/21, strict) quieter, C (30/31) never used.


def ep(addr, port):
    return '%s:%d' % (addr, port)


def install_pair(lab, fid, n, latch='latch'):
    ext_veil, ext_host = ep(EXT_VEIL4, 20000 + 2 * n), ep(EXT_HOST4, 4000 + 2 * n)
    int_veil, int_host = ep(INT_VEIL4, 30000 + 2 * n), ep(INT_HOST4, 4000 + 2 * n)
    lab.flow_add(id=fid, port='external', local=ext_veil, remote=ext_host, latch=latch,
                 egress_port='internal', egress_local=int_veil, egress_remote=int_host, peer=fid + 1)
    lab.flow_add(id=fid + 1, port='internal', local=int_veil, remote=int_host, latch=latch,
                 egress_port='external', egress_local=ext_veil, egress_remote=ext_host, peer=fid)
    return ext_veil, ext_host, int_veil, int_host


def stream(lab, n, count, interval=0.005):
    """Both hosts of pair n send `count` packets; returns the two peer processes."""
    ext_veil, ext_host = ep(EXT_VEIL4, 20000 + 2 * n), ep(EXT_HOST4, 4000 + 2 * n)
    int_veil, int_host = ep(INT_VEIL4, 30000 + 2 * n), ep(INT_HOST4, 4000 + 2 * n)
    pi = lab.peer('int', int_host, send_to=int_veil, count=count, interval=interval, delay=0.3)
    pe = lab.peer('ext', ext_host, send_to=ext_veil, count=count, interval=interval, delay=0.3)
    return pe, pi


def ids(rows):
    return [r['id'] for r in rows]


def test_flows_filters(lab):
    """flows with call/address/port/side/state filters and sort=packets|bytes|drops|age,
    limit=: the daemon returns exactly the right subsets, in order."""
    install_pair(lab, 10, 5)
    install_pair(lab, 20, 10, latch='strict')
    install_pair(lab, 30, 15)
    pa, pb = stream(lab, 5, 200), stream(lab, 10, 50)
    for p in pa + pb:
        p.json(30)
    allf = lab.ctl('flows')
    log('  flows: %s' % [(r['id'], r['packets'], r['latch']) for r in allf])
    check(ids(allf) == [10, 11, 20, 21, 30, 31], 'flows (no filter): %s' % ids(allf))
    cases = [
        (('side=internal',), [11, 21, 31]),
        (('side=external',), [10, 20, 30]),
        (('port=int0',), [11, 21, 31]),
        (('port=%d' % (30000 + 20),), [20, 21]),  # pair B's internal media port, local or egress
        (('address=%s' % INT_VEIL4, 'port=%d' % (30000 + 10)), [10, 11]),
        (('address=%s' % EXT_HOST4, 'side=external'), [10, 20, 30]),
        (('state=strict',), [20, 21]),
        (('state=latched',), [10, 11]),
        (('state=waiting',), [30, 31]),
        (('sort=packets',), [10, 11, 20, 21, 30, 31]),
        (('sort=packets', 'limit=2'), [10, 11]),
        (('sort=bytes', 'side=internal', 'limit=1'), [11]),
        (('sort=age', 'limit=2'), [10, 11]),
        (('sort=drops', 'state=waiting'), [30, 31]),
        # limit= without sort stops at the limit-th match in id order; after=ID resumes past ID
        # (need not be an installed id); filters apply while walking.
        (('limit=2',), [10, 11]),
        (('limit=0',), []),
        (('limit=2', 'after=11'), [20, 21]),
        (('after=15',), [20, 21, 30, 31]),
        (('after=31',), []),
        (('side=internal', 'limit=2'), [11, 21]),
        (('side=internal', 'limit=2', 'after=11'), [21, 31]),
        (('state=latched', 'after=10'), [11]),
        (('port=%d' % (30000 + 20), 'limit=1', 'after=20'), [21]),
        # sort= with limit: the best rows by the key, ties by ascending id.
        (('sort=packets', 'limit=3'), [10, 11, 20]),
        (('sort=packets', 'side=internal', 'limit=2'), [11, 21]),
        (('sort=bytes', 'state=strict', 'limit=1'), [20]),
        (('sort=id', 'after=20', 'limit=2'), [21, 30]),
    ]
    for args, want in cases:
        got = ids(lab.ctl('flows', *args))
        check(got == want, 'flows %s returned %s, expected %s' % (' '.join(args), got, want))
    rows = lab.ctl('flows', 'sort=packets')
    pk = [r['packets'] for r in rows]
    check(pk == sorted(pk, reverse=True), 'sort=packets is not descending: %s' % pk)
    check(pk[0] == 200 and pk[2] == 50 and pk[-1] == 0, 'packet counts %s, expected 200/200/50/50/0/0' % pk)
    rows = lab.ctl('flows', 'sort=packets', 'limit=3')
    check([(r['id'], r['packets']) for r in rows] == [(10, 200), (11, 200), (20, 50)],
          'flows sort=packets limit=3: %s' % [(r['id'], r['packets']) for r in rows])
    # Paging one flow at a time with the last id as the cursor yields every flow once.
    paged, cursor = [], 0
    for _ in range(10):
        page = lab.ctl('flows', 'limit=1', 'after=%d' % cursor)
        if not page:
            break
        check(len(page) == 1, 'flows limit=1 after=%d returned %d rows' % (cursor, len(page)))
        paged.append(page[0]['id'])
        cursor = page[0]['id']
    check(paged == [10, 11, 20, 21, 30, 31], 'paging with after= visited %s' % paged)
    r = lab.ctl_raw('flows', 'limit=2', 'after=11')
    check(r.returncode == 0 and [ln.split()[0] for ln in r.stdout.splitlines()[1:]] == ['20', '21'],
          'text flows limit=2 after=11:\n%s' % r.stdout)
    # Text output filters the same way.
    r = lab.ctl_raw('flows', 'side=internal', 'sort=packets')
    check(r.returncode == 0 and [ln.split()[0] for ln in r.stdout.splitlines()[1:]] == ['11', '21', '31'],
          'text flows side=internal sort=packets:\n%s' % r.stdout)
    for bad in (('state=bogus',), ('sort=name',), ('address=nope',), ('colour=red',), ('side=left',),
                ('after=x',), ('sort=packets', 'after=10')):
        r = lab.ctl_raw('flows', *bad)
        check(r.returncode == 1 and r.stderr.startswith('veilctl: '),
              'flows %s: exit %d (%s), expected 1 with a message' % (bad, r.returncode, r.stderr.strip()))
    # call= needs the B2BUA: the lab runs without SIP.
    r = lab.ctl_raw('flows', 'call=1')
    check(r.returncode == 1 and 'not available' in r.stderr, 'flows call=1 without SIP: %d %s'
          % (r.returncode, r.stderr.strip()))
    # The never-used pair becomes idle after flow_idle_timeout.
    wait_for('flows 30/31 reported idle (state=idle)',
             lambda: {30, 31} <= set(ids(lab.ctl('flows', 'state=idle'))), IDLE_TIMEOUT + 4, interval=0.5)


def test_top_once(lab):
    """top --once while pair A streams at 200 packets/s each way: both flows of A lead with a
    non-zero PPS, the quiet pair shows 0, both ports show non-zero rx/tx rates."""
    pe, pi = stream(lab, 5, 700, interval=0.005)  # 3.5 s of traffic
    time.sleep(1.2)
    r = lab.ctl_raw('top', '--once')
    for p in (pe, pi):
        p.json(30)
    check(r.returncode == 0, 'top --once exited %d: %s' % (r.returncode, r.stderr))
    log(r.stdout)
    check('\x1b' not in r.stdout, 'top --once printed terminal escapes')
    lines = r.stdout.splitlines()
    head = [i for i, ln in enumerate(lines) if ln.startswith('FLOW ')]
    check(head, 'no FLOW table in top --once:\n%s' % r.stdout)
    flows = [ln.split() for ln in lines[head[0] + 1:] if ln.strip()]
    cols = lines[head[0]].split()
    pps_col = cols.index('PPS') - 1  # "EGRESS DST" is two words in the header
    pps = {int(f[0]): float(f[pps_col]) for f in flows}
    check(sorted(pps, key=lambda k: -pps[k])[:2] in ([10, 11], [11, 10]),
          'the busiest flows are not 10 and 11: %s' % pps)
    check(pps[10] > 50 and pps[11] > 50, 'flows 10/11 at %s/%s packets/s, expected about 200'
          % (pps[10], pps[11]))
    check(pps.get(30, -1) == 0, 'idle flow 30 shows %s packets/s' % pps.get(30))
    ports = [ln.split() for ln in lines if ln.startswith(('ext0', 'int0'))]
    check(len(ports) == 2 and all(float(p[3]) > 50 and float(p[4]) > 50 for p in ports),
          'port rates in top --once: %s' % ports)


def test_ports(lab):
    """ports while pair A streams at 200 packets/s each way: both ports up with rx/tx rates
    near 200 packets/s over the last second; DPDK xstats of each port, non-zero ones by
    default (rx_good_packets at least the port's rx_packets), all of them with --all (zeros
    included); the text form lists the xstats under the port table."""
    pe, pi = stream(lab, 5, 700, interval=0.005)
    time.sleep(2.5)  # rates come from one-second samples: two full ones while traffic runs
    rows = lab.ctl('ports')
    text = lab.ctl_raw('ports').stdout
    everything = lab.ctl_raw('--all', 'ports', json_out=True)
    for p in (pe, pi):
        p.json(30)
    log('  ports: %s' % [(r['name'], r['rx_pps'], r['tx_pps'], r['rx_mbps'], len(r['xstats'])) for r in rows])
    check(len(rows) == 2 and all(r['link'] == 'up' for r in rows), 'ports: %s' % rows)
    for r in rows:
        check(120 < r['rx_pps'] < 300 and 120 < r['tx_pps'] < 300,
              '%s rates %s/%s packets/s, expected about 200' % (r['name'], r['rx_pps'], r['tx_pps']))
        check(r['rx_mbps'] > 0.2, '%s rx_mbps %s' % (r['name'], r['rx_mbps']))
        xs = r['xstats']
        check(xs and all(v > 0 for v in xs.values()), '%s non-zero xstats: %s' % (r['name'], xs))
        check(xs.get('rx_good_packets', 0) >= r['rx_packets'] > 0,
              '%s: xstat rx_good_packets %s, rx_packets %s' % (r['name'], xs.get('rx_good_packets'), r['rx_packets']))
    check(everything.returncode == 0, 'ports --all: %d %s' % (everything.returncode, everything.stderr))
    full = {r['name']: r['xstats'] for r in __import__('json').loads(everything.stdout)}
    for r in rows:
        check(set(r['xstats']) < set(full[r['name']]) and 0 in full[r['name']].values(),
              'ports --all for %s lists %d xstats (non-zero: %d), expected more, zeros included'
              % (r['name'], len(full[r['name']]), len(r['xstats'])))
    check(re.search(r'^xstats:$', text, re.M) and re.search(r'^\s+ext0\s+rx_good_packets\s+[1-9][0-9]*$', text, re.M),
          'text ports has no xstats section:\n%s' % text)
    r = lab.ctl_raw('--all', 'flows')
    check(r.returncode == 2, 'flows --all: exit %d' % r.returncode)


def scrape(lab):
    code = ('import urllib.request,sys\n'
            'r=urllib.request.urlopen("http://%s/metrics",timeout=5)\n'
            'sys.stdout.write(r.headers.get("Content-Type")+"\\n"+r.read().decode())\n' % METRICS)
    r = lab.sh('sbc', [sys.executable, '-c', code])
    check(r.returncode == 0, 'GET /metrics failed: %s' % r.stderr.strip())
    ctype, _, body = r.stdout.partition('\n')
    return ctype, body


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)\})? (-?[0-9.eE+-]+|\+Inf|NaN)$')


def parse_metrics(body):
    out = {}
    for ln in body.splitlines():
        if not ln or ln.startswith('# HELP ') or ln.startswith('# TYPE '):
            continue
        m = SAMPLE.match(ln)
        check(m, '/metrics line does not parse as name{labels} value: %r' % ln)
        out[m.group(1) + (m.group(2) or '')] = float(m.group(4))
    return out


def test_metrics(lab):
    """/metrics: text format 0.0.4, every line parses, every drop reason present, and
    veil_drops_total{reason="media_no_flow"} equals the API's count after 7 packets to an
    unprogrammed media port; flows and port counters agree with the API."""
    lab.send_udp('ext', ep(EXT_HOST4, 5999), ep(EXT_VEIL4, 27000), b'\x80' + b'\x00' * 40, count=7)
    time.sleep(0.3)
    ctype, body = scrape(lab)
    check('version=0.0.4' in ctype and ctype.startswith('text/plain'), 'Content-Type %r' % ctype)
    m = parse_metrics(body)
    drops = lab.drops()
    for reason, n in drops.items():
        key = 'veil_drops_total{reason="%s"}' % reason
        check(key in m, '%s missing from /metrics' % key)
    check(drops['media_no_flow'] >= 7, 'API media_no_flow %d after 7 packets' % drops['media_no_flow'])
    check(m['veil_drops_total{reason="media_no_flow"}'] == drops['media_no_flow'],
          'media_no_flow: /metrics %s, API %d' % (m['veil_drops_total{reason="media_no_flow"}'],
                                                  drops['media_no_flow']))
    stats = lab.ctl('stats')
    check(m['veil_flows'] == stats['flows'], 'veil_flows %s, API %d' % (m['veil_flows'], stats['flows']))
    check(m['veil_calls_active'] == 0, 'veil_calls_active %s' % m['veil_calls_active'])
    for ev, n in stats['events'].items():
        check('veil_events_total{event="%s"}' % ev in m, 'event %s missing from /metrics' % ev)
    for p in lab.ctl('ports'):
        key = '{port="%s",role="%s"}' % (p['name'], p['role'])
        for name in ('rx_packets', 'tx_packets', 'rx_missed'):
            check('veil_port_%s_total%s' % (name, key) in m, 'veil_port_%s_total%s missing' % (name, key))
        check(m['veil_port_rx_packets_total' + key] >= p['rx_packets'] > 0,
              'rx_packets of %s: /metrics %s, API %d' % (p['name'], m['veil_port_rx_packets_total' + key],
                                                         p['rx_packets']))
    check(m.get('veil_mgmt_requests_total{command="flows"}', 0) > 0, 'no management request counts')
    check(m['veil_mgmt_request_duration_seconds_bucket{le="+Inf"}'] == m['veil_mgmt_request_duration_seconds_count'],
          'histogram +Inf bucket differs from its count')
    # Anything but GET /metrics is refused, and the server keeps answering.
    code = ('import urllib.request,urllib.error\n'
            'try: urllib.request.urlopen("http://%s/other",timeout=5)\n'
            'except urllib.error.HTTPError as e: print(e.code)\n' % METRICS)
    r = lab.sh('sbc', [sys.executable, '-c', code])
    check(r.stdout.strip() == '404', 'GET /other: %r %r' % (r.stdout, r.stderr))
    scrape(lab)


def test_flow_del_confirmation(lab):
    """flow-del and call-end without --yes and without a terminal exit 2 and change nothing;
    flow-del --yes removes the flow (exit 0), and then the flow is unknown (exit 1)."""
    r = lab.ctl_raw('flow-del', '30')  # subprocess: stdin is not a terminal
    check(r.returncode == 2 and '--yes' in r.stderr, 'flow-del without --yes: exit %d, %r'
          % (r.returncode, r.stderr))
    check(30 in ids(lab.ctl('flows')), 'flow 30 was removed without confirmation')
    r = lab.ctl_raw('call-end', '1')
    check(r.returncode == 2 and '--yes' in r.stderr, 'call-end without --yes: exit %d, %r'
          % (r.returncode, r.stderr))
    r = lab.ctl_raw('--yes', 'flow-del', '30', json_out=True)
    check(r.returncode == 0, 'flow-del --yes exited %d: %s' % (r.returncode, r.stderr))
    check(30 not in ids(lab.ctl('flows')), 'flow 30 still installed after flow-del --yes')
    r = lab.ctl_raw('flow', '30')
    check(r.returncode == 1 and 'no flow 30' in r.stderr, 'flow 30 after removal: %d %r' % (r.returncode, r.stderr))
    r = lab.ctl_raw('--yes', 'flow-del', '30')
    check(r.returncode == 1, 'flow-del of an unknown flow: exit %d' % r.returncode)
    r = lab.ctl_raw('calls')
    check(r.returncode == 1 and 'not available' in r.stderr, 'calls without SIP: %d %r' % (r.returncode, r.stderr))


def tshark_rtp(path, rtp_ports):
    """tshark's reading of a capture: (src, sport, dst, dport, ssrc, seq) per packet."""
    argv = ['tshark', '-r', path, '-n', '-T', 'fields', '-E', 'separator=,',
            '-e', 'ip.src', '-e', 'udp.srcport', '-e', 'ip.dst', '-e', 'udp.dstport', '-e', 'rtp.ssrc', '-e', 'rtp.seq']
    for p in rtp_ports:
        argv += ['-d', 'udp.port==%d,rtp' % p]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, 'tshark cannot read %s: %s' % (path, r.stderr.strip()))
    rows = []
    for ln in r.stdout.splitlines():
        f = ln.split(',')
        rows.append((f[0], int(f[1]), f[2], int(f[3]), int(f[4], 16) if f[4] else None, int(f[5]) if f[5] else None))
    return rows


def test_capture(lab):
    """capture FLOW --count 20 -w FILE while RTP flows: tshark reads exactly 20 RTP packets of
    that flow as received (ext host -> Veil's external media port, the sender's SSRC, consecutive
    sequence numbers); dir=out shows them as relayed (Veil's internal address -> int host); a port
    capture holds only that port's packets; errors give the documented exit codes."""
    ext_veil, ext_host, int_veil, int_host = install_pair(lab, 40, 20)
    out_in, out_out, out_port = (os.path.join(lab.tmp, n) for n in ('in.pcap', 'out.pcap', 'port.pcap'))
    argv = [lab.veilctl, '-s', lab.sock]
    cin = subprocess.Popen(argv + ['capture', '40', '--count', '20', '-w', out_in, '--timeout', '30'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    pe, pi = stream(lab, 20, 300, interval=0.01)  # 3 s of traffic
    o, e = cin.communicate(timeout=40)  # one capture at a time: the next ones start after it
    cout = subprocess.run(argv + ['--json', 'capture', '40', '-c', '10', '-w', out_out, 'dir=out', '--timeout', '20'],
                          capture_output=True, text=True, timeout=30)
    cport = subprocess.run(argv + ['capture', 'int0', '--count', '15', '-w', out_port, '--timeout', '20'],
                           capture_output=True, text=True, timeout=30)
    for p in (pe, pi):
        p.json(30)
    log('capture: %s / %s / %s' % (e.strip(), cout.stderr.strip(), cport.stderr.strip()))
    check(cin.returncode == 0 and '20 packet(s) of flow 40' in e, 'capture 40: exit %d, %r' % (cin.returncode, e))
    rows = tshark_rtp(out_in, [20040])
    log('  tshark (in): %s ...' % rows[:3])
    check(len(rows) == 20, 'tshark read %d packets from the flow capture, expected 20' % len(rows))
    h, hp = ext_host.split(':')
    v, vp = ext_veil.split(':')
    check(all(r[:4] == (h, int(hp), v, int(vp)) for r in rows), 'flow 40 capture holds other packets: %s' % rows)
    check(all(r[4] == 0x5EED0001 for r in rows), 'SSRCs in the capture: %s' % {r[4] for r in rows})
    seqs = [r[5] for r in rows]
    check(seqs == list(range(seqs[0], seqs[0] + 20)), 'sequence numbers not consecutive: %s' % seqs)
    frames = read_pcap(out_in)
    check(all(udp_of(f) and len(udp_of(f)[4]) == 12 + 160 for f in frames), 'captured payloads are not whole')
    # dir=out: the same flow as relayed, from Veil's internal address to the internal host.
    check(cout.returncode == 0, 'capture dir=out: exit %d %s' % (cout.returncode, cout.stderr))
    summary = __import__('json').loads(cout.stdout)
    check(summary['packets'] == 10 and summary['complete'] is True and summary['target'] == 'flow 40',
          'capture --json summary: %s' % summary)
    rows = tshark_rtp(out_out, [20040, 30040])
    h, hp = int_host.split(':')
    v, vp = int_veil.split(':')
    check(len(rows) == 10 and all(r[:4] == (v, int(vp), h, int(hp)) for r in rows),
          'dir=out capture: %s' % rows)
    check(all(r[4] == 0x5EED0001 for r in rows), 'dir=out SSRCs: %s' % rows)
    # Port capture: only packets received on int0 (addressed to Veil's internal address).
    check(cport.returncode == 0, 'capture int0: exit %d %s' % (cport.returncode, cport.stderr))
    frames = read_pcap(out_port)
    udp = [udp_of(f) for f in frames if udp_of(f)]
    check(len(frames) == 15 and len(udp) >= 12, 'port capture holds %d packets (%d UDP), expected 15'
          % (len(frames), len(udp)))
    check(all(u[2] == INT_VEIL4 and u[0] == INT_HOST4 for u in udp),
          'port capture of int0 holds packets not received on int0: %s' % [u[:4] for u in udp])
    # Errors: unknown flow (1), no -w (2), bad dir (2); a quiet flow times out with exit 1.
    r = lab.ctl_raw('capture', '999', '-w', os.path.join(lab.tmp, 'x.pcap'))
    check(r.returncode == 1 and 'no flow 999' in r.stderr, 'capture 999: %d %r' % (r.returncode, r.stderr))
    r = lab.ctl_raw('capture', '40')
    check(r.returncode == 2 and '-w' in r.stderr, 'capture without -w: %d %r' % (r.returncode, r.stderr))
    r = lab.ctl_raw('capture', '40', '-w', os.path.join(lab.tmp, 'x.pcap'), 'dir=sideways')
    check(r.returncode == 2, 'capture dir=sideways: %d %r' % (r.returncode, r.stderr))
    r = lab.ctl_raw('capture', '41', '-w', os.path.join(lab.tmp, 'q.pcap'), '--count', '5', '--timeout', '1')
    check(r.returncode == 1 and 'timed out' in r.stderr, 'capture of a quiet flow: %d %r' % (r.returncode, r.stderr))
    check(len(read_pcap(os.path.join(lab.tmp, 'q.pcap'))) == 0, 'quiet flow capture is not empty')


RTP_SENDER = '''
import socket, struct, sys, time
src, dst = sys.argv[1].rsplit(":", 1), sys.argv[2].rsplit(":", 1)
ssrc, first, n, skip_every, pt = int(sys.argv[3], 0), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
wobble = float(sys.argv[8]) / 1000  # every other packet sent this much late
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src[0], int(src[1])))
t0 = time.monotonic()
for i in range(n):
    time.sleep(max(0, t0 + i * 0.005 + (i % 2) * wobble - time.monotonic()))  # 5 ms = 40 units at 8 kHz
    if skip_every and i % skip_every == skip_every // 2:
        continue
    s.sendto(struct.pack("!BBHII", 0x80, pt, (first + i) & 0xFFFF, 40 * i, ssrc) + bytes(40), (dst[0], int(dst[1])))
'''


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def send_rtp(lab, src, dst, ssrc, first, n, skip_every, pt=0, wobble_ms=0):
    p = lab.python('ext', RTP_SENDER, src, dst, hex(ssrc), first, n, skip_every, pt, wobble_ms, desc='RTP sender')
    check(p.wait(60) == 0, 'RTP sender failed: %s' % p.err.decode(errors='replace'))


def test_loss_jitter(lab):
    """flow ID shows RFC 3550 loss and jitter: 200 PCMU packets (sequence wrapping past
    65535) with every 10th missing give expected 200, lost 20, 10 %; a paced stream gives a
    jitter of a few ms at most, in timestamp units and ms (8 kHz from the payload type); the
    same in text and in /metrics; a new SSRC restarts the figures, and every other packet
    4 ms late shows a jitter of about 4 ms; a dynamic payload type
    without clock-rate has no jitter estimate until flow-update sets clock-rate=."""
    ext_veil, ext_host, _, _ = install_pair(lab, 50, 25)
    send_rtp(lab, ext_host, ext_veil, 0x1234ABCD, 65436, 200, 10)
    f = lab.flow(50)
    log('  flow 50: %s' % {k: f[k] for k in ('last_ssrc', 'last_seq', 'last_ts', 'clock_rate', 'rtp_received',
                                             'rtp_expected', 'rtp_lost', 'loss_pct', 'jitter_ts', 'jitter_ms')})
    check(f['last_ssrc'] == '0x1234abcd' and f['clock_rate'] == 8000, 'flow 50: %s' % f)
    check(f['rtp_received'] == 180 and f['rtp_expected'] == 200 and f['rtp_lost'] == 20 and f['loss_pct'] == 10.0,
          'loss of flow 50: received %s expected %s lost %s (%s %%), want 180/200/20/10.0'
          % (f['rtp_received'], f['rtp_expected'], f['rtp_lost'], f['loss_pct']))
    check(f['last_seq'] == (65436 + 199) & 0xFFFF and f['last_ts'] == 40 * 199, 'last seq/ts: %s %s'
          % (f['last_seq'], f['last_ts']))
    check(is_num(f['jitter_ms']) and 0 <= f['jitter_ms'] < 20 and
          abs(f['jitter_ts'] - f['jitter_ms'] * 8) < 0.1, 'jitter of a paced stream: %s ts, %s ms'
          % (f['jitter_ts'], f['jitter_ms']))
    text = lab.ctl_raw('flow', '50').stdout
    check(re.search(r'^rtp_lost:\s+20$', text, re.M) and re.search(r'^loss_pct:\s+10\.000$', text, re.M) and
          re.search(r'^jitter_ms:\s+[0-9.]+$', text, re.M), 'text flow 50:\n%s' % text)
    m = parse_metrics(scrape(lab)[1])
    check(m.get('veil_flow_rtp_series') == 1, 'veil_flow_rtp_series %s with a few flows' % m.get('veil_flow_rtp_series'))
    check(m.get('veil_flow_rtp_lost_packets{flow="50"}') == 20 and
          m.get('veil_flow_rtp_expected_packets{flow="50"}') == 200 and
          abs(m.get('veil_flow_rtp_jitter_seconds{flow="50"}', -1) - f['jitter_ms'] / 1000) < 0.005,
          '/metrics for flow 50: %s' % {k: v for k, v in m.items() if 'flow="50"' in k})
    worst = ids(lab.ctl('flows', 'sort=lost', 'limit=1'))
    check(worst == [50], 'flows sort=lost limit=1: %s, expected [50]' % worst)
    # A new SSRC restarts the statistics. Every other packet 4 ms late: |D| = 32 units for
    # every packet, so the A.8 estimate converges towards 32 units (4 ms).
    # (Counted against what the flow relayed: on a loaded host the lab's veth can lose one.)
    before = f['packets']
    send_rtp(lab, ext_host, ext_veil, 0x0BADCAFE, 7, 200, 0, wobble_ms=4)
    f = lab.flow(50)
    relayed = f['packets'] - before
    log('  after the SSRC change, 4 ms wobble: %d of 200 relayed, jitter %s ts, %s ms'
        % (relayed, f['jitter_ts'], f['jitter_ms']))
    check(f['last_ssrc'] == '0x0badcafe' and relayed >= 195 and f['rtp_received'] == relayed and
          relayed <= f['rtp_expected'] <= 200 and f['rtp_lost'] == f['rtp_expected'] - relayed,
          'after an SSRC change (statistics restarted: expected at most 200): %s' % f)
    check(2.5 < f['jitter_ms'] < 6, 'jitter of a stream with every other packet 4 ms late: %s ms (expected about 4)'
          % f['jitter_ms'])
    # Dynamic payload type: loss yes, jitter only once the clock rate is known.
    lost0, before = f['rtp_lost'], f['packets']
    send_rtp(lab, ext_host, ext_veil, 0x0BADCAFE, 207, 20, 5, pt=96)  # 16 sent, every 5th skipped
    f = lab.flow(50)
    missing = 16 - (f['packets'] - before)
    check(f['clock_rate'] == '-' and f['jitter_ms'] == '-' and 4 <= f['rtp_lost'] - lost0 <= 4 + missing,
          'PT 96 without clock-rate (%d lost in the lab): %s' % (missing, {k: f[k] for k in ('clock_rate', 'jitter_ms',
                                                                                             'rtp_lost')}))
    ext_veil, ext_host, int_veil, int_host = ep(EXT_VEIL4, 20050), ep(EXT_HOST4, 4050), ep(INT_VEIL4, 30050), ep(INT_HOST4, 4050)
    lab.flow_update(id=50, port='external', local=ext_veil, remote=ext_host, egress_port='internal',
                    egress_local=int_veil, egress_remote=int_host, peer=51, clock_rate=48000)
    send_rtp(lab, ext_host, ext_veil, 0x0BADCAFE, 227, 20, 0, pt=96)
    f = lab.flow(50)
    check(f['clock_rate'] == 48000 and is_num(f['jitter_ms']), 'PT 96 with clock-rate=48000: %s'
          % {k: f[k] for k in ('clock_rate', 'jitter_ts', 'jitter_ms')})


COMMANDS = [  # every veilctl command, with arguments that make sense against this lab
    ['version'], ['stats'], ['drops'], ['ports'], ['ports', '--all'], ['neighbours'], ['flows'],
    ['flows', 'sort=packets'], ['flow', '10'], ['calls'], ['call', '1'], ['registrations'], ['top', '--once'],
    ['capture', '10', '-w', '/dev/null', '--count', '1'],
    ['flow-add', 'id=99', 'port=external', 'local=%s' % ep(EXT_VEIL4, 21000), 'egress-port=internal',
     'egress-local=%s' % ep(INT_VEIL4, 31000)],
    ['flow-update', 'id=99', 'port=external', 'local=%s' % ep(EXT_VEIL4, 21000), 'egress-port=internal',
     'egress-local=%s' % ep(INT_VEIL4, 31000)],
    ['--yes', 'flow-del', '99'], ['--yes', 'call-end', '1'],
]


def test_cli_contract(lab):
    """Every command: with the daemon down, exit 3 and 'veild is not running'; as a user
    without access to the socket, exit 4 and 'permission denied'; with --json, valid JSON on
    stdout (or, for what this lab cannot do — calls without SIP — exit 1 and a message);
    an unknown command exits 2."""
    nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']
    for args in COMMANDS:
        r = lab.ctl_raw(*args, sock='/nonexistent/veil.sock')
        check(r.returncode == 3 and r.stderr.startswith('veilctl: veild is not running'),
              '%s with no daemon: exit %d %r' % (' '.join(args), r.returncode, r.stderr))
        r = subprocess.run(nobody + [lab.veilctl, '-s', lab.sock] + args, capture_output=True, text=True, timeout=20)
        check(r.returncode == 4 and 'permission denied' in r.stderr,
              '%s as nobody: exit %d %r' % (' '.join(args), r.returncode, r.stderr))
    for args in COMMANDS:
        if args[0] == 'capture':  # flow 10 is quiet: give up after 0.5 s
            args = args + ['--timeout', '0.5']
        r = lab.ctl_raw(*args, json_out=True)
        if args[-2:] == ['call', '1'] or args[-1] in ('calls', 'registrations') or 'call-end' in args:
            check(r.returncode == 1 and 'not available' in r.stderr, '%s --json without SIP: %d %r'
                  % (' '.join(args), r.returncode, r.stderr))
            continue
        if args[0] == 'capture':  # a summary on stdout even when no packet came in time
            check(r.returncode == 1 and 'timed out' in r.stderr, 'capture --json: %d %r' % (r.returncode, r.stderr))
        else:
            check(r.returncode == 0, '%s --json: exit %d %r' % (' '.join(args), r.returncode, r.stderr))
        try:
            v = __import__('json').loads(r.stdout)
        except ValueError:
            raise Failure('%s --json printed no JSON: %r' % (' '.join(args), r.stdout[:300]))
        if args[0] == 'top':
            check({'interval_s', 'ports', 'flows'} <= set(v) and len(v['ports']) == 2, 'top --json: %s' % v)
    r = lab.ctl_raw('frobnicate')
    check(r.returncode == 2 and 'unknown command' in r.stderr, 'unknown command: %d %r' % (r.returncode, r.stderr))


if __name__ == '__main__':
    sys.exit(run_tests('veilctl', [test_flows_filters, test_top_once, test_ports, test_metrics, test_flow_del_confirmation,
                                   test_capture, test_loss_jitter, test_cli_contract]))
