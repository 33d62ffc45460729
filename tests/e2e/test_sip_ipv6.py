#!/usr/bin/env python3
"""Veil end-to-end: SIP over IPv6 on the untrusted side, an IPv4 PBX on the trusted side.

The lab runs with VEIL_LAB_SIP=1 and VEIL_LAB_SIP_IPV6=1: Veil's untrusted SIP address is
2001:db8:1::1 (calls from the PBX go to [2001:db8:1::10]:5060), the PBX 198.51.100.10:5060.
sipp on both hosts, tools/rtp-peer.py for the media. Scenarios:
  * an IPv6 phone calls the PBX: the phone's SDP (c=IN IP6) reaches the PBX as IPv4 naming
    Veil's trusted address; the PBX's answer reaches the phone as IPv6 naming Veil's untrusted
    IPv6 address; RTP both ways, byte-exact, relayed IPv6 <-> IPv4 by the dataplane, each host
    seeing only Veil.
  * the PBX calls the IPv6 phone: the same the other way round.
  * neither wire carries the other side's addresses or MAC (veil-leak-audit), and the trusted
    wire carries no IPv6 address of the untrusted side in SIP or SDP.
"""
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import EXT_HOST6, EXT_VEIL6, INT_HOST4, INT_VEIL4, audit_wires, check, log, run_tests  # noqa: E402
import test_sip_media as tsm  # noqa: E402


class State:
    captures = {}
    traces = []


def test_setup(lab):
    """SIP listens on Veil's untrusted IPv6 address; both wires captured from here on."""
    r = lab.sh('sbc', ['ss', '-Hulnp'])
    check('[%s]:5060' % EXT_VEIL6 in r.stdout, 'no SIP socket on [%s]:5060: %s' % (EXT_VEIL6, r.stdout))
    for host in ('ext', 'int'):
        State.captures[host] = lab.capture(host, 'sipv6', persistent=True)


def test_ipv6_phone_calls_ipv4_pbx(lab):
    """IPv6 phone -> IPv4 PBX: SDP and media translated per leg, RTP both ways."""
    uac_msg, uas_msg = tsm.call_with_media(lab, 'ext', 'int', INT_HOST4, 5060, EXT_HOST6, EXT_VEIL6,
                                           'v6 phone->PBX', callee_sbc=INT_VEIL4)
    State.traces += [uac_msg, uas_msg]
    phone, pbx = tsm.sdp_body(uac_msg, r'SIP/2\.0 200 ') or '', tsm.sdp_body(uas_msg, r'INVITE ') or ''
    log('  the phone got:\n%s' % phone.strip())
    log('  the PBX got:\n%s' % pbx.strip())
    check(re.search(r'^c=IN IP6 %s\s*$' % re.escape(EXT_VEIL6), phone, re.M) and 'IP4' not in phone,
          'the phone\'s answer is not IPv6 naming Veil: %s' % phone)
    check(re.search(r'^c=IN IP4 %s\s*$' % re.escape(INT_VEIL4), pbx, re.M) and 'IP6' not in pbx,
          'the PBX\'s offer is not IPv4 naming Veil: %s' % pbx)


def test_ipv4_pbx_calls_ipv6_phone(lab):
    """IPv4 PBX -> IPv6 phone ([sip] untrusted_target is IPv6): the same, the other way."""
    uac_msg, uas_msg = tsm.call_with_media(lab, 'int', 'ext', EXT_HOST6, 5060, INT_HOST4, INT_VEIL4,
                                           'PBX->v6 phone', callee_sbc=EXT_VEIL6)
    State.traces += [uac_msg, uas_msg]
    phone = tsm.sdp_body(uas_msg, r'INVITE ') or ''
    check(re.search(r'^c=IN IP6 %s\s*$' % re.escape(EXT_VEIL6), phone, re.M), 'the phone\'s offer: %s' % phone)
    with open(uas_msg, errors='replace') as f:
        invite = f.read()
    check(re.search(r'^INVITE sip:\S+@\[%s\]:5060' % re.escape(EXT_HOST6), invite, re.M),
          'the INVITE to the phone does not target its IPv6 address: %s' % invite[:600])


def test_no_leaks(lab):
    """Both wires audited; no trace names the other side (IPv6 or IPv4)."""
    audit_wires(lab, State.captures)
    for path in State.traces:
        with open(path, errors='replace') as f:
            text = f.read()
        ext_side = 'v6 phone->PBX-uac' in path or 'PBX->v6 phone-uas' in path
        bad = (INT_HOST4, INT_VEIL4) if ext_side else (EXT_HOST6, EXT_VEIL6, '2001:db8:1:')
        for b in bad:
            check(b not in text, '%s names %s' % (os.path.basename(path), b))


if __name__ == '__main__':
    if os.geteuid() == 0 and not shutil.which('sipp'):
        print('1..0 # SKIP sipp is not installed (package sip-tester)')
        sys.exit(0)
    os.environ['VEIL_LAB_SIP'] = '1'
    os.environ['VEIL_LAB_SIP_IPV6'] = '1'
    sys.exit(run_tests('sipv6', [test_setup, test_ipv6_phone_calls_ipv4_pbx, test_ipv4_pbx_calls_ipv6_phone,
                                 test_no_leaks]))
