#!/usr/bin/env python3
"""Veil end-to-end: the SBC answers ARP/ND and ping on both sides, signaling reaches ordinary
sockets through the exception path (UDP and TCP), veilctl's exit codes and JSON, and a bad
configuration is refused with file:line:column before anything starts."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import (EXT_HOST4, EXT_HOST6, EXT_VEIL4, EXT_VEIL6, INT_VEIL4, INT_VEIL6, Failure, check,  # noqa: E402
                 log, run_tests, wait_for)


def test_arp_nd_ping(lab):
    """Scenario 1: each host pings Veil's IPv4 and IPv6 address on its side, from an empty
    neighbour cache, and gets answers; the ARP/ND/echo counters move."""
    before = lab.events()
    for host in ('ext', 'int'):
        lab.sh(host, ['ip', 'neigh', 'flush', 'all'])
    targets = [('ext', EXT_VEIL4), ('ext', EXT_VEIL6), ('int', INT_VEIL4), ('int', INT_VEIL6)]
    for host, addr in targets:
        r = lab.sh(host, ['ping', '-c', '2', '-i', '0.2', '-W', '2', addr])
        check(r.returncode == 0, 'ping %s from the %s host got no answer (exit %d):\n%s%s'
              % (addr, host, r.returncode, r.stdout, r.stderr))
        check('DUP!' not in r.stdout, 'ping %s from the %s host got duplicate answers (the SBC kernel answers '
              'too?):\n%s' % (addr, host, r.stdout))
        m = re.search(r'(\d+) received', r.stdout)
        check(m and int(m.group(1)) == 2, 'ping %s from the %s host: %s' % (addr, host, r.stdout.strip()))
    after = lab.events()
    # Each host resolved Veil's IPv4 address by ARP and its IPv6 address by ND.
    check(after['arp_replies'] - before['arp_replies'] >= 2,
          'arp_replies went from %d to %d; expected +2 (one per host)' % (before['arp_replies'], after['arp_replies']))
    check(after['nd_replies'] - before['nd_replies'] >= 2,
          'nd_replies went from %d to %d; expected +2 (one per host)' % (before['nd_replies'], after['nd_replies']))
    check(after['echo_replies'] - before['echo_replies'] >= 8,
          'echo_replies went from %d to %d; expected +8' % (before['echo_replies'], after['echo_replies']))
    # The hosts learned Veil's port MACs.
    ports = {p['role']: p['mac'] for p in lab.ctl('ports')}
    for host, addr, role in (('ext', EXT_VEIL4, 'external'), ('int', INT_VEIL4, 'internal')):
        r = lab.sh(host, ['ip', 'neigh', 'show', addr])
        check(ports[role] in r.stdout, 'the %s host resolved %s to %r, expected %s'
              % (host, addr, r.stdout.strip(), ports[role]))


SBC_SERVER = r'''
import json, select, socket, time
u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u4.bind(("203.0.113.1", 5060))
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u6.bind(("2001:db8:1::1", 5060))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("203.0.113.1", 5060))
t.listen(4)
print("ready", flush=True)
seen = {"udp4": [], "udp6": [], "tcp": []}
deadline = time.monotonic() + 15
quiet_until = None
while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
    r, _, _ = select.select([u4, u6, t], [], [], 0.05)
    for s in r:
        if s is t:
            c, src = t.accept()
            c.settimeout(5)
            data = c.recv(4096)
            c.sendall(b"SIP/2.0 200 OK (tcp)\r\n\r\n")
            c.close()
            seen["tcp"].append("%s:%d" % src[:2])
        else:
            data, src = s.recvfrom(4096)
            s.sendto(b"SIP/2.0 200 OK\r\nX-Echo: " + data[:20] + b"\r\n\r\n", src)
            seen["udp4" if s is u4 else "udp6"].append("%s:%d" % src[:2])
    if quiet_until is None and all(seen.values()):
        quiet_until = time.monotonic() + 0.5  # duplicates would arrive within this
print(json.dumps(seen), flush=True)
'''

EXT_CLIENT = r'''
import socket
for fam, src, dst in ((socket.AF_INET, "203.0.113.10", "203.0.113.1"),
                      (socket.AF_INET6, "2001:db8:1::10", "2001:db8:1::1")):
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.bind((src, 5070))
    u.settimeout(5)
    u.sendto(b"OPTIONS sip:veil@example.invalid SIP/2.0\r\n\r\n", (dst, 5060))
    data, peer = u.recvfrom(4096)
    print("udp reply from %s:%d %r" % (peer[0], peer[1], data[:30]), flush=True)
    assert peer[:2] == (dst, 5060), peer
    assert data.startswith(b"SIP/2.0 200 OK"), data
t = socket.create_connection(("203.0.113.1", 5060), timeout=5)
t.sendall(b"OPTIONS sip:veil@example.invalid SIP/2.0\r\n\r\n")
data = t.recv(4096)
print("tcp reply %r" % data[:30], flush=True)
assert data.startswith(b"SIP/2.0 200 OK (tcp)"), data
'''


def test_exception_path(lab):
    """Scenario 6: UDP (IPv4 and IPv6) and TCP to Veil's address, port 5060, reach ordinary
    sockets in the SBC's namespace through the exception path, exactly once each, and their
    answers reach the untrusted host."""
    before = lab.events()
    server = lab.python('sbc', SBC_SERVER, desc='UDP/TCP server on port 5060 in the SBC namespace')
    wait_for('the server in the SBC namespace did not bind port 5060',
             lambda: server.p.poll() is not None or b'ready' in server.early_output(), 10)
    if server.p.poll() is not None:
        server.wait(5)
        raise Failure('the server in the SBC namespace exited: %s' % server.err.decode(errors='replace'))
    client = lab.python('ext', EXT_CLIENT, desc='UDP/TCP client on the untrusted host')
    rc = client.wait(30)
    srv_rc = server.wait(30)
    out = client.out.decode(errors='replace') + client.err.decode(errors='replace')
    sout = (server.out + server.err).decode(errors='replace')
    check(rc == 0, 'the untrusted host got no (or a wrong) answer from Veil\'s port 5060 (exit %d):\n%s\n'
          'server side:\n%s' % (rc, out, sout))
    check(srv_rc == 0, 'the server in the SBC namespace failed (exit %d):\n%s' % (srv_rc, sout))
    seen = json.loads(sout.strip().splitlines()[-1])
    check(seen['udp4'] == ['%s:5070' % EXT_HOST4], 'the SBC\'s IPv4 UDP socket received %s; expected exactly '
          'one datagram from %s:5070 (a duplicate means the SBC kernel also took it off the wire, '
          'bypassing the exception path)' % (seen['udp4'], EXT_HOST4))
    check(seen['udp6'] == ['%s:5070' % EXT_HOST6], 'the SBC\'s IPv6 UDP socket received %s; expected exactly '
          'one datagram from %s:5070' % (seen['udp6'], EXT_HOST6))
    check(len(seen['tcp']) == 1 and seen['tcp'][0].startswith(EXT_HOST4 + ':'),
          'the SBC\'s TCP listener accepted %s; expected one connection from %s' % (seen['tcp'], EXT_HOST4))
    after = lab.events()
    # Two UDP requests + TCP handshake/data/FIN at least.
    check(after['punted'] - before['punted'] >= 5, 'punted went from %d to %d; expected at least +5'
          % (before['punted'], after['punted']))
    check(after['from_kernel'] - before['from_kernel'] >= 5, 'from_kernel went from %d to %d; expected at least +5'
          % (before['from_kernel'], after['from_kernel']))
    log('  %s' % out.strip().replace('\n', '\n  '))


def test_veilctl(lab):
    """Scenario 8: veilctl exit codes and --json output."""
    lab.flow_add(id=7, port='external', local='203.0.113.1:20070', remote='203.0.113.10:4070',
                 egress_port='internal', egress_local='198.51.100.1:30070', egress_remote='198.51.100.10:4070')
    cases = [
        (('flow', '999'), {}, 1, 'unknown flow'),
        (('--yes', 'flow-del', '999'), {}, 1, 'deleting an unknown flow'),
        (('flow-add', 'id=8', 'port=external', 'local=198.51.100.1:20080', 'egress-port=internal',
          'egress-local=198.51.100.1:30080'), {}, 1, 'a flow on an address that is not the port\'s'),
        (('frobnicate',), {}, 2, 'unknown command'),
        (('stats',), {'sock': '/run/veil-e2e-no-such-dir/veil.sock'}, 3, 'daemon not running (bogus socket)'),
    ]
    for args, kw, want, what in cases:
        r = lab.ctl_raw(*args, **kw)
        check(r.returncode == want, 'veilctl %s (%s) exited %d, expected %d; stderr: %s'
              % (' '.join(args), what, r.returncode, want, r.stderr.strip()))
        check(r.stderr.strip(), 'veilctl %s (%s) exited %d without saying why on stderr' % (' '.join(args), what, want))
    for args in (('stats',), ('drops',), ('ports',), ('flows',), ('flow', '7'), ('neighbours',), ('version',)):
        r = lab.ctl_raw(*args, json_out=True)
        check(r.returncode == 0, 'veilctl --json %s exited %d: %s' % (' '.join(args), r.returncode, r.stderr))
        try:
            doc = json.loads(r.stdout)
        except ValueError as e:
            raise Failure('veilctl --json %s is not JSON (%s): %r' % (' '.join(args), e, r.stdout[:300]))
        check(doc is not None, 'veilctl --json %s printed null' % ' '.join(args))
    f = lab.flow(7)
    check(f['id'] == 7 and f['local'] == '203.0.113.1:20070' and f['latch'] == 'waiting',
          'veilctl --json flow 7 does not describe the installed flow: %s' % f)
    check(any(x['id'] == 7 for x in lab.ctl('flows')), 'flow 7 missing from veilctl --json flows')
    check({'rx', 'tx', 'punted'} <= set(lab.ctl('stats')['events']), 'stats lacks event counters')
    check(len(lab.ctl('ports')) == 2, 'ports does not list two ports')
    r = lab.ctl_raw('--yes', 'flow-del', '7')
    check(r.returncode == 0, 'flow-del 7 exited %d: %s' % (r.returncode, r.stderr))
    check(lab.ctl_raw('flow', '7').returncode == 1, 'flow 7 still answers after flow-del')


def test_bad_config(lab):
    """Scenario 9: veild refuses a configuration with an error: exit 2, file:line:column, and
    it starts nothing (no EAL runtime directory appears)."""
    src = '/run/veil-lab-%s/veil.toml' % lab.name
    with open(src) as f:
        lines = f.read().splitlines()
    prefix = 'veil-e2e-badcfg-%d' % os.getpid()
    bad_line = None
    out = []
    for i, line in enumerate(lines, 1):
        if line.startswith('file_prefix'):
            line = 'file_prefix = "%s"' % prefix
        if line.startswith('ports = "20000-29999"'):
            line = 'ports = "20000-70000"'
            bad_line = i
        out.append(line)
    check(bad_line, 'the lab configuration has no media.external ports line to break')
    path = os.path.join(lab.tmp, 'bad.toml')
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')
    t0 = time.monotonic()
    r = subprocess.run([lab.veild, '--config', path], capture_output=True, text=True, timeout=20)
    dt = time.monotonic() - t0
    check(r.returncode == 2, 'veild with a bad configuration exited %d, expected 2; stderr:\n%s'
          % (r.returncode, r.stderr))
    m = re.search(re.escape(path) + r':(\d+):(\d+): error', r.stderr)
    check(m, 'veild did not report the error as %s:LINE:COLUMN: error ...; stderr:\n%s' % (path, r.stderr))
    check(int(m.group(1)) == bad_line, 'veild reported line %s, the error is on line %d: %s'
          % (m.group(1), bad_line, r.stderr.strip()))
    check(not os.path.exists('/var/run/dpdk/' + prefix), 'veild created the EAL runtime directory '
          '/var/run/dpdk/%s although the configuration is invalid' % prefix)
    check('EAL' not in r.stderr, 'veild started EAL with an invalid configuration: %s' % r.stderr)
    log('  %s (%.2f s)' % (r.stderr.strip().splitlines()[0], dt))
    # A syntax error too.
    with open(path, 'w') as f:
        f.write('[limits]\nmax_flows = = 3\n')
    r = subprocess.run([lab.veild, '--config', path], capture_output=True, text=True, timeout=20)
    check(r.returncode == 2 and re.search(re.escape(path) + r':2:\d+', r.stderr),
          'a TOML syntax error on line 2: veild exited %d, stderr:\n%s' % (r.returncode, r.stderr))


if __name__ == '__main__':
    sys.exit(run_tests('basics', [test_arp_nd_ping, test_exception_path, test_veilctl, test_bad_config]))
