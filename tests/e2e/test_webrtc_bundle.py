#!/usr/bin/env python3
"""Veil end-to-end: BUNDLE (RFC 9143) browser calls with audio AND video (issue 5, point 4).

Same lab and browser as tests/e2e/test_webrtc.py (its own lab: the calls of both files would not
fit one file's time budget). Chromium (fake camera and microphone) with SIP.js calls the PBX
with audio and video, and the PBX calls the browser's registration with audio and video. Toward
the browser both m-lines share one ICE/DTLS/SRTP 5-tuple; toward the PBX they are two plain
m-lines on two Veil ports. Checked: the PBX side gets the browser's audio on its audio port and
VP8 on its video port, each only from Veil's trusted port of that m-line; the browser's
getStats shows audio and video received and decrypted on one transport; the video m-line's
browser->PBX flow is a bundle member of the ICE flow (veilctl flows); no SRTP or
bundle_unknown_pt drop; and the leak checks of test_webrtc (message contents, candidates, PBX
traces, tools/veil-leak-audit.py over both wires) over these calls."""
import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import INT_HOST4, INT_VEIL4, Proc, check, log, run_tests, wait_for  # noqa: E402
from test_sip_media import sdp_endpoint  # noqa: E402
from test_websocket import E2E_SCEN, sipp, sipp_done, wait_listening  # noqa: E402
from test_webrtc import (HOLD_MS, RTP_COUNT, RTP_INTERVAL, State, browser, call_flows, keep,  # noqa: E402
                         test_no_leaks, test_setup, wait_browser)


