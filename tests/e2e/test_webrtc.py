#!/usr/bin/env python3
"""Veil end-to-end: WebRTC calls with a real browser (issue 5).

The lab runs with VEIL_LAB_SIP=1 and VEIL_LAB_WS=1 (wss on 203.0.113.1:8443, origin
https://phone.example.test). Headless Debian chromium with SIP.js (tests/browser/veil-browser.mjs)
runs in the untrusted namespace; sipp plays the PBX in the trusted namespace with
tools/rtp-peer.py sending PCMU RTP to the address Veil gave it. Media crosses the DPDK
dataplane: ICE-lite checks answered by the browser-side flow, DTLS-SRTP handshake with veild's
control plane, SRTP from the browser unprotected and relayed as RTP to the PBX, the PBX's RTP
protected as SRTP to the browser.

Scenarios: the browser calls the PBX (Veil answers it ICE-lite/DTLS-SRTP, offers the PBX plain
RTP/AVP), and the PBX calls the browser's registration (Veil offers the browser actpass and
takes its role from the answer). Checked: the browser's own getStats (packets received and
decrypted, packets sent, DTLS connected, the SRTP cipher, the selected remote candidate is
Veil's), the PBX-side rtp-peer received RTP only from Veil's trusted address, `veilctl flows`
counts both directions, `veilctl drops` shows no srtp_auth_fail, the flows and the DTLS
session are gone after the hangup; and the leak checks: nothing the browser received names the
trusted side, nothing on the trusted side names the browser, a .invalid host, ICE or DTLS."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import (EXT_HOST4, EXT_HOST6, EXT_VEIL4, INT_HOST4, INT_HOST6, INT_VEIL4,  # noqa: E402
                 Failure, Proc, addr_needles, check, find_leaks, log, run_tests, wait_for)
from test_sip_media import sdp_endpoint  # noqa: E402
from test_websocket import E2E_SCEN, WSS, sipp, sipp_done, wait_listening  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
BROWSER = os.path.join(HERE, '..', 'browser', 'veil-browser.mjs')
HOLD_MS = 8000          # the browser's call to the PBX stays up this long
RTP_COUNT = 250         # the PBX side's RTP: 250 x 20 ms = 5 s
RTP_INTERVAL = 0.02


class State:
    captures = {}
    received = []       # every SIP message the browser got
    browser_sdp = []    # SDP bodies the browser got
    pbx_traces = []
    events0 = {}        # dataplane event counters when the call being checked started


def browser(lab, **opts):
    base = {'server': WSS, 'user': 'alice', 'domain': 'voice.example.com', 'password': 's3cret'}
    base.update(opts)
    return Proc(lab, lab.ns_argv('ext', ['node', BROWSER, json.dumps(base)]), 'chromium (SIP.js %s)' % opts['scenario'])


def wait_browser(b, what, fn, timeout):
    """wait_for(); on failure the browser's own report (or its output so far) joins the message."""
    try:
        return wait_for(what, fn, timeout)
    except Failure as e:
        if b.p.poll() is None:
            time.sleep(2)
            b.p.kill()
        out, err = b.p.communicate(timeout=20)
        raise Failure('%s; the browser printed: %s %s' % (e, (b._head + out).decode(errors='replace')[-2500:],
                                                          err.decode(errors='replace')[-1500:]))


def call_flows(lab):
    calls = lab.ctl('calls')
    check(len(calls) == 1, 'veilctl calls: %s' % calls)
    return {row['id']: lab.flow(row['id']) for row in lab.ctl('flows', 'call=%d' % calls[0]['id'])}


