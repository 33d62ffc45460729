#!/usr/bin/env python3
"""Veil end-to-end: SDES-SRTP (RFC 4568) calls through veild, SRTP relayed by the DPDK
dataplane and checked on the wire by a real SRTP peer (tools/srtp-peer.py: RFC 3711 AES-CM with
HMAC-SHA1 and RFC 7714 AES-GCM, verified against RFC 3711's vectors by its --self-test).

The lab runs with VEIL_LAB_SIP=1. Scenarios:
  * an SRTP phone on the untrusted side calls the PBX (one call per suite:
    AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AEAD_AES_128_GCM): sipp offers RTP/SAVP
    with an unsupported F8 line and the test's fresh key; the PBX side receives plain RTP/AVP
    with no a=crypto; the phone's 200 OK carries one a=crypto with the chosen suite and tag and
    a key that is Veil's, not the phone's. srtp-peer on the phone's host protects with its own
    key and verifies and decrypts what Veil sends with the key Veil answered (no packet fails
    its tag); rtp-peer on the PBX's host receives byte-exact RTP. Flow counters count both
    directions, srtp_in/srtp_out are keyed, no srtp_auth_fail or srtp_replay drop.
  * the PBX offers SDES toward an SRTP phone: both legs SRTP, each keyed by Veil apart (the
    phone gets a Veil key that is not the PBX's, the PBX's answer a Veil key that is not the
    phone's); SRTP verified by srtp-peers on both hosts.
  * no key appears in `veilctl flows`, `veilctl calls`/`call`, veild's log, or on the other leg.
"""
import base64
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import (EXT_HOST4, EXT_VEIL4, INT_HOST4, INT_VEIL4, Proc, check, log,  # noqa: E402
                 run_tests, wait_for)
from test_sip_media import ep, flows_by_local, sdp_body, sdp_endpoint, sipp, sipp_finish, wait_listening  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
SRTP_PEER = os.path.join(ROOT, 'tools', 'srtp-peer.py')
COUNT = 150
INTERVAL = 0.01
TALK_MS = 6000
MASTER_LEN = {'AES_CM_128_HMAC_SHA1_80': 30, 'AES_CM_128_HMAC_SHA1_32': 30, 'AEAD_AES_128_GCM': 28}


class State:
    calls = 0
    keys_seen = []   # every key any leg saw (for the log/veilctl audit)


def crypto_lines(sdp):
    return re.findall(r'^a=crypto:(\d+) (\S+) inline:(\S+)\s*$', sdp, re.M)


def srtp_peer(lab, host, bind, send_to, suite, key_out, key_in, ssrc, mki_out=''):
    argv = [sys.executable, SRTP_PEER, '--bind', bind, '--send-to', send_to, '--suite', suite, '--key-out', key_out,
            '--key-in', key_in, '--count', str(COUNT), '--interval', str(INTERVAL), '--delay', '0.5',
            '--ssrc', hex(ssrc), '--mki-out', mki_out]
    return Proc(lab, lab.ns_argv(host, argv), 'srtp-peer on %s (%s)' % (host, bind))


def srtp_ok(report, who, source):
    check(report['auth_fail'] == 0, '%s: %d packet(s) failed SRTP authentication: %s' % (who, report['auth_fail'], report))
    check(report['bad'] == 0, '%s: %d packet(s) decrypted to the wrong payload: %s' % (who, report['bad'], report))
    check(report['received'] >= COUNT, '%s: received %d of %d packets: %s' % (who, report['received'], COUNT, report))
    check(list(report['sources']) == [source], '%s: saw sources %s, expected only %s' % (who, report['sources'], source))


def fresh_key(suite):
    return base64.b64encode(os.urandom(MASTER_LEN[suite])).decode()