def test_browser_calls_pbx_audio_video(lab):
    """BUNDLE (RFC 9143): chromium calls the PBX with audio AND video. Veil answers the browser
    with one 5-tuple for both m-lines (one port, candidate, ufrag and fingerprint) and offers the
    PBX two plain m-lines on two trusted ports. The PBX side answers audio PCMU and video VP8
    (the payload type chromium offered); its audio peer and video peer each send RTP. Checked:
    the PBX side got the browser's audio on its audio port and VP8 on its video port, only from
    Veil's trusted address for that m-line; the browser's getStats shows audio and video
    received and decrypted on one transport; the video m-line's browser->PBX flow is a bundle
    member of the audio m-line's ICE flow (veilctl flows); no SRTP or bundle drops."""
    drops0 = lab.drops()
    uas, uas_msg = sipp(lab, 'uas_media_av.xml', 'webrtc-pbx-callee-av', 5060, scen_dir=E2E_SCEN,
                        extra=['-set', 'rtp', '4600', '-set', 'vrtp', '4602', '-mp', '6600'])
    State.pbx_traces.append(uas_msg)
    wait_listening(lab, 5060)
    b = browser(lab, scenario='call', target='sip:bob@voice.example.com', hold_ms=HOLD_MS, video=True)
    pbx_saw = wait_browser(b, 'the PBX got no INVITE with SDP', lambda: sdp_endpoint(uas_msg, r'INVITE '), 30)
    check(pbx_saw[0] == INT_VEIL4, 'the PBX\'s SDP names %s' % pbx_saw[0])
    with open(uas_msg, errors='replace') as f:
        invite = f.read()
    mv = re.search(r'^m=video (\d+) RTP/AVP ([\d ]+)\r?$', invite, re.M)
    vp8 = re.search(r'^a=rtpmap:(\d+) VP8/90000', invite, re.M)
    check(mv and vp8, 'the PBX was not offered a plain video m-line with VP8: %s' % invite[-2500:])
    vp8 = int(vp8.group(1))
    audio_veil = '%s:%d' % pbx_saw
    video_veil = '%s:%s' % (INT_VEIL4, mv.group(1))
    check(audio_veil != video_veil, 'audio and video share Veil\'s trusted port %s' % audio_veil)
    for gone in ('BUNDLE', 'a=mid', 'extmap', 'a=ssrc', 'a=msid', 'rtcp-rsize', 'SAVPF'):
        check(gone not in invite, 'the PBX\'s offer carries %r' % gone)
    apeer = lab.peer('int', '%s:4600' % INT_HOST4, send_to=audio_veil, count=RTP_COUNT, interval=RTP_INTERVAL,
                     delay=0.5, linger=1.0, desc='PBX audio peer')
    vpeer = Proc(lab, lab.ns_argv('int', [sys.executable, lab.rtp_peer, '--bind', '%s:4602' % INT_HOST4,
                                          '--send-to', video_veil, '--count', str(RTP_COUNT), '--interval',
                                          str(RTP_INTERVAL), '--delay', '0.5', '--linger', '1.0', '--pt', str(vp8),
                                          '--ssrc', '0x5EED0002', '--payload', '600']), 'PBX video peer')
    time.sleep(3)
    flows_mid = call_flows(lab)
    # What an operator sees (docs/operations.md): the BUNDLE column of `veilctl flows`.
    calls = lab.ctl('calls')
    text = lab.ctl_raw('flows', 'call=%d' % calls[0]['id']).stdout
    log('  audio+video: veilctl flows call=%d:\n%s' % (calls[0]['id'], text.rstrip()))
    check('member of flow' in text and 'BUNDLE' in text, 'veilctl flows shows no bundle membership: %s' % text)
    arep = apeer.json(30)
    vrep = vpeer.json(30)
    flows_end = call_flows(lab)
    r = b.json(60)
    keep(r)
    sipp_done(uas, 'PBX callee (audio+video)', uas_msg)
    st = r.get('stats') or {}
    log('  audio+video: browser getStats %s' % json.dumps(st))
    log('  audio+video: PBX audio peer %s' % json.dumps(arep))
    log('  audio+video: PBX video peer %s' % json.dumps(vrep))
    check(r.get('established') is True, 'audio+video: the call was not established: %s'
          % {k: r.get(k) for k in ('states', 'rejected', 'error')})
    answer = [m for m in r.get('received', []) if m.startswith('SIP/2.0 200') and 'application/sdp' in m]
    check(answer, 'audio+video: no 200 with SDP reached the browser')
    sdp = answer[0].split('\r\n\r\n', 1)[-1]
    ports = re.findall(r'^m=(audio|video) (\d+) ', sdp, re.M)
    cands = re.findall(r'^a=candidate:.*$', sdp, re.M)
    log('  audio+video: Veil\'s answer to the browser: m-lines %s, group %s'
        % (ports, re.findall(r'^a=group:.*$', sdp, re.M)))
    check(len(ports) == 2 and ports[0][1] == ports[1][1] and len(set(cands)) == 1 and
          re.search(r'^a=group:BUNDLE 0 1\r?$', sdp, re.M) and len(set(re.findall(r'^a=ice-ufrag:.*$', sdp, re.M))) == 1,
          'audio+video: Veil\'s answer to the browser is not one bundled 5-tuple: %s' % sdp)
    # The browser: audio and video received and decrypted, one transport for both.
    check(st.get('dtls_state') == 'connected', 'audio+video: browser DTLS %s' % st.get('dtls_state'))
    check((st.get('packets_received') or 0) >= 100, 'audio+video: the browser received %s audio packets'
          % st.get('packets_received'))
    check((st.get('video_packets_received') or 0) >= 100, 'audio+video: the browser received %s video packets '
          '(the PBX sent %d)' % (st.get('video_packets_received'), vrep['sent']))
    check(st.get('transports') == 1 and st.get('audio_transport') == st.get('video_transport'),
          'audio+video: the browser uses %s transports' % st.get('transports'))
    check((st.get('video_packets_sent') or 0) >= 50, 'audio+video: the browser sent %s video packets'
          % st.get('video_packets_sent'))
    # The PBX side: audio on the audio port, VP8 on the video port, each only from Veil's port.
    check(arep['received'] >= 100 and list(arep['sources']) == [audio_veil] and
          set(arep['pts']) == {'0'}, 'audio+video: the PBX audio port got %s' % arep)
    check(vrep['received'] >= 50 and list(vrep['sources']) == [video_veil] and
          set(vrep['pts']) == {str(vp8)}, 'audio+video: the PBX video port got %s (VP8 is %d)' % (vrep, vp8))
    # Veil's flows: the video m-line's browser->PBX flow is a bundle member of the ICE flow.
    ice = [f for f in flows_end.values() if f.get('dtls')]
    members = [f for f in flows_end.values() if 'member of flow' in f.get('bundle', '')]
    log('  audio+video: flows %s' % [(f['id'], f['local'], f.get('bundle', '-'), f['packets'])
                                     for f in flows_end.values()])
    check(len(ice) == 1 and len(members) == 1 and
          members[0]['bundle'].startswith('member of flow %d,' % ice[0]['id']) and
          members[0]['egress_local'] == video_veil and members[0]['packets'] >= 50,
          'audio+video: bundle flows %s' % list(flows_end.values()))
    check(ice[0]['bundle'].startswith('head, PTs ') and ice[0]['packets'] >= 100, 'audio+video: %s' % ice[0])
    towards_video = [f for f in flows_end.values() if f['local'] == video_veil]
    check(len(towards_video) == 1 and towards_video[0].get('dst_from_peer') and
          towards_video[0]['srtp_out'].endswith('(keyed)') and towards_video[0]['packets'] >= 100,
          'audio+video: the flow from the PBX video port: %s' % towards_video)
    drops = lab.drops()
    for reason in ('srtp_auth_fail', 'srtp_replay', 'srtp_error', 'bundle_unknown_pt'):
        check(drops.get(reason, 0) == drops0.get(reason, 0), 'audio+video: %s went from %d to %d'
              % (reason, drops0.get(reason, 0), drops.get(reason, 0)))
    log('  audio+video: drops during the call: %s' % {k: v - drops0.get(k, 0) for k, v in drops.items()
                                                       if v != drops0.get(k, 0)})
    ids = set(flows_end)
    wait_for('audio+video: flows outlived the call', lambda: not (ids & {row['id'] for row in lab.ctl('flows')}), 10)


