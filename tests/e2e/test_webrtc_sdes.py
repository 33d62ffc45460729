#!/usr/bin/env python3
"""Veil end-to-end: a browser's call with SRTP on the PBX leg too (issue 5: "SRTP<->SRTP,
re-keyed, per leg"; "no ICE, DTLS or browser attributes toward the PBX unless the trusted side
asks for SRTP").

The lab runs with VEIL_LAB_SIP=1, VEIL_LAB_WS=1 and VEIL_LAB_PBX_SRTP=AES_CM_128_HMAC_SHA1_80
([sip] pbx_srtp: every offer Veil makes to the PBX is RTP/SAVP with an a=crypto of Veil's own).
Headless chromium with SIP.js (tests/browser/veil-browser.mjs) in the untrusted namespace;
sipp plays the PBX's signaling and tools/srtp-peer.py its SRTP (RFC 3711, checked against the
RFC's vectors by its --self-test) in the trusted namespace. Media crosses the DPDK dataplane:
DTLS-SRTP keys on the browser leg, SDES keys on the PBX leg, every packet unprotected with one
leg's key and protected with the other's.

Scenarios:
  * the browser calls the PBX: the PBX is offered RTP/SAVP with one a=crypto (the configured
    suite, Veil's key: never the browser's DTLS keys), no ICE/DTLS/browser attribute; it answers
    with its own key. srtp-peer verifies every packet Veil sends it with the key Veil offered
    (no authentication failure, only from Veil's trusted address) and sends SRTP with its key,
    which the browser receives and decrypts (getStats).
  * the PBX calls the browser's registration offering SDES (with an F8 line Veil skips): Veil
    answers the PBX RTP/SAVP with a key of its own, offers the browser DTLS-SRTP; media both
    ways as above.
  * no key of either leg reaches the other leg, veilctl or veild's log; veil-leak-audit over both wires.
"""
import base64
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import (EXT_HOST4, EXT_VEIL4, INT_HOST4, INT_VEIL4, Proc, audit_wires, check, log, run_tests,  # noqa: E402
                 wait_for)
from test_sip_media import sdp_body, sdp_endpoint, sipp as sipp_on, sipp_finish  # noqa: E402
from test_websocket import E2E_SCEN, sipp, sipp_done, wait_listening  # noqa: E402
from test_webrtc import HOLD_MS, browser, call_flows, check_media, wait_browser  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
SRTP_PEER = os.path.join(ROOT, 'tools', 'srtp-peer.py')
SUITE = 'AES_CM_128_HMAC_SHA1_80'
COUNT = 250        # the PBX side's SRTP: 250 x 20 ms = 5 s
INTERVAL = 0.02


class State:
    captures = {}
    keys = []              # every SDES key of the PBX leg (the PBX's and Veil's)
    browser_msgs = []      # every SIP message the browser received
    pbx_traces = []


def fresh_key():
    return base64.b64encode(os.urandom(30)).decode()


def crypto_lines(text):
    return re.findall(r'^a=crypto:(\d+) (\S+) inline:(\S+?)\s*$', text, re.M)


def sdes_pbx(lab, scenario, label, rtp):
    """sipp as an SDES PBX callee on 5060 with a fresh key of its own (recorded): (proc, trace, key)."""
    key = fresh_key()
    State.keys.append(key)
    uas, msg = sipp(lab, scenario, label, 5060, scen_dir=E2E_SCEN,
                    extra=['-set', 'rtp', str(rtp), '-set', 'suite', SUITE, '-set', 'key', key, '-mp', str(rtp + 2000)])
    State.pbx_traces.append(msg)
    wait_listening(lab, 5060)
    return uas, msg, key


def srtp_peer(lab, bind, send_to, key_out, key_in, count=COUNT):
    argv = [sys.executable, SRTP_PEER, '--bind', bind, '--send-to', send_to, '--suite', SUITE, '--key-out', key_out,
            '--key-in', key_in, '--count', str(count), '--interval', str(INTERVAL), '--delay', '0.5',
            '--linger', '1.0', '--ssrc', '0x5eed0001']
    return Proc(lab, lab.ns_argv('int', argv), 'srtp-peer on the PBX host (%s)' % bind)