def check_media(lab, label, r, peer_report, pbx_veil, flows_mid, flows_end, drops0, dtls_mid):
    """The assertions common to both directions of call."""
    st = r.get('stats') or {}
    log('  %s: browser getStats %s' % (label, json.dumps(st)))
    log('  %s: PBX-side rtp-peer %s' % (label, json.dumps(peer_report)))
    check(r.get('established') is True, '%s: the browser\'s call was not established: %s'
          % (label, {k: r.get(k) for k in ('states', 'rejected', 'error')}))
    check(st.get('dtls_state') == 'connected', '%s: browser DTLS state %s' % (label, st.get('dtls_state')))
    check(st.get('srtp_cipher') in ('SRTP_AES128_CM_SHA1_80', 'AES_CM_128_HMAC_SHA1_80', 'SRTP_AEAD_AES_128_GCM',
                                    'AEAD_AES_128_GCM'),
          '%s: browser SRTP cipher %s' % (label, st.get('srtp_cipher')))
    check(st.get('remote_candidate', '').startswith(EXT_VEIL4 + ':'),
          '%s: the browser\'s selected remote candidate is %s, not Veil\'s' % (label, st.get('remote_candidate')))
    check((st.get('packets_received') or 0) >= 100,
          '%s: the browser received and decrypted %s packets (the PBX sent %d)'
          % (label, st.get('packets_received'), peer_report['sent']))
    check((st.get('packets_sent') or 0) >= 100, '%s: the browser sent %s packets' % (label, st.get('packets_sent')))
    # The PBX side got the browser's audio as plain RTP, only ever from Veil's trusted address.
    check(peer_report['received'] >= 100, '%s: the PBX side received %d RTP packets' % (label, peer_report['received']))
    check(list(peer_report['sources']) == [pbx_veil], '%s: the PBX side saw sources %s, expected only %s'
          % (label, peer_report['sources'], pbx_veil))
    # Veil's flows: the browser-side flow (ICE, DTLS, SRTP in) and the one towards the browser
    # (SRTP out), both counting.
    ext = [f for f in flows_end.values() if f.get('dtls')]
    towards = [f for f in flows_end.values() if f.get('ice_consent_from_peer') and not f.get('rtcp_split')]
    check(len(ext) == 1 and len(towards) == 1, '%s: flows of the call: %s' % (label, list(flows_end.values())))
    ext, towards = ext[0], towards[0]
    check(towards['local'] == pbx_veil, '%s: the flow towards the browser listens on %s, the PBX was given %s'
          % (label, towards['local'], pbx_veil))
    for f in (ext, towards):
        a = flows_mid.get(f['id'], {}).get('packets', 0)
        log('  %s: flow %d %s -> %s: %d packets mid-call, %d at the end, srtp in %s, out %s, drops %s'
            % (label, f['id'], f['local'], f['egress_dst'], a, f['packets'], f['srtp_in'], f['srtp_out'],
               {k: v for k, v in f['drops_by_reason'].items() if v}))
        check(0 < a < f['packets'], '%s: flow %d did not count up: %d then %d' % (label, f['id'], a, f['packets']))
    check(ext['srtp_in'].endswith('(keyed)') and towards['srtp_out'].endswith('(keyed)'),
          '%s: SRTP keys not installed: in %s, out %s' % (label, ext['srtp_in'], towards['srtp_out']))
    check(ext['remote'].startswith(EXT_HOST4 + ':') and ext['ice_checks'] > 0,
          '%s: the browser-side flow selected %s after %d checks' % (label, ext['remote'], ext['ice_checks']))
    check(towards['packets'] >= 100 and ext['packets'] >= 100,
          '%s: flows relayed %d (from the browser) and %d (to it)' % (label, ext['packets'], towards['packets']))
    # veilctl dtls during the call: one session, on the browser-side flow, connected, in the
    # role opposite to the browser's, with the profile the browser reports.
    sessions = dtls_mid.get('sessions', [])
    log('  %s: veilctl dtls mid-call: %s' % (label, sessions))
    check(len(sessions) == 1 and sessions[0]['flow'] == ext['id'] and sessions[0]['state'] == 'connected',
          '%s: DTLS sessions during the call: %s (browser-side flow %d)' % (label, sessions, ext['id']))
    browser_role = st.get('dtls_role')
    check(browser_role in ('client', 'server') and sessions[0]['role'] != browser_role,
          '%s: Veil is DTLS %s, the browser %s' % (label, sessions[0]['role'], browser_role))
    check(sessions[0]['profile'] in st.get('srtp_cipher', ''), '%s: Veil exported %s, the browser uses %s'
          % (label, sessions[0]['profile'], st.get('srtp_cipher')))
    # Media took the relay's fast path: only a few packets per flow (the first ones, STUN
    # checks, DTLS, split RTCP) went the slow way.
    ev = lab.events()
    relayed = ev['relayed'] - State.events0.get('relayed', 0)
    slow = ev['relay_slow'] - State.events0.get('relay_slow', 0)
    log('  %s: %d media packets relayed, %d of them (and STUN/DTLS) on the slow path' % (label, relayed, slow))
    check(relayed >= 200 and slow * 4 < relayed, '%s: %d of %d relayed packets took the slow path'
          % (label, slow, relayed))
    drops = lab.drops()
    for reason in ('srtp_auth_fail', 'srtp_replay', 'srtp_error'):
        check(drops.get(reason, 0) == drops0.get(reason, 0), '%s: %s went from %d to %d'
              % (label, reason, drops0.get(reason, 0), drops.get(reason, 0)))
    log('  %s: drops during the call: %s' % (label, {k: v - drops0.get(k, 0) for k, v in drops.items()
                                                     if v != drops0.get(k, 0)}))
    ids = set(flows_end)

    def gone():
        left = ids & {row['id'] for row in lab.ctl('flows')}
        return not left and lab.ctl('stats')['sip']['active_calls'] == 0
    wait_for('%s: after the hangup flows %s or the call are still there' % (label, sorted(ids)), gone, 10)
    wait_for('%s: the DTLS session outlived the call: %s' % (label, lab.ctl('dtls')),
             lambda: not lab.ctl('dtls').get('sessions'), 5)