def test_pbx_calls_browser_audio_video(lab):
    """BUNDLE, the other way: the PBX offers audio and video (VP8 96, rtcp-mux) to the browser's
    registration. Veil offers the browser both m-lines on one port and candidate (RFC 8843:
    the same port in every bundled m-line of an offer); the browser answers bundled. Checked:
    audio and video received and decrypted by the browser on one transport, the PBX side got
    the browser's audio and VP8 on the right ports from the right Veil ports."""
    drops0 = lab.drops()
    reg, reg_msg = sipp(lab, 'uas_registrar.xml', 'webrtc-registrar-av', 5060)
    State.pbx_traces.append(reg_msg)
    wait_listening(lab, 5060)
    b = browser(lab, scenario='answer', timeout_ms=30000, video=True)
    sipp_done(reg, 'registrar', reg_msg)
    time.sleep(1.0)
    uac, uac_msg = sipp(lab, 'uac_media_av.xml', 'webrtc-pbx-caller-av', 5066, scen_dir=E2E_SCEN,
                        extra=['-s', 'alice', '-set', 'rtp', '4700', '-set', 'vrtp', '4702', '-mp', '6700',
                               '-d', str(HOLD_MS)],
                        remote='%s:5060' % INT_VEIL4)
    State.pbx_traces.append(uac_msg)
    pbx_saw = wait_browser(b, 'the PBX got no 200 with SDP', lambda: sdp_endpoint(uac_msg, r'SIP/2\.0 200 '), 30)
    with open(uac_msg, errors='replace') as f:
        text = f.read()
    ok = [blk for blk in re.split(r'^-{20,}.*$', text, flags=re.M) if 'message received' in blk and
          'SIP/2.0 200' in blk and 'm=video' in blk]
    mv = re.search(r'^m=video (\d+) RTP/AVP 96', ok[0], re.M) if ok else None
    check(mv, 'the PBX got no video m-line in the answer: %s' % text[-2000:])
    audio_veil = '%s:%d' % pbx_saw
    video_veil = '%s:%s' % (INT_VEIL4, mv.group(1))
    apeer = lab.peer('int', '%s:4700' % INT_HOST4, send_to=audio_veil, count=RTP_COUNT, interval=RTP_INTERVAL,
                     delay=0.5, linger=1.0, desc='PBX audio peer')
    vpeer = Proc(lab, lab.ns_argv('int', [sys.executable, lab.rtp_peer, '--bind', '%s:4702' % INT_HOST4,
                                          '--send-to', video_veil, '--count', str(RTP_COUNT), '--interval',
                                          str(RTP_INTERVAL), '--delay', '0.5', '--linger', '1.0', '--pt', '96',
                                          '--ssrc', '0x5EED0002', '--payload', '600']), 'PBX video peer')
    time.sleep(3)
    flows_mid = call_flows(lab)
    arep = apeer.json(30)
    vrep = vpeer.json(30)
    sipp_done(uac, 'PBX caller (audio+video)', uac_msg)
    r = b.json(60)
    keep(r)
    st = r.get('stats') or {}
    log('  PBX -> browser audio+video: browser getStats %s' % json.dumps(st))
    log('  PBX -> browser audio+video: PBX audio peer %s' % json.dumps(arep))
    log('  PBX -> browser audio+video: PBX video peer %s' % json.dumps(vrep))
    inv = [m for m in r.get('received', []) if m.startswith('INVITE ')]
    check(inv, 'the browser got no INVITE')
    sdp = inv[0].split('\r\n\r\n', 1)[-1]
    ports = re.findall(r'^m=(audio|video) (\d+) ', sdp, re.M)
    check(len(ports) == 2 and ports[0][1] == ports[1][1] and re.search(r'^a=group:BUNDLE 0 1\r?$', sdp, re.M),
          'Veil\'s offer to the browser is not bundled on one port: %s' % sdp)
    check(r.get('established') is True, 'PBX -> browser audio+video: not established: %s'
          % {k: r.get(k) for k in ('states', 'error')})
    check((st.get('packets_received') or 0) >= 100 and (st.get('video_packets_received') or 0) >= 100,
          'PBX -> browser audio+video: the browser received %s audio and %s video packets'
          % (st.get('packets_received'), st.get('video_packets_received')))
    check(st.get('transports') == 1 and st.get('audio_transport') == st.get('video_transport'),
          'PBX -> browser audio+video: %s transports' % st.get('transports'))
    check(arep['received'] >= 100 and list(arep['sources']) == [audio_veil] and arep['pts'].get('0', 0) >= 100,
          'PBX -> browser audio+video: the PBX audio port got %s' % arep)
    check(vrep['received'] >= 50 and list(vrep['sources']) == [video_veil] and vrep['pts'].get('96', 0) >= 50,
          'PBX -> browser audio+video: the PBX video port got %s' % vrep)
    members = [f for f in flows_mid.values() if 'member of flow' in f.get('bundle', '')]
    check(len(members) == 1, 'PBX -> browser audio+video: flows %s' % list(flows_mid.values()))
    drops = lab.drops()
    for reason in ('srtp_auth_fail', 'srtp_replay', 'srtp_error', 'bundle_unknown_pt'):
        check(drops.get(reason, 0) == drops0.get(reason, 0), 'PBX -> browser audio+video: %s went from %d to %d'
              % (reason, drops0.get(reason, 0), drops.get(reason, 0)))
    wait_for('PBX -> browser audio+video: flows outlived the call',
             lambda: not (set(flows_mid) & {row['id'] for row in lab.ctl('flows')}), 10)