def check_pbx_leg(label, sdp, rep, pbx_veil, pbx_key, flows_end):
    """The PBX leg is SDES-SRTP keyed by Veil: one a=crypto, Veil's key; what the PBX host got
    verified with it; the flows are SRTP on both legs with different keys."""
    lines = crypto_lines(sdp)
    check(re.search(r'^m=audio \d+ RTP/SAVP ', sdp, re.M), '%s: the PBX leg is not RTP/SAVP:\n%s' % (label, sdp))
    check(len(lines) == 1 and lines[0][1] == SUITE, '%s: a=crypto toward the PBX: %s' % (label, lines))
    veil_key = lines[0][2]
    check(len(base64.b64decode(veil_key)) == 30 and veil_key != pbx_key, '%s: Veil\'s PBX-leg key' % label)
    State.keys.append(veil_key)
    log('  %s: PBX-side srtp-peer %s' % (label, rep))
    check(rep['auth_fail'] == 0, '%s: %d packets from Veil failed SRTP authentication with the key Veil gave the '
          'PBX' % (label, rep['auth_fail']))
    check(rep['received'] >= 100 and list(rep['sources']) == [pbx_veil],
          '%s: the PBX host verified %d SRTP packets from %s' % (label, rep['received'], list(rep['sources'])))
    ext = [f for f in flows_end.values() if f.get('dtls')][0]
    towards = [f for f in flows_end.values() if f.get('ice_consent_from_peer') and not f.get('rtcp_split')][0]
    log('  %s: browser-side flow srtp in %s out %s; PBX-side flow srtp in %s out %s'
        % (label, ext['srtp_in'], ext['srtp_out'], towards['srtp_in'], towards['srtp_out']))
    # From the browser: DTLS keys in, Veil's SDES key out; from the PBX: the PBX's key in,
    # DTLS keys out. Both suites show as keyed; which profile DTLS chose is the browser's.
    check(ext['srtp_out'] == '%s (keyed)' % SUITE and towards['srtp_in'] == '%s (keyed)' % SUITE,
          '%s: the PBX leg is not SDES-keyed: %s / %s' % (label, ext['srtp_out'], towards['srtp_in']))
    check(ext['srtp_in'].endswith('(keyed)') and towards['srtp_out'].endswith('(keyed)'),
          '%s: the browser leg is not keyed: %s / %s' % (label, ext['srtp_in'], towards['srtp_out']))


def test_browser_calls_srtp_pbx(lab):
    """The browser calls a PBX that Veil offers SDES-SRTP ([sip] pbx_srtp): SRTP<->SRTP, each
    leg keyed apart, media both ways. (Both wires are captured from here on.)"""
    for host in ('ext', 'int'):
        State.captures[host] = lab.capture(host, 'wsdes', persistent=True)
    drops0 = lab.drops()
    uas, uas_msg, pbx_key = sdes_pbx(lab, 'uas_sdes.xml', 'wsdes-pbx-callee', 4300)
    b = browser(lab, scenario='call', target='sip:bob@voice.example.com', hold_ms=HOLD_MS)
    pbx_saw = wait_browser(b, 'the PBX got no INVITE with SDP', lambda: sdp_endpoint(uas_msg, r'INVITE '), 30)
    check(pbx_saw[0] == INT_VEIL4, 'the PBX\'s SDP names %s' % pbx_saw[0])
    pbx_veil = '%s:%d' % pbx_saw
    offer = sdp_body(uas_msg, r'INVITE ')
    log('  browser -> SRTP PBX: the PBX was offered:\n%s' % re.sub(r'inline:\S+', 'inline:<key>', offer).strip())
    lines = crypto_lines(offer)
    check(lines, 'the PBX was offered no a=crypto:\n%s' % offer)
    peer = srtp_peer(lab, '%s:4300' % INT_HOST4, pbx_veil, pbx_key, lines[0][2])
    time.sleep(3)
    flows_mid = call_flows(lab)
    dtls_mid = lab.ctl('dtls')
    rep = peer.json(30)
    flows_end = call_flows(lab)
    r = b.json(60)
    State.browser_msgs += r.get('received', [])
    sipp_done(uas, 'PBX callee', uas_msg)
    check_pbx_leg('browser -> SRTP PBX', offer, rep, pbx_veil, pbx_key, flows_end)
    check_media(lab, 'browser -> SRTP PBX', r, rep, pbx_veil, flows_mid, flows_end, drops0, dtls_mid)