def keep(r):
    State.received += r.get('received', [])
    for m in r.get('received', []):
        if 'application/sdp' in m:
            State.browser_sdp.append(m.split('\r\n\r\n', 1)[-1])


def test_setup(lab):
    """Chromium, SIP.js and node are installed; both wires captured from here on."""
    for path, what in (('/usr/bin/chromium', 'chromium'), (os.path.join(HERE, '..', 'browser', 'node_modules',
                                                                        'sip.js', 'lib', 'index.js'), 'sip.js')):
        check(os.path.exists(path), '%s is not installed (tools/install-deps.sh installs it): %s' % (what, path))
    check(shutil.which('node'), 'node is not installed (tools/install-deps.sh installs it)')
    check(lab.ctl('dtls').get('fingerprint', '').startswith('sha-256 '), 'veilctl dtls: %s' % lab.ctl('dtls'))
    for host in ('ext', 'int'):
        State.captures[host] = lab.capture(host, 'webrtc', persistent=True)


def test_browser_calls_pbx(lab):
    """Chromium calls the PBX over wss: Veil answers ICE-lite/DTLS-SRTP, the PBX gets plain RTP/AVP
    from Veil's trusted address; media both ways for seconds; the browser hangs up."""
    drops0 = lab.drops()
    State.events0 = lab.events()
    uas, uas_msg = sipp(lab, 'uas_media.xml', 'webrtc-pbx-callee', 5060, scen_dir=E2E_SCEN,
                        extra=['-set', 'rtp', '4300', '-mp', '6300'])
    State.pbx_traces.append(uas_msg)
    wait_listening(lab, 5060)
    b = browser(lab, scenario='call', target='sip:bob@voice.example.com', hold_ms=HOLD_MS)
    pbx_saw = wait_browser(b, 'the PBX got no INVITE with SDP', lambda: sdp_endpoint(uas_msg, r'INVITE '), 30)
    check(pbx_saw[0] == INT_VEIL4, 'the PBX\'s SDP names %s' % pbx_saw[0])
    pbx_veil = '%s:%d' % pbx_saw
    peer = lab.peer('int', '%s:4300' % INT_HOST4, send_to=pbx_veil, count=RTP_COUNT, interval=RTP_INTERVAL,
                    delay=0.5, linger=1.0)
    time.sleep(3)
    flows_mid = call_flows(lab)
    dtls_mid = lab.ctl('dtls')
    rep = peer.json(30)
    flows_end = call_flows(lab)
    r = b.json(60)
    keep(r)
    sipp_done(uas, 'PBX callee', uas_msg)
    check(r.get('hung_up') is True and r.get('ended') is True, 'the browser did not hang up: %s'
          % {k: r.get(k) for k in ('states', 'error')})
    check_media(lab, 'browser -> PBX', r, rep, pbx_veil, flows_mid, flows_end, drops0, dtls_mid)
    with open(uas_msg, errors='replace') as f:
        invite = f.read()
    check(re.search(r'^m=audio \d+ RTP/AVP ', invite, re.M), 'the PBX was not offered RTP/AVP: %s' % invite[-1200:])
    check(re.search(r'^a=rtcp-mux\r?$', invite, re.M), 'the PBX was not offered rtcp-mux: %s' % invite[-1200:])