def sdes_call(lab, suite, pbx_offers=False, mki=False):
    State.calls += 1
    n = State.calls
    label = '%s %s' % ('PBX->phone' if pbx_offers else 'phone->PBX', suite)
    caller, callee = ('int', 'ext') if pbx_offers else ('ext', 'int')
    caller_ip, callee_ip = (INT_HOST4, EXT_HOST4) if pbx_offers else (EXT_HOST4, INT_HOST4)
    caller_sbc, callee_sbc = (INT_VEIL4, EXT_VEIL4) if pbx_offers else (EXT_VEIL4, INT_VEIL4)
    caller_rtp, callee_rtp = 4000 + 10 * n, 4002 + 10 * n
    caller_key, callee_key = fresh_key(suite), fresh_key(suite)
    State.keys_seen += [caller_key, callee_key]
    drops0 = lab.drops()
    if pbx_offers:
        uas, uas_msg = sipp(lab, callee, 'uas_sdes.xml', callee_ip, 5060, callee_rtp, 'sdes%d-uas' % n,
                            extra=['-set', 'suite', suite, '-set', 'key', callee_key])
    else:
        uas, uas_msg = sipp(lab, callee, 'uas_media.xml', callee_ip, 5060, callee_rtp, 'sdes%d-uas' % n)
    wait_listening(lab, callee, 5060)
    # With `mki`: the caller's key is offered with a lifetime and a 4-byte MKI (RFC 4568
    # "|2^31|1:4") and its packets carry that MKI.
    uac, uac_msg = sipp(lab, caller, 'uac_sdes.xml', caller_ip, 5070 + n, caller_rtp, 'sdes%d-uac' % n,
                        remote=ep(caller_sbc, 5060), extra=['-d', str(TALK_MS), '-set', 'suite', suite,
                                                            '-set', 'key', caller_key + ('|2^31|1:4' if mki else '')])
    answer = wait_for('%s: no 200 OK with SDP in the caller\'s trace' % label,
                      lambda: sdp_body(uac_msg, r'SIP/2\.0 200 '), 15)
    offer = wait_for('%s: no INVITE with SDP in the callee\'s trace' % label, lambda: sdp_body(uas_msg, r'INVITE '), 5)
    log('  %s: the caller got:\n%s' % (label, re.sub(r'inline:\S+', 'inline:<key>', answer).strip()))
    log('  %s: the callee got:\n%s' % (label, re.sub(r'inline:\S+', 'inline:<key>', offer).strip()))

    # The caller's answer: RTP/SAVP, exactly one a=crypto, the chosen suite with the offered tag
    # (1: the F8 line, tag 7, is not supported), a key of the suite's length that is Veil's own.
    check(re.search(r'^m=audio \d+ RTP/SAVP 0\s*$', answer, re.M), '%s: answer is not RTP/SAVP:\n%s' % (label, answer))
    lines = crypto_lines(answer)
    check(len(lines) == 1 and lines[0][0] == '1' and lines[0][1] == suite,
          '%s: the answer\'s a=crypto lines are %s' % (label, [(t, s) for t, s, _ in lines]))
    veil_key_caller = lines[0][2]
    check(len(base64.b64decode(veil_key_caller)) == MASTER_LEN[suite], '%s: Veil\'s key has the wrong length' % label)
    check(veil_key_caller not in (caller_key, callee_key), '%s: Veil answered with a peer\'s key' % label)
    if pbx_offers:
        # SRTP on both legs: the phone is offered SDES with another Veil key.
        check(re.search(r'^m=audio \d+ RTP/SAVP 0\s*$', offer, re.M), '%s: offer to the phone is not SAVP:\n%s'
              % (label, offer))
        lines = crypto_lines(offer)
        check(len(lines) == 1 and lines[0][1] == suite, '%s: the phone\'s offer has a=crypto %s'
              % (label, [(t, s) for t, s, _ in lines]))
        veil_key_callee = lines[0][2]
        check(veil_key_callee not in (caller_key, callee_key, veil_key_caller),
              '%s: the phone\'s leg is not keyed apart' % label)
    else:
        # The PBX side gets plain RTP/AVP: no a=crypto, no key.
        check(re.search(r'^m=audio \d+ RTP/AVP 0\s*$', offer, re.M), '%s: the PBX was not offered RTP/AVP:\n%s'
              % (label, offer))
        check('a=crypto' not in offer and 'inline:' not in offer and caller_key not in offer,
              '%s: the PBX saw SDES: %s' % (label, offer))
        veil_key_callee = None
    State.keys_seen += [k for k in (veil_key_caller, veil_key_callee) if k]

    caller_veil = ep(*sdp_endpoint(uac_msg, r'SIP/2\.0 200 '))
    callee_veil = ep(*sdp_endpoint(uas_msg, r'INVITE '))
    caller_host, callee_host = ep(caller_ip, caller_rtp), ep(callee_ip, callee_rtp)
    rows = flows_by_local(lab)
    for local in (caller_veil, callee_veil):
        check(local in rows, '%s: no flow on %s' % (label, local))
    flows = {local: lab.flow(rows[local]['id']) for local in (caller_veil, callee_veil)}  # detail: srtp_in/out
    log('  %s: flow %s srtp_in %s srtp_out %s; flow %s srtp_in %s srtp_out %s'
        % (label, caller_veil, flows[caller_veil]['srtp_in'], flows[caller_veil]['srtp_out'], callee_veil,
           flows[callee_veil]['srtp_in'], flows[callee_veil]['srtp_out']))
    # From the caller: unprotected with the caller's key; toward the caller: Veil's key.
    check(flows[caller_veil]['srtp_in'] == '%s (keyed)' % suite, '%s: %s' % (label, flows[caller_veil]))
    check(flows[callee_veil]['srtp_out'] == '%s (keyed)' % suite, '%s: %s' % (label, flows[callee_veil]))
    if pbx_offers:
        check(flows[callee_veil]['srtp_in'] == '%s (keyed)' % suite and flows[caller_veil]['srtp_out'] ==
              '%s (keyed)' % suite, '%s: the phone leg is not SRTP: %s / %s' % (label, flows[callee_veil],
                                                                               flows[caller_veil]))
        pe = srtp_peer(lab, callee, callee_host, callee_veil, suite, callee_key, veil_key_callee, 0x2B2B0000 + n)
    else:
        check(flows[callee_veil]['srtp_in'] == 'none' and flows[caller_veil]['srtp_out'] == 'none',
              '%s: the PBX leg is not plain: %s / %s' % (label, flows[callee_veil], flows[caller_veil]))
        pe = lab.peer(callee, callee_host, send_to=callee_veil, count=COUNT, interval=INTERVAL, ssrc=0x2B2B0000 + n)
    pc = srtp_peer(lab, caller, caller_host, caller_veil, suite, caller_key, veil_key_caller, 0x1A1A0000 + n,
                   mki_out='00000001' if mki else '')
    rc_, re_ = pc.json(40), pe.json(40)
    end = flows_by_local(lab)
    log('  %s: caller host %s' % (label, rc_))
    log('  %s: callee host %s' % (label, re_))
    srtp_ok(rc_, '%s, caller host' % label, caller_veil)
    if pbx_offers:
        srtp_ok(re_, '%s, callee host' % label, callee_veil)
    else:
        check(re_['bad'] == 0 and re_['received'] >= COUNT and list(re_['sources']) == [callee_veil],
              '%s: the PBX host did not get %d byte-exact plain RTP packets from %s: %s'
              % (label, COUNT, callee_veil, re_))
    for local in (caller_veil, callee_veil):
        check(end[local]['packets'] == COUNT, '%s: flow %s relayed %d packets, expected %d'
              % (label, local, end[local]['packets'], COUNT))
    drops = lab.drops()
    for reason in ('srtp_auth_fail', 'srtp_replay', 'srtp_no_key', 'srtp_error'):
        check(drops.get(reason, 0) == drops0.get(reason, 0), '%s: %s went from %d to %d'
              % (label, reason, drops0.get(reason, 0), drops.get(reason, 0)))
    # No key in veilctl's view of the flows or the call.
    calls = lab.ctl('calls')
    dump = repr(lab.ctl('flows')) + repr(calls) + ''.join(repr(lab.ctl('call', 'id=%d' % c['id'])) for c in calls)
    for k in State.keys_seen:
        check(k not in dump and base64.b64decode(k).hex() not in dump.lower(), '%s: a key shows in veilctl' % label)
    sipp_finish(uac, label + ' caller', uac_msg)
    sipp_finish(uas, label + ' callee', uas_msg)
    wait_for('%s: call still up after the BYE' % label, lambda: lab.ctl('stats')['calls'] == 0, 5)