def test_overlapping_payload_types_refused(lab):
    """A PBX offering audio and video with the same payload type (96 opus, 96 VP8) to a
    browser's registration: a BUNDLE cannot demultiplex that, Veil answers 488 and the browser
    is never offered the call; no flow is left behind."""
    reg, reg_msg = sipp(lab, 'uas_registrar.xml', 'webrtc-registrar-ovl', 5060)
    State.pbx_traces.append(reg_msg)
    wait_listening(lab, 5060)
    b = browser(lab, scenario='answer', timeout_ms=6000, video=True)
    sipp_done(reg, 'registrar', reg_msg)
    time.sleep(1.0)
    uac, uac_msg = sipp(lab, 'uac_av_overlap.xml', 'webrtc-pbx-caller-ovl', 5068, scen_dir=E2E_SCEN,
                        extra=['-s', 'alice'], remote='%s:5060' % INT_VEIL4)
    State.pbx_traces.append(uac_msg)
    sipp_done(uac, 'PBX caller expecting 488', uac_msg)
    r = b.json(60)
    keep(r)
    log('  overlapping PTs: the PBX got 488; the browser: registered %s, INVITE received %s'
        % (r.get('registered'), r.get('invite_received')))
    check(r.get('registered') is True and not r.get('invite_received'),
          'overlapping PTs: the browser was offered the call: %s' % {k: r.get(k) for k in ('registered', 'invite_received')})
    wait_for('overlapping PTs: flows left behind', lambda: not lab.ctl('flows'), 5)


if __name__ == '__main__':
    if os.geteuid() == 0 and not shutil.which('sipp'):
        print('1..0 # SKIP sipp is not installed (package sip-tester)')
        sys.exit(0)
    os.environ['VEIL_LAB_SIP'] = '1'
    os.environ['VEIL_LAB_WS'] = '1'
    sys.exit(run_tests('bundle', [test_setup, test_browser_calls_pbx_audio_video, test_pbx_calls_browser_audio_video,
                                  test_overlapping_payload_types_refused, test_no_leaks]))