def test_pbx_calls_browser(lab):
    """The PBX calls the AOR the browser registered over wss: Veil offers the browser actpass,
    the browser answers; media both ways; the PBX hangs up."""
    drops0 = lab.drops()
    State.events0 = lab.events()
    reg, reg_msg = sipp(lab, 'uas_registrar.xml', 'webrtc-registrar', 5060)
    State.pbx_traces.append(reg_msg)
    wait_listening(lab, 5060)
    b = browser(lab, scenario='answer', timeout_ms=30000)
    sipp_done(reg, 'registrar', reg_msg)
    time.sleep(1.0)  # the registrar's 200 is on its way to the browser through Veil
    uac, uac_msg = sipp(lab, 'uac_media.xml', 'webrtc-pbx-caller', 5062, scen_dir=E2E_SCEN,
                        extra=['-s', 'alice', '-set', 'rtp', '4200', '-mp', '6200', '-d', str(HOLD_MS)],
                        remote='%s:5060' % INT_VEIL4)
    State.pbx_traces.append(uac_msg)
    pbx_saw = wait_browser(b, 'the PBX got no 200 with SDP', lambda: sdp_endpoint(uac_msg, r'SIP/2\.0 200 '), 30)
    check(pbx_saw[0] == INT_VEIL4, 'the PBX\'s SDP names %s' % pbx_saw[0])
    pbx_veil = '%s:%d' % pbx_saw
    peer = lab.peer('int', '%s:4200' % INT_HOST4, send_to=pbx_veil, count=RTP_COUNT, interval=RTP_INTERVAL,
                    delay=0.5, linger=1.0)
    # The PBX does not mux: its RTCP port (4201) sends SRs about its RTP stream to Veil's RTCP
    # port and receives the browser's RTCP there.
    pbx_rtcp_veil = '%s:%d' % (pbx_saw[0], pbx_saw[1] + 1)
    rtcp = lab.python('int', RTCP_PEER, '%s:4201' % INT_HOST4, pbx_rtcp_veil, RTP_COUNT * RTP_INTERVAL + 1.5,
                      desc='PBX RTCP port')
    time.sleep(3)
    flows_mid = call_flows(lab)
    dtls_mid = lab.ctl('dtls')
    rep = peer.json(30)
    rtcp_rep = rtcp.json(30)
    flows_end = call_flows(lab)
    sipp_done(uac, 'PBX caller', uac_msg)
    r = b.json(60)
    keep(r)
    check(r.get('registered') is True and r.get('invite_received') is True and r.get('ended') is True,
          'the browser: %s' % {k: r.get(k) for k in ('registered', 'invite_received', 'states', 'error')})
    inv = [m for m in r.get('received', []) if m.startswith('INVITE ')]
    check(inv and 'a=setup:actpass' in inv[0] and 'a=ice-lite' in inv[0],
          'Veil\'s offer to the browser: %s' % (inv[0][-900:] if inv else None))
    check_media(lab, 'PBX -> browser', r, rep, pbx_veil, flows_mid, flows_end, drops0, dtls_mid)
    with open(uac_msg, errors='replace') as f:
        answer = f.read()
    check(re.search(r'^m=audio \d+ RTP/AVP 0', answer, re.M), 'the PBX got no RTP/AVP answer: %s' % answer[-1200:])
    check(not re.search(r'^a=rtcp-mux', answer, re.M), 'Veil answered rtcp-mux to a PBX that did not offer it: %s'
          % answer[-1200:])
    check_split_rtcp(r, rtcp_rep, pbx_rtcp_veil, flows_end)