def test_ice_restart(lab):
    """The browser restarts ICE in the middle of a call (re-INVITE with new ICE credentials,
    RFC 8445 9): Veil answers with fresh credentials of its own, the flows take both, the
    browser's new checks select the pair again; DTLS is not repeated and media goes on both
    ways across the restart."""
    restarts0 = lab.ctl('stats')['sip'].get('ice_restarts', 0)
    uas, uas_msg, pbx_key = sdes_pbx(lab, 'uas_sdes_reinvite.xml', 'wsdes-pbx-restart', 4800)
    b = browser(lab, scenario='call', target='sip:bob@voice.example.com', hold_ms=10000, ice_restart_ms=3500)
    pbx_saw = wait_browser(b, 'the PBX got no INVITE with SDP', lambda: sdp_endpoint(uas_msg, r'INVITE '), 30)
    pbx_veil = '%s:%d' % pbx_saw
    lines = crypto_lines(sdp_body(uas_msg, r'INVITE '))
    State.keys.append(lines[0][2])
    # 8 s of SRTP from the PBX side: across the restart at 3.5 s.
    peer = srtp_peer(lab, '%s:4800' % INT_HOST4, pbx_veil, pbx_key, lines[0][2], count=400)
    time.sleep(2.0)
    dtls_before = lab.ctl('dtls')
    wait_browser(b, 'Veil saw no ICE restart', lambda: lab.ctl('stats')['sip'].get('ice_restarts', 0) > restarts0, 20)
    time.sleep(2.0)  # the browser's checks with the new credentials, media again
    dtls_after = lab.ctl('dtls')
    rep = peer.json(40)
    r = b.json(60)
    State.browser_msgs += r.get('received', [])
    sipp_done(uas, 'PBX callee', uas_msg)
    ir = r.get('ice_restart') or {}
    st, st0 = r.get('stats') or {}, r.get('stats_before_restart') or {}
    log('  ICE restart: %s' % ir)
    log('  browser before the restart: %s' % {k: st0.get(k) for k in ('packets_received', 'packets_sent',
                                                                      'remote_candidate')})
    log('  browser at the end: %s' % {k: st.get(k) for k in ('packets_received', 'packets_sent', 'remote_candidate',
                                                             'dtls_state')})
    log('  PBX side: %s' % rep)
    check(ir.get('accepted') is True, 'the ICE-restart re-INVITE was not accepted: %s' % ir)
    before, after = ir.get('before') or {}, ir.get('after') or {}
    check(before.get('local') and after.get('local') and before['local'] != after['local'],
          'the browser did not restart ICE: %s' % ir)
    check(before.get('remote') and after.get('remote') and before['remote'] != after['remote'],
          'Veil answered the ICE restart with its old credentials: %s' % ir)
    check(lab.ctl('stats')['sip'].get('ice_restarts', 0) == restarts0 + 1, 'ice_restarts did not count it')
    got0, got = st0.get('packets_received') or 0, st.get('packets_received') or 0
    check(got - got0 >= 150, 'the browser received %d packets before the restart and %d at the end' % (got0, got))
    check(st.get('remote_candidate', '').startswith(EXT_VEIL4 + ':') and st.get('dtls_state') == 'connected',
          'after the restart: %s' % st)
    check(rep['auth_fail'] == 0 and rep['received'] >= 300 and list(rep['sources']) == [pbx_veil],
          'the PBX side across the restart: %s' % rep)
    # The DTLS association outlives the restart: the same session, no record exchanged again.
    s0, s1 = dtls_before.get('sessions', []), dtls_after.get('sessions', [])
    log('  DTLS before %s, after %s' % (s0, s1))
    check(len(s0) == 1 and len(s1) == 1 and s0[0]['state'] == s1[0]['state'] == 'connected' and
          (s0[0]['flow'], s0[0]['sent'], s0[0]['received']) == (s1[0]['flow'], s1[0]['sent'], s1[0]['received']),
          'DTLS across the ICE restart: %s -> %s' % (s0, s1))


