#!/usr/bin/env python3
"""Veil end-to-end: veilctl's SIP views against a lab with the B2BUA on (VEIL_LAB_SIP=1: the
trusted host 198.51.100.10:5060 is the PBX). A sipp client on the untrusted host registers
alice through Veil (the PBX, a sipp registrar, challenges and grants 120 s); `veilctl
registrations` then shows the binding as Veil holds it — AOR, the address and transport it
registered from, the client's Contact, Veil's own Contact toward the PBX (the one the PBX
received), expiry and last refresh — in JSON and text, filtered by aor=, and /metrics counts
it (veil_registrations). `calls` is empty (and available) with SIP on."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import EXT_HOST4, INT_HOST4, Failure, Proc, check, log, run_tests, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
E2E_SCEN = os.path.join(HERE, 'scenarios')
SIP_SCEN = os.path.join(HERE, '..', 'sip', 'scenarios')
METRICS = '127.0.0.1:9464'
os.environ['VEIL_METRICS'] = METRICS
CLIENT_PORT = 5071


def sipp(lab, host, scenario, ip, port, label, remote=None, service='voice.example.com'):
    msg = os.path.join(lab.tmp, '%s.msg' % label)
    argv = ['sipp', '-sf', scenario, '-i', ip, '-p', str(port), '-m', '1', '-nostdin', '-timeout', '30',
            '-timeout_error', '-s', service, '-trace_msg', '-message_file', msg,
            '-trace_err', '-error_file', os.path.join(lab.tmp, '%s.err' % label)]
    if remote:
        argv.append(remote)
    return Proc(lab, lab.ns_argv(host, argv), 'sipp %s' % label), msg


def finish(proc, label, msg):
    rc = proc.wait(40)
    if rc != 0:
        err = ''
        if os.path.exists(msg[:-4] + '.err'):
            with open(msg[:-4] + '.err', errors='replace') as f:
                err = f.read()[-1500:]
        raise Failure('sipp %s exited %d: %s %s' % (label, rc, proc.err.decode(errors='replace')[-800:], err))


def test_registrations(lab):
    """registrations after alice registers through Veil: one binding, registered, from the
    client's address and port over udp, its Contact, Veil's Contact as the PBX received it,
    expires within the 120 s granted, refreshed just now; text, aor= filter, unknown aor
    (exit 1) and /metrics agree."""
    r = lab.ctl_raw('registrations')
    check(r.returncode == 0 and r.stdout.strip() == '(none)', 'registrations before any REGISTER: %d %r %r'
          % (r.returncode, r.stdout, r.stderr))
    pbx, pbx_msg = sipp(lab, 'int', os.path.join(SIP_SCEN, 'uas_registrar.xml'), INT_HOST4, 5060, 'pbx')

    def listening():
        return re.search(r':5060\s', lab.sh('int', ['ss', '-Hulnp']).stdout)
    wait_for('the PBX sipp listens on 5060', listening, 10, 0.05)
    client, client_msg = sipp(lab, 'ext', os.path.join(E2E_SCEN, 'uac_register_once.xml'), EXT_HOST4, CLIENT_PORT,
                              'client', remote='203.0.113.1:5060')
    finish(client, 'client', client_msg)
    finish(pbx, 'pbx', pbx_msg)
    with open(pbx_msg, errors='replace') as f:
        seen = re.findall(r'^Contact:\s*<(sip:veil-[0-9a-f]{16}@[^>]+)>', f.read(), re.M)
    check(seen, 'no Veil Contact in the PBX\'s trace')
    rows = lab.ctl('registrations')
    log('  registrations: %s' % rows)
    check(len(rows) == 1, 'registrations: %s' % rows)
    g = rows[0]
    check(g['aor'] == 'alice' and g['state'] == 'registered', 'binding: %s' % g)
    check(g['source'] == '%s:%d' % (EXT_HOST4, CLIENT_PORT) and g['transport'] == 'udp',
          'registered from %s/%s, expected %s:%d/udp' % (g['source'], g['transport'], EXT_HOST4, CLIENT_PORT))
    check(g['client_contact'] == 'sip:alice@203.0.113.99:5999', 'client contact %s' % g['client_contact'])
    check(g['contact'] == seen[-1], 'Veil\'s contact %s, the PBX received %s' % (g['contact'], seen[-1]))
    check(100 < g['expires_s'] <= 120, 'expires_s %s, granted 120' % g['expires_s'])
    check(0 <= g['last_refresh_s'] < 15, 'last_refresh_s %s' % g['last_refresh_s'])
    time.sleep(1.2)
    later = lab.ctl('registrations', 'aor=alice')
    check(len(later) == 1 and later[0]['expires_s'] < g['expires_s'] + 1 and
          later[0]['last_refresh_s'] > g['last_refresh_s'], 'a second later: %s' % later)
    r = lab.ctl_raw('registrations')
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and lines[0].split()[:4] == ['AOR', 'STATE', 'SOURCE', 'TRANSPORT'] and
          lines[1].split()[:4] == ['alice', 'registered', '%s:%d' % (EXT_HOST4, CLIENT_PORT), 'udp'],
          'text registrations:\n%s' % r.stdout)
    r = lab.ctl_raw('registrations', 'aor=bob')
    check(r.returncode == 1 and 'no registration for bob' in r.stderr, 'aor=bob: %d %r' % (r.returncode, r.stderr))
    r = lab.ctl_raw('registrations', 'user=alice')
    check(r.returncode == 1 and 'aor=' in r.stderr, 'registrations user=alice: %d %r' % (r.returncode, r.stderr))
    code = ('import urllib.request\n'
            'print(urllib.request.urlopen("http://%s/metrics",timeout=5).read().decode())\n' % METRICS)
    m = lab.sh('sbc', [sys.executable, '-c', code])
    check(re.search(r'^veil_registrations 1$', m.stdout, re.M), 'veil_registrations in /metrics: %s'
          % [ln for ln in m.stdout.splitlines() if 'registr' in ln])
    calls = lab.ctl('calls')
    check(calls == [], 'calls with SIP on and no call: %s' % calls)
    st = lab.ctl('stats')
    check(st['calls'] == 0 and 'sip' in st, 'stats with SIP on: %s' % st)


if __name__ == '__main__':
    if not __import__('shutil').which('sipp'):
        print('1..0 # SKIP sipp is not installed (package sip-tester)')
        sys.exit(0)
    os.environ['VEIL_LAB_SIP'] = '1'
    sys.exit(run_tests('veilctl-sip', [test_registrations]))