# The PBX's RTCP port: sends an RTCP SR (sender SSRC = rtp-peer's default 0x5EED0001) every
# 200 ms to Veil's RTCP port, receives what comes back; prints JSON.
RTCP_PEER = r'''
import json, socket, struct, sys, time
def ep(t):
    h, p = t.rsplit(':', 1)
    return h, int(p)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(ep(sys.argv[1])); s.settimeout(0.02)
dst = ep(sys.argv[2]); end = time.monotonic() + float(sys.argv[3])
sent = 0; got = []; sources = {}; nxt = time.monotonic() + 0.5
while time.monotonic() < end:
    if time.monotonic() >= nxt:
        nxt += 0.2; sent += 1
        ntp = int((time.time() + 2208988800) * 65536) << 16
        s.sendto(struct.pack('!BBHIQIII', 0x80, 200, 6, 0x5EED0001, ntp, 160000 + 160 * sent, 10 * sent, 1600 * sent), dst)
    try:
        d, a = s.recvfrom(2048)
    except socket.timeout:
        continue
    k = '%s:%d' % a[:2]; sources[k] = sources.get(k, 0) + 1
    got.append(d[:2].hex())
print(json.dumps({'sent': sent, 'received': len(got), 'sources': sources,
                  'rtcp': sum(1 for h in got if int(h[:2], 16) >> 6 == 2 and 192 <= int(h[2:], 16) <= 223)}))
'''


def check_split_rtcp(r, rtcp_rep, pbx_rtcp_veil, flows_end):
    """A browser that muxes with a PBX that does not: the browser's RTCP reached the PBX's RTCP
    port from Veil's RTCP port, decrypted; the PBX's SRs reached the browser (getStats
    remote-outbound-rtp); the PBX-RTCP-port flow towards the browser counted them."""
    st = r.get('stats') or {}
    log('  split RTCP: PBX RTCP port %s; browser remote-outbound-rtp packetsSent %s, reportsSent %s'
        % (json.dumps(rtcp_rep), st.get('remote_sr_packets_sent'), st.get('remote_sr_reports')))
    check(rtcp_rep['received'] >= 2 and rtcp_rep['rtcp'] == rtcp_rep['received'],
          "split RTCP: the PBX's RTCP port got %d packets, %d plain RTCP" % (rtcp_rep['received'], rtcp_rep['rtcp']))
    check(list(rtcp_rep['sources']) == [pbx_rtcp_veil], "split RTCP: the PBX's RTCP came from %s, expected %s"
          % (rtcp_rep['sources'], pbx_rtcp_veil))
    check((st.get('remote_sr_reports') or 0) >= 2 and (st.get('remote_sr_packets_sent') or 0) >= 10,
          'split RTCP: the browser saw no SR from the PBX: %s' % st)
    split = [f for f in flows_end.values() if f.get('rtcp_split') and f.get('ice_consent_from_peer')]
    check(len(split) == 1 and split[0]['local'] == pbx_rtcp_veil and split[0]['packets'] >= rtcp_rep['sent'] - 2,
          "split RTCP: the flow from the PBX's RTCP port: %s (the PBX sent %d)" % (split, rtcp_rep['sent']))
    check(split[0]['srtp_out'].endswith('(keyed)'), 'split RTCP: %s' % split[0])
    log('  split RTCP: flow %d %s relayed %d SRs to the browser' % (split[0]['id'], split[0]['local'],
                                                                   split[0]['packets']))


