#!/usr/bin/env python3
"""Veil end-to-end: SIP over WebSocket (RFC 7118) on the untrusted side.

The lab runs with VEIL_LAB_SIP=1 and VEIL_LAB_WS=1 (tools/veil-lab.sh: [websocket] ws on
203.0.113.1:8080, wss on :8443 with a throw-away certificate, origin
https://phone.example.test). tests/e2e/ws_sip_client.py plays the browser in the untrusted
namespace: it speaks SIP the way SIP.js/JsSIP do ("<random>.invalid" in Via and Contact,
transport ws); sipp plays the PBX in the trusted namespace. Checked: the upgrade (subprotocol
"sip", no Server header; a missing subprotocol, a foreign Origin, a plain HTTP request and a
connection over the per-source limit refused and counted); OPTIONS without Content-Length;
REGISTER with a digest challenge re-originated to the PBX with Veil's Contact; a call from the
PBX to the registered browser over its own connection (ACK and BYE reach it although its
Contact is a .invalid host); a call from the browser to the PBX; oversized and unframeable
messages; and that no message either side received names the other side."""
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import (EXT_HOST4, EXT_HOST6, EXT_VEIL4, INT_HOST4, INT_HOST6, INT_VEIL4,  # noqa: E402
                 Failure, Proc, addr_needles, check, find_leaks, log, run_tests, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
SIP_SCEN = os.path.join(HERE, '..', 'sip', 'scenarios')
E2E_SCEN = os.path.join(HERE, 'scenarios')
CLIENT = os.path.join(HERE, 'ws_sip_client.py')
WS = 'ws://%s:8080' % EXT_VEIL4
WSS = 'wss://%s:8443' % EXT_VEIL4
PER_SOURCE = 3
# The client needs python3-websockets, a Debian package: Debian's interpreter, whatever
# python3 runs this file.
DEBIAN_PYTHON = '/usr/bin/python3'
BROWSER = os.path.join(HERE, '..', 'browser', 'veil-browser.mjs')


class State:
    captures = {}
    received = []  # every SIP message the browser got
    pbx_traces = []


def client(lab, url, scenario, *args):
    argv = [DEBIAN_PYTHON, CLIENT, url, scenario, '--ca', '/run/veil-lab-%s/wss.crt' % lab.name] + list(args)
    return Proc(lab, lab.ns_argv('ext', argv), 'ws client (%s %s)' % (scenario, url))


def run_client(lab, url, scenario, *args, timeout=40):
    r = client(lab, url, scenario, *args).json(timeout)
    State.received += r.get('received', [])
    return r


def sipp(lab, scenario, label, port, extra=(), remote=None, scen_dir=SIP_SCEN):
    msg = os.path.join(lab.tmp, '%s.msg' % label)
    argv = ['sipp', '-sf', os.path.join(scen_dir, scenario), '-i', INT_HOST4, '-p', str(port), '-m', '1',
            '-nostdin', '-timeout', '40', '-timeout_error', '-trace_msg', '-message_file', msg,
            '-trace_err', '-error_file', os.path.join(lab.tmp, '%s.err' % label)] + list(extra)
    if remote:
        argv.append(remote)
    State.pbx_traces.append(msg)
    return Proc(lab, lab.ns_argv('int', argv), 'sipp %s' % label), msg


def sipp_done(proc, label, msg, timeout=40):
    rc = proc.wait(timeout)
    if rc != 0:
        err = ''
        if os.path.exists(msg[:-4] + '.err'):
            with open(msg[:-4] + '.err', errors='replace') as f:
                err = f.read()[-1500:]
        raise Failure('sipp %s exited %d: %s %s' % (label, rc, proc.err.decode(errors='replace')[-800:], err))


def wait_listening(lab, port, proto='u'):
    def listening():
        r = lab.sh('int', ['ss', '-H%slnp' % proto])
        return re.search(r':%d\s' % port, r.stdout)
    wait_for('sipp did not listen on port %d' % port, listening, 10, 0.05)


def ws_stats(lab):
    return {k[len('websocket_'):]: v for k, v in lab.ctl('stats')['sip'].items() if k.startswith('websocket_')}


def test_listening(lab):
    """veild listens for ws and wss on the untrusted SIP address; wires captured from here on."""
    r = lab.sh('sbc', ['ss', '-Htlnp'])
    for port in (8080, 8443):
        check('%s:%d' % (EXT_VEIL4, port) in r.stdout, 'nothing listens on %s:%d: %s' % (EXT_VEIL4, port, r.stdout))
    check(ws_stats(lab).get('accepted') == 0, 'websocket counters missing or not zero: %s' % ws_stats(lab))
    for host in ('ext', 'int'):
        State.captures[host] = lab.capture(host, 'ws', persistent=True)


def test_upgrade_and_refusals(lab):
    """The upgrade answers with subprotocol sip and no Server header; no subprotocol (400), a
    foreign Origin (403) and a plain HTTP GET (426) are refused and counted."""
    before = ws_stats(lab)
    ok = run_client(lab, WSS, 'handshake')
    check(ok.get('subprotocol') == 'sip', 'wss upgrade: %s' % ok)
    hdrs = {k.lower(): v for k, v in ok.get('response_headers', {}).items()}
    check(hdrs.get('server', '') == '', 'the upgrade response names the software: %s' % hdrs)
    r = run_client(lab, WSS, 'handshake', '--no-subprotocol')
    check(r.get('http_status') == 400, 'no subprotocol: expected HTTP 400, got %s' % r)
    r = run_client(lab, WSS, 'handshake', '--origin', 'https://evil.example.test')
    check(r.get('http_status') == 403, 'foreign origin: expected HTTP 403, got %s' % r)
    code = ('import socket\n'
            's = socket.create_connection(("%s", 8080), timeout=5)\n'
            's.sendall(b"GET / HTTP/1.1\\r\\nHost: sbc\\r\\n\\r\\n")\n'
            'print(s.recv(4096).split(b"\\r\\n")[0].decode())\n' % EXT_VEIL4)
    p = lab.python('ext', code, desc='plain HTTP GET')
    check(p.wait(15) == 0, 'plain GET failed: %s' % p.err.decode(errors='replace'))
    status = p.out.decode().strip()
    check(status.startswith('HTTP/1.1 426'), 'plain GET: expected 426 Upgrade Required, got %r' % status)
    after = ws_stats(lab)
    check(after['refused_protocol'] == before['refused_protocol'] + 2 and
          after['refused_origin'] == before['refused_origin'] + 1 and after['accepted'] == before['accepted'] + 1,
          'counters after the refusals: %s (before %s)' % (after, before))


def test_options_without_content_length(lab):
    """OPTIONS over plain ws without Content-Length (RFC 7118 5 allows it): Veil answers 200."""
    r = run_client(lab, WS, 'options', '--no-content-length')
    check(r.get('status') == 200, 'OPTIONS over ws: %s' % r)


def test_register_then_call_from_pbx(lab):
    """REGISTER over wss (digest challenge answered end to end) arrives at the PBX with Veil's
    Contact; the PBX's call to the AOR reaches the browser over its connection, and ACK and
    BYE reach it too although its Contact is a .invalid host."""
    reg, reg_msg = sipp(lab, 'uas_registrar.xml', 'ws-registrar', 5060)
    wait_listening(lab, 5060)
    browser = client(lab, WSS, 'register-and-answer', '--user', 'alice', '--media-port', '4100', '--wait', '30')
    sipp_done(reg, 'registrar', reg_msg)
    wait_for('the browser did not register', lambda: b'"registered": true' in browser.early_output(), 15)
    check(lab.ctl('stats')['sip'].get('websocket_messages_in', 0) >= 2, 'stats: %s' % lab.ctl('stats')['sip'])
    uac, uac_msg = sipp(lab, 'uac_media.xml', 'ws-pbx-caller', 5062, scen_dir=E2E_SCEN,
                        extra=['-s', 'alice', '-set', 'rtp', '4200', '-mp', '6200', '-d', '1500'],
                        remote='%s:5060' % INT_VEIL4)
    sipp_done(uac, 'PBX caller', uac_msg)
    r = browser.json(30)
    State.received += r.get('received', [])
    check(r.get('register') == 200, 'REGISTER over wss: %s' % r)
    inv = r.get('invite', '')
    check(inv.startswith('INVITE sip:alice@'), 'the browser got no INVITE for alice: %r' % inv[:300])
    check(re.search(r'^c=IN IP4 %s\r?$' % re.escape(EXT_VEIL4), inv, re.M), 'INVITE SDP does not name Veil: %r' % inv)
    check(r.get('ack', '').startswith('ACK ') and r.get('bye', '').startswith('BYE '),
          'ACK/BYE did not reach the browser: %s' % {k: r.get(k) for k in ('ack', 'bye', 'error')})
    with open(reg_msg, errors='replace') as f:
        pbx_saw = f.read()
    check(re.search(r'Contact: *<sip:veil-[0-9a-f]{16}@%s:5060>' % re.escape(INT_VEIL4), pbx_saw),
          'the PBX did not see Veil\'s Contact: %s' % pbx_saw[-1500:])
    wait_for('the call did not end (stats %s)' % lab.ctl('stats')['sip'],
             lambda: lab.ctl('stats')['sip']['active_calls'] == 0, 5)


def test_call_to_pbx(lab):
    """A call from the browser to the PBX over wss: 200 with Veil's SDP, ACK, BYE from the
    browser answered 200; the PBX sees only Veil's trusted address."""
    uas, uas_msg = sipp(lab, 'uas_media.xml', 'ws-pbx-callee', 5060, scen_dir=E2E_SCEN,
                        extra=['-set', 'rtp', '4300', '-mp', '6300'])
    wait_listening(lab, 5060)
    r = run_client(lab, WSS, 'call', '--target', 'sip:bob@voice.example.com', '--media-port', '4110',
                   '--hold', '1')
    sipp_done(uas, 'PBX callee', uas_msg)
    check(r.get('final') == 200 and r.get('bye') == 200, 'call to the PBX over wss: %s' %
          {k: r.get(k) for k in ('final', 'bye', 'error')})
    check(re.search(r'^c=IN IP4 %s\r?$' % re.escape(EXT_VEIL4), r.get('answer', ''), re.M),
          '200 SDP does not name Veil: %r' % r.get('answer', '')[:600])
    wait_for('the call did not end', lambda: lab.ctl('stats')['sip']['active_calls'] == 0, 5)


def test_bad_messages(lab):
    """An unframeable message is dropped and counted (the connection stays); one over
    max_message_bytes closes the connection with 1009 and is counted."""
    before = ws_stats(lab)
    r = run_client(lab, WS, 'send-raw', '--raw', 'hello without headers', '--wait', '1')
    check('closed' not in r and 'handshake_error' not in r, 'garbage: %s' % r)
    r = run_client(lab, WS, 'send-raw', '--raw', 'OPTIONS sip:x SIP/2.0\\r\\nX: ' + 'a' * 70000 + '\\r\\n\\r\\n',
                   '--wait', '3')
    check(r.get('closed') == 1009, 'oversized message: expected close 1009, got %s' % r.get('closed'))
    after = ws_stats(lab)
    check(after['bad_messages'] == before['bad_messages'] + 1 and after['oversized'] == before['oversized'] + 1,
          'counters: %s (before %s)' % (after, before))


def test_per_source_limit(lab):
    """max_connections_per_source: the connection over the limit is refused and counted; the
    others stay open."""
    before = ws_stats(lab)
    holders = [client(lab, WS, 'hold-open', '--hold', '4') for _ in range(PER_SOURCE)]
    wait_for('the %d connections did not open' % PER_SOURCE,
             lambda: ws_stats(lab)['accepted'] >= before['accepted'] + PER_SOURCE, 10)
    r = run_client(lab, WS, 'handshake')
    check('handshake_error' in r, 'connection %d from one source was accepted: %s' % (PER_SOURCE + 1, r))
    for h in holders:
        res = h.json(20)
        check(res.get('open') is True, 'a connection within the limit was closed: %s' % res)
    after = ws_stats(lab)
    check(after['refused_limit'] == before['refused_limit'] + 1, 'refused_limit: %s (before %s)' % (after, before))
    wait_for('connections not closed', lambda: ws_stats(lab)['closed'] == ws_stats(lab)['accepted'], 10)
    r = run_client(lab, WS, 'handshake')
    check(r.get('subprotocol') == 'sip', 'after the others closed, a new connection was refused: %s' % r)


def test_browser_registers(lab):
    """Headless chromium with SIP.js (the untrusted namespace, page origin
    https://phone.example.test) registers over wss with digest authentication, stays
    registered, and un-registers; the PBX sees REGISTER and un-REGISTER from Veil's Contact."""
    for path, what in (('/usr/bin/chromium', 'chromium'), (os.path.join(HERE, '..', 'browser', 'node_modules',
                                                                        'sip.js', 'lib', 'index.js'), 'sip.js')):
        check(os.path.exists(path), '%s is not installed (tools/install-deps.sh installs it): %s' % (what, path))
    check(shutil.which('node'), 'node is not installed (tools/install-deps.sh installs it)')
    reg, reg_msg = sipp(lab, 'uas_registrar.xml', 'browser-registrar', 5060)
    wait_listening(lab, 5060)
    opts = {'scenario': 'register', 'server': WSS, 'user': 'alice', 'domain': 'voice.example.com',
            'password': 's3cret', 'hold_ms': 4000, 'unregister': True}
    browser = Proc(lab, lab.ns_argv('ext', ['node', BROWSER, json.dumps(opts)]), 'chromium (SIP.js)')
    sipp_done(reg, 'registrar', reg_msg)
    unreg, unreg_msg = sipp(lab, 'uas_unregister.xml', 'browser-unregister', 5060)
    r = browser.json(60)
    State.received += r.get('received', [])
    sipp_done(unreg, 'un-REGISTER', unreg_msg)
    log('  browser: states %s, contact %s' % (r.get('states'), r.get('contact')))
    check(r.get('registered') is True and r.get('unregistered') is True,
          'the browser did not register and un-register: %s' % {k: r.get(k) for k in ('registered', 'unregistered',
                                                                                        'states', 'error')})
    check(re.search(r'@[a-z0-9]+\.invalid', r.get('contact', '')), 'SIP.js contact: %s' % r.get('contact'))
    ok = [m for m in r.get('received', []) if m.startswith('SIP/2.0 200') and 'REGISTER' in m]
    check(ok and 'transport=ws' in ok[0], 'the REGISTER 200 does not return the browser\'s Contact: %s' % ok[:1])


def test_no_leaks(lab):
    """No SIP message the browser received names the trusted side; the trusted wire never
    names the untrusted host or a browser's .invalid host."""
    check(len(State.received) >= 8, 'only %d messages reached the browser' % len(State.received))
    for m in State.received:
        for bad in (INT_HOST4, INT_HOST6, INT_VEIL4, 'SIPp', 'InternalPBX'):
            check(bad not in m, 'a message to the browser names %r: %r' % (bad, m[:800]))
    for path in State.pbx_traces:
        with open(path, errors='replace') as f:
            text = f.read()
        for bad in (EXT_HOST4, EXT_VEIL4, '.invalid', 'ws-test-ua', 'transport=ws'):
            check(bad not in text, 'the PBX saw %r (%s): %s' % (bad, path, text[:1500]))
    frames = {h: c.stop() for h, c in State.captures.items()}
    macs = {h: lab.mac(h) for h in ('ext', 'int')}
    needles = {'int': addr_needles(EXT_HOST4, EXT_HOST6, macs['ext']),
               'ext': addr_needles(INT_HOST4, INT_HOST6, macs['int'])}
    needles['int']['.invalid'] = b'.invalid'
    for host, fr in frames.items():
        leaks = find_leaks(fr, needles[host])
        log('  %s wire: %d frames' % (host, len(fr)))
        if leaks:
            i, what = leaks[0]
            raise Failure('frame %d on the %s wire contains %s: %r' % (i, host, what, fr[i][:400]))
    st = lab.ctl('stats')['sip']
    check(st['callback_exceptions'] == 0, 'exceptions in SIP callbacks: %s' % st)
    log('  websocket counters: %s' % json.dumps(ws_stats(lab)))


if __name__ == '__main__':
    if os.geteuid() == 0 and not shutil.which('sipp'):
        print('1..0 # SKIP sipp is not installed (package sip-tester)')
        sys.exit(0)
    os.environ['VEIL_LAB_SIP'] = '1'
    os.environ['VEIL_LAB_WS'] = '1'
    os.environ['VEIL_LAB_WS_PER_SOURCE'] = str(PER_SOURCE)
    sys.exit(run_tests('websocket', [test_listening, test_upgrade_and_refusals, test_options_without_content_length,
                                     test_register_then_call_from_pbx, test_call_to_pbx, test_bad_messages,
                                     test_per_source_limit, test_browser_registers, test_no_leaks]))