def test_phone_to_pbx_aes_cm_80(lab):
    """An SRTP phone calls the PBX, AES_CM_128_HMAC_SHA1_80; the PBX gets plain RTP/AVP."""
    sdes_call(lab, 'AES_CM_128_HMAC_SHA1_80')


def test_phone_to_pbx_aes_cm_32(lab):
    """The same with AES_CM_128_HMAC_SHA1_32 (4-byte SRTP tag)."""
    sdes_call(lab, 'AES_CM_128_HMAC_SHA1_32')


def test_phone_to_pbx_aes_gcm(lab):
    """The same with AEAD_AES_128_GCM (RFC 7714)."""
    sdes_call(lab, 'AEAD_AES_128_GCM')


def test_phone_with_mki(lab):
    """An SRTP phone offering its key with a lifetime and an MKI (inline:KEY|2^31|1:4): Veil
    takes it, unprotects the phone's packets carrying the MKI; Veil's own key has none."""
    sdes_call(lab, 'AES_CM_128_HMAC_SHA1_80', mki=True)


def test_pbx_offers_sdes(lab):
    """The PBX offers SDES to an SRTP phone: SRTP on both legs, keyed apart by Veil."""
    sdes_call(lab, 'AES_CM_128_HMAC_SHA1_80', pbx_offers=True)


def test_no_key_in_logs(lab):
    """No key of any call, in base64 or hex, appears in veild's log."""
    path = '/run/veil-lab-%s/veild.log' % lab.name
    check(os.path.exists(path), 'no veild log at %s' % path)
    with open(path, errors='replace') as f:
        text = f.read()
    check(State.keys_seen, 'no keys recorded: the calls did not run')
    for k in State.keys_seen:
        check(k not in text and base64.b64decode(k).hex() not in text.lower(), 'a key appears in veild\'s log')
    log('  %d keys, none in %d bytes of veild log' % (len(State.keys_seen), len(text)))


if __name__ == '__main__':
    if os.geteuid() == 0 and not shutil.which('sipp'):
        print('1..0 # SKIP sipp is not installed (package sip-tester)')
        sys.exit(0)
    os.environ['VEIL_LAB_SIP'] = '1'
    sys.exit(run_tests('sdes', [test_phone_to_pbx_aes_cm_80, test_phone_to_pbx_aes_cm_32, test_phone_to_pbx_aes_gcm,
                                test_phone_with_mki, test_pbx_offers_sdes, test_no_key_in_logs]))