def test_pbx_reinvites_browser(lab):
    """A re-INVITE from the PBX in the middle of a call to the browser: Veil re-offers the
    browser with the DTLS role the first answer fixed (no new handshake, the SRTP keys stay),
    media goes on both ways across it."""
    drops0 = lab.drops()
    State.events0 = lab.events()
    count = 400  # 8 s of PBX-side RTP, across the re-INVITE at 3 s
    reg, reg_msg = sipp(lab, 'uas_registrar.xml', 'webrtc-registrar2', 5060)
    State.pbx_traces.append(reg_msg)
    wait_listening(lab, 5060)
    b = browser(lab, scenario='answer', timeout_ms=30000)
    sipp_done(reg, 'registrar', reg_msg)
    time.sleep(1.0)
    uac, uac_msg = sipp(lab, 'uac_media_reinvite.xml', 'webrtc-pbx-reinviter', 5064, scen_dir=E2E_SCEN,
                        extra=['-s', 'alice', '-set', 'rtp', '4400', '-mp', '6400', '-d', '7000'],
                        remote='%s:5060' % INT_VEIL4)
    State.pbx_traces.append(uac_msg)
    pbx_saw = wait_browser(b, 'the PBX got no 200 with SDP', lambda: sdp_endpoint(uac_msg, r'SIP/2\.0 200 '), 30)
    pbx_veil = '%s:%d' % pbx_saw
    peer = lab.peer('int', '%s:4400' % INT_HOST4, send_to=pbx_veil, count=count, interval=RTP_INTERVAL,
                    delay=0.5, linger=1.0)
    time.sleep(2)
    dtls_before = lab.ctl('dtls')
    time.sleep(3)
    flows_mid = call_flows(lab)
    dtls_mid = lab.ctl('dtls')
    rep = peer.json(30)
    flows_end = call_flows(lab)
    sipp_done(uac, 'PBX re-INVITE caller', uac_msg)
    r = b.json(60)
    keep(r)
    invites = [m for m in r.get('received', []) if m.startswith('INVITE ')]
    check(len(invites) == 2, 'the browser got %d INVITEs, expected the call and the re-INVITE' % len(invites))
    check('a=setup:actpass' in invites[0] and 'a=setup:passive' in invites[1],
          'DTLS role in Veil\'s offers: %s / %s' % (re.findall(r'a=setup:\w+', invites[0]),
                                                    re.findall(r'a=setup:\w+', invites[1])))
    before, after = dtls_before.get('sessions', []), dtls_mid.get('sessions', [])
    log('  re-INVITE: DTLS session before %s, after %s' % (before, after))
    check(len(before) == 1 and len(after) == 1 and before[0]['flow'] == after[0]['flow'] and
          (before[0]['sent'], before[0]['received']) == (after[0]['sent'], after[0]['received']),
          're-INVITE: the DTLS session changed (a new handshake): %s -> %s' % (before, after))
    check_media(lab, 'PBX re-INVITE -> browser', r, rep, pbx_veil, flows_mid, flows_end, drops0, dtls_mid)
    got = (r.get('stats') or {}).get('packets_received') or 0
    check(got >= count * 0.95, 're-INVITE: the browser received %d of %d packets' % (got, count))


def test_fingerprint_mismatch(lab):
    """A browser whose certificate does not match the a=fingerprint of its SDP: Veil refuses
    the DTLS handshake, no media is forwarded either way, and the call is ended on both legs
    at once (BYE to the browser and to the PBX); flows and the session are removed."""
    drops0 = lab.drops()
    State.events0 = lab.events()
    uas, uas_msg = sipp(lab, 'uas_media.xml', 'webrtc-pbx-callee-fp', 5060, scen_dir=E2E_SCEN,
                        extra=['-set', 'rtp', '4500', '-mp', '6500'])
    State.pbx_traces.append(uas_msg)
    wait_listening(lab, 5060)
    t0 = time.monotonic()
    b = browser(lab, scenario='call', target='sip:bob@voice.example.com', hold_ms=15000, mangle_fingerprint=True)
    pbx_saw = wait_browser(b, 'the PBX got no INVITE with SDP', lambda: sdp_endpoint(uas_msg, r'INVITE '), 30)
    peer = lab.peer('int', '%s:4500' % INT_HOST4, send_to='%s:%d' % pbx_saw, count=150, interval=RTP_INTERVAL,
                    delay=0.5, linger=0.5)
    sipp_done(uas, 'PBX callee (BYE from Veil)', uas_msg)
    took = time.monotonic() - t0
    r = b.json(60)
    keep(r)
    rep = peer.json(30)
    st = r.get('stats') or {}
    log('  fingerprint mismatch: call ended by Veil after %.1f s; browser %s; states %s' % (took, st, r.get('states')))
    log('  fingerprint mismatch: PBX-side rtp-peer %s' % rep)
    check(r.get('ended') is True and not r.get('hung_up'), 'the browser\'s call was not ended by Veil: %s'
          % {k: r.get(k) for k in ('states', 'hung_up', 'error')})
    check(took < 12, 'the call lasted %.1f s: Veil did not end it when DTLS failed' % took)
    check(not st.get('packets_received'), 'the browser received %s packets without DTLS' % st.get('packets_received'))
    check(st.get('dtls_state') != 'connected', 'the browser\'s DTLS is %s' % st.get('dtls_state'))
    check(rep['received'] == 0, 'the PBX side received %d packets from a browser that failed DTLS' % rep['received'])
    with open(uas_msg, errors='replace') as f:
        check(re.search(r'^BYE ', f.read(), re.M), 'the PBX got no BYE')
    with open('/run/veil-lab-%s/veild.log' % lab.name, errors='replace') as f:
        vlog = [l for l in f.read().splitlines() if 'DTLS-SRTP failed' in l]
    log('  fingerprint mismatch: veild: %s' % vlog)
    check(any('fingerprint' in l for l in vlog) and any('ended' in l for l in vlog),
          'veild did not log the fingerprint failure and the ended call: %s' % vlog)
    drops = lab.drops()
    log('  fingerprint mismatch: drops %s' % {k: v - drops0.get(k, 0) for k, v in drops.items() if v != drops0.get(k, 0)})
    wait_for('flows or the DTLS session outlived the call', lambda: not lab.ctl('flows') and
             not lab.ctl('dtls').get('sessions') and lab.ctl('stats')['sip']['active_calls'] == 0, 10)