def test_srtp_pbx_calls_browser(lab):
    """The PBX offers SDES to the browser's registration: Veil answers it RTP/SAVP with its own
    key and offers the browser DTLS-SRTP; media both ways."""
    drops0 = lab.drops()
    pbx_key = fresh_key()
    State.keys.append(pbx_key)
    reg, reg_msg = sipp(lab, 'uas_registrar.xml', 'wsdes-registrar', 5060)
    State.pbx_traces.append(reg_msg)
    wait_listening(lab, 5060)
    b = browser(lab, scenario='answer', timeout_ms=30000)
    sipp_done(reg, 'registrar', reg_msg)
    time.sleep(1.0)  # the registrar's 200 is on its way to the browser through Veil
    uac, uac_msg = sipp(lab, 'uac_sdes.xml', 'wsdes-pbx-caller', 5062, scen_dir=E2E_SCEN,
                        extra=['-s', 'alice', '-set', 'rtp', '4200', '-set', 'suite', SUITE, '-set', 'key', pbx_key,
                               '-mp', '6200', '-d', str(HOLD_MS)], remote='%s:5060' % INT_VEIL4)
    State.pbx_traces.append(uac_msg)
    pbx_saw = wait_browser(b, 'the PBX got no 200 with SDP', lambda: sdp_endpoint(uac_msg, r'SIP/2\.0 200 '), 30)
    check(pbx_saw[0] == INT_VEIL4, 'the PBX\'s SDP names %s' % pbx_saw[0])
    pbx_veil = '%s:%d' % pbx_saw
    answer = sdp_body(uac_msg, r'SIP/2\.0 200 ')
    log('  SRTP PBX -> browser: the PBX got the answer:\n%s' % re.sub(r'inline:\S+', 'inline:<key>', answer).strip())
    lines = crypto_lines(answer)
    check(lines and lines[0][0] == '1', 'the answer to the PBX: a=crypto %s (tag 1 expected)' % lines)
    peer = srtp_peer(lab, '%s:4200' % INT_HOST4, pbx_veil, pbx_key, lines[0][2])
    time.sleep(3)
    flows_mid = call_flows(lab)
    dtls_mid = lab.ctl('dtls')
    rep = peer.json(30)
    flows_end = call_flows(lab)
    sipp_done(uac, 'PBX caller', uac_msg)
    r = b.json(60)
    State.browser_msgs += r.get('received', [])
    inv = [m for m in r.get('received', []) if m.startswith('INVITE ')]
    check(inv and 'UDP/TLS/RTP/SAVPF' in inv[0] and 'a=fingerprint' in inv[0] and 'a=crypto' not in inv[0],
          'Veil\'s offer to the browser: %s' % (inv[0][-900:] if inv else None))
    check_pbx_leg('SRTP PBX -> browser', answer, rep, pbx_veil, pbx_key, flows_end)
    check_media(lab, 'SRTP PBX -> browser', r, rep, pbx_veil, flows_mid, flows_end, drops0, dtls_mid)