def test_no_leaks(lab):
    """Nothing the browser received names the trusted side; nothing the PBX received names the
    browser, a .invalid host, ICE or DTLS; no frame on either wire carries the other side's
    addresses or MAC."""
    check(len(State.browser_sdp) >= 2, 'only %d SDP bodies reached the browser' % len(State.browser_sdp))
    for m in State.received:
        for bad in (INT_HOST4, INT_HOST6, INT_VEIL4, 'SIPp', 'RTP/AVP '):
            check(bad not in m, 'a message to the browser names %r: %r' % (bad, m[:1200]))
    for sdp in State.browser_sdp:
        cands = re.findall(r'^a=candidate:.*$', sdp, re.M)
        check(cands and all((' %s ' % EXT_VEIL4) in c for c in cands), 'candidates to the browser: %s' % cands)
    for path in State.pbx_traces:
        with open(path, errors='replace') as f:
            text = f.read()
        for bad in (EXT_HOST4, EXT_VEIL4, '.invalid', 'transport=ws', 'a=ice-', 'a=candidate', 'a=fingerprint',
                    'a=setup', 'UDP/TLS', 'SAVP', 'a=mid', 'BUNDLE', 'a=ssrc', 'a=msid'):
            check(bad not in text, 'the PBX saw %r (%s): %s' % (bad, path, text[-1500:]))
    frames = {h: c.stop() for h, c in State.captures.items()}
    macs = {h: lab.mac(h) for h in ('ext', 'int')}
    needles = {'int': addr_needles(EXT_HOST4, EXT_HOST6, macs['ext']),
               'ext': addr_needles(INT_HOST4, INT_HOST6, macs['int'])}
    needles['int']['.invalid'] = b'.invalid'
    for host, fr in frames.items():
        # The operators' audit (tools/veil-leak-audit.py) over the same capture: the other side's
        # prefixes in every form and its host's MAC (SIP toward the browser is inside TLS; the
        # SRTP, STUN and DTLS on the untrusted wire and everything on the trusted wire are not).
        other = 'int' if host == 'ext' else 'ext'
        prefixes = ['198.51.100.0/24', '2001:db8:2::/48'] if host == 'ext' else ['203.0.113.0/24', '2001:db8:1::/48']
        argv = [sys.executable, os.path.join(ROOT, 'tools', 'veil-leak-audit.py'), State.captures[host].path,
                '--forbid-mac', macs[other]]
        for pfx in prefixes:
            argv += ['--forbid', pfx]
        a = subprocess.run(argv, capture_output=True, text=True)
        log('  %s wire, veil-leak-audit: %s' % (host, (a.stdout.strip().splitlines() or [''])[-1]))
        check(a.returncode == 0, 'veil-leak-audit on the %s wire exited %d: %s %s'
              % (host, a.returncode, a.stdout[:2000], a.stderr[-500:]))
        leaks = find_leaks(fr, needles[host])
        log('  %s wire: %d frames' % (host, len(fr)))
        if leaks:
            i, what = leaks[0]
            raise Failure('frame %d on the %s wire contains %s: %r' % (i, host, what, fr[i][:400]))
    st = lab.ctl('stats')['sip']
    check(st['callback_exceptions'] == 0, 'exceptions in SIP callbacks: %s' % st)


if __name__ == '__main__':
    if os.geteuid() == 0 and not shutil.which('sipp'):
        print('1..0 # SKIP sipp is not installed (package sip-tester)')
        sys.exit(0)
    os.environ['VEIL_LAB_SIP'] = '1'
    os.environ['VEIL_LAB_WS'] = '1'
    sys.exit(run_tests('webrtc', [test_setup, test_browser_calls_pbx, test_pbx_calls_browser,
                                  test_pbx_reinvites_browser, test_fingerprint_mismatch, test_no_leaks]))