def test_plain_phone_calls_srtp_pbx(lab):
    """[sip] pbx_srtp also applies to SIP phones: a plain RTP/AVP phone calls the PBX, which is
    offered SDES; RTP<->SRTP, byte-exact plain RTP on the phone's side."""
    drops0 = lab.drops()
    uas, uas_msg, pbx_key = sdes_pbx(lab, 'uas_sdes.xml', 'wsdes-pbx-callee2', 4600)
    uac, uac_msg = sipp_on(lab, 'ext', 'uac_media.xml', EXT_HOST4, 5090, 4700, 'wsdes-phone',
                           remote='%s:5060' % EXT_VEIL4, extra=['-d', '6000'])
    offer = wait_for('the PBX got no INVITE with SDP', lambda: sdp_body(uas_msg, r'INVITE '), 15)
    answer = wait_for('the phone got no 200 with SDP', lambda: sdp_body(uac_msg, r'SIP/2\.0 200 '), 15)
    pbx_veil = '%s:%d' % sdp_endpoint(uas_msg, r'INVITE ')
    phone_veil = '%s:%d' % sdp_endpoint(uac_msg, r'SIP/2\.0 200 ')
    check(re.search(r'^m=audio \d+ RTP/AVP 0', answer, re.M) and 'a=crypto' not in answer,
          'the plain phone was answered with SDES:\n%s' % answer)
    lines = crypto_lines(offer)
    check(re.search(r'^m=audio \d+ RTP/SAVP ', offer, re.M) and len(lines) == 1 and lines[0][1] == SUITE,
          'the PBX was not offered SDES:\n%s' % offer)
    State.keys.append(lines[0][2])
    pbx = srtp_peer(lab, '%s:4600' % INT_HOST4, pbx_veil, pbx_key, lines[0][2])
    phone = lab.peer('ext', '%s:4700' % EXT_HOST4, send_to=phone_veil, count=COUNT, interval=INTERVAL, ssrc=0x1A1A0001)
    rp, rx = pbx.json(40), phone.json(40)
    log('  plain phone -> SRTP PBX: PBX host %s' % rp)
    log('  plain phone -> SRTP PBX: phone host %s' % rx)
    # Both ends send the same payload pattern: each verifies what it got byte for byte.
    check(rp['auth_fail'] == 0 and rp['bad'] == 0 and rp['received'] >= COUNT and list(rp['sources']) == [pbx_veil],
          'plain phone -> SRTP PBX: the PBX host got %s' % rp)
    check(rx['bad'] == 0 and rx['received'] >= COUNT and list(rx['sources']) == [phone_veil],
          'plain phone -> SRTP PBX: the phone got %s' % rx)
    drops = lab.drops()
    for reason in ('srtp_auth_fail', 'srtp_replay', 'srtp_no_key', 'srtp_error'):
        check(drops.get(reason, 0) == drops0.get(reason, 0), 'plain phone -> SRTP PBX: %s went from %d to %d'
              % (reason, drops0.get(reason, 0), drops.get(reason, 0)))
    sipp_finish(uac, 'phone', uac_msg)
    sipp_done(uas, 'PBX callee', uas_msg)


def test_keys_stay_on_their_leg(lab):
    """No SDES key reaches the browser, veilctl or veild's log; the PBX saw no browser
    attribute or address; neither wire carries the other side's addresses or MAC
    (veil-leak-audit)."""
    check(len(State.keys) >= 4, 'keys recorded: %d (the calls did not run)' % len(State.keys))
    browser_text = '\n'.join(State.browser_msgs)
    check(State.browser_msgs, 'no SIP message reached the browser')
    check('a=crypto' not in browser_text and 'RTP/SAVP ' not in browser_text, 'the browser saw SDES')
    with open('/run/veil-lab-%s/veild.log' % lab.name, errors='replace') as f:
        vlog = f.read()
    dump = repr(lab.ctl('flows')) + repr(lab.ctl('calls'))
    for k in State.keys:
        for where, text in (('the browser', browser_text), ('veild\'s log', vlog), ('veilctl', dump)):
            check(k not in text and base64.b64decode(k).hex() not in text.lower(), 'an SDES key reached %s' % where)
    for path in State.pbx_traces:
        with open(path, errors='replace') as f:
            text = f.read()
        for bad in (EXT_HOST4, EXT_VEIL4, '.invalid', 'transport=ws', 'a=ice-', 'a=candidate', 'a=fingerprint',
                    'a=setup', 'UDP/TLS', 'a=mid', 'BUNDLE', 'a=msid'):
            check(bad not in text, 'the PBX saw %r (%s)' % (bad, path))
    log('  %d keys, none outside its leg; %d bytes of veild log' % (len(State.keys), len(vlog)))
    audit_wires(lab, State.captures)


if __name__ == '__main__':
    if os.geteuid() == 0 and not shutil.which('sipp'):
        print('1..0 # SKIP sipp is not installed (package sip-tester)')
        sys.exit(0)
    os.environ['VEIL_LAB_SIP'] = '1'
    os.environ['VEIL_LAB_WS'] = '1'
    os.environ['VEIL_LAB_PBX_SRTP'] = SUITE
    sys.exit(run_tests('wsdes', [test_browser_calls_srtp_pbx, test_ice_restart, test_srtp_pbx_calls_browser,
                                 test_plain_phone_calls_srtp_pbx, test_keys_stay_on_their_leg]))
