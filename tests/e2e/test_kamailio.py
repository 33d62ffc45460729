#!/usr/bin/env python3
"""Veil end-to-end with a real PBX: kamailio 5.6 (Debian's package) as the trusted side's
registrar and proxy (tests/e2e/kamailio/pbx.cfg: digest authentication, usrloc in memory,
calls routed to registered contacts, record-routed).

The lab runs with VEIL_LAB_SIP=1 and register_domain voice.example.com (kamailio's realm is
the To domain of Veil's REGISTER: without register_domain that would be the PBX's address, and
Veil withholds a challenge naming it, t_challenge_names_pbx); kamailio listens on 198.51.100.10:5060 in the trusted
namespace (the lab's PBX address). Scenarios:
  * a phone (sipp) registers through Veil: kamailio's 401 reaches it, its digest (computed
    over kamailio's realm, which is the To domain Veil sends) is accepted by kamailio for
    Veil's Contact; `veilctl registrations` shows the binding.
  * another phone calls the registered one's user: Veil -> kamailio (INVITE to the PBX) ->
    lookup -> Veil's Contact -> Veil -> the registered phone over the flow it registered on.
    Both phones are on the untrusted side, so the trusted leg of each call is anchored by Veil
    and names Veil's own trusted address as the other's media peer: the dataplane relays
    RTP from one call's trusted port to the other's without the packet leaving the box
    (hairpin). RTP both ways, byte-exact, each phone sees only Veil's untrusted endpoint.
  * both wires audited (veil-leak-audit); kamailio saw only Veil's trusted address.
"""
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import (EXT_HOST4, EXT_VEIL4, INT_HOST4, INT_VEIL4, Proc, audit_wires, check, log, rtp_ok,  # noqa: E402
                 run_tests, wait_for)
from test_sip_media import ep, flows_by_local, sdp_endpoint, sipp, sipp_finish, wait_listening  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PBX_CFG = os.path.join(HERE, 'kamailio', 'pbx.cfg')
DOMAIN = 'voice.example.com'
BOB_PORT = 5199
COUNT = 150
INTERVAL = 0.02


class State:
    captures = {}
    pbx = None
    traces = []


def test_setup(lab):
    """kamailio starts in the trusted namespace and answers OPTIONS; both wires captured."""
    check(shutil.which('kamailio'), 'kamailio is not installed (tools/install-deps.sh installs it)')
    run = os.path.join(lab.tmp, 'kamailio')
    os.makedirs(run, exist_ok=True)
    State.pbx = Proc(lab, lab.ns_argv('int', ['kamailio', '-f', PBX_CFG, '-DD', '-E', '-Y', run, '-P',
                                              os.path.join(run, 'kamailio.pid')]), 'kamailio (PBX)',
                     kill_pattern=run, persistent=True)  # up for all tests; its workers die with it
    wait_listening(lab, 'int', 5060)
    for host in ('ext', 'int'):
        State.captures[host] = lab.capture(host, 'kamailio', persistent=True)


def test_register_via_veil(lab):
    """bob registers through Veil at kamailio: 401 relayed, digest accepted, 200; veilctl
    registrations shows the binding on the flow bob registered from."""
    reg, reg_msg = sipp(lab, 'ext', 'uac_register_auth.xml', EXT_HOST4, BOB_PORT, 4990, 'kam-register',
                        remote=ep(EXT_VEIL4, 5060), service=DOMAIN,
                        # A phone configured with the PBX's domain (Veil as its outbound proxy):
                        # its digest uri is that domain, not an address.
                        extra=['-set', 'user', 'bob', '-au', 'bob', '-ap', 's3cret', '-auth_uri', DOMAIN])
    State.traces.append(reg_msg)
    sipp_finish(reg, 'bob registering', reg_msg)
    with open(reg_msg, errors='replace') as f:
        got = re.findall(r'^SIP/2\.0 (\d{3})', f.read(), re.M)
    log('  register: bob received %s' % got)
    check(got == ['401', '200'], 'register: bob received %s (kamailio challenges, then accepts)' % got)
    regs = wait_for('no registration in veilctl', lambda: lab.ctl('registrations'), 5)
    log('  veilctl registrations: %s' % regs)
    check(len(regs) == 1 and regs[0]['source'] == ep(EXT_HOST4, BOB_PORT) and regs[0]['state'] == 'registered',
          'register: veilctl registrations %s' % regs)


def test_call_between_untrusted_phones(lab):
    """alice calls bob: Veil -> kamailio -> Veil -> bob. Media hairpins through Veil's trusted
    side; RTP both ways, byte-exact, each phone sees only Veil."""
    drops0, events0 = lab.drops(), lab.events()
    bob_rtp, alice_rtp = 4002, 4012
    uas, uas_msg = sipp(lab, 'ext', 'uas_media.xml', EXT_HOST4, BOB_PORT, bob_rtp, 'kam-bob')
    wait_listening(lab, 'ext', BOB_PORT)
    uac, uac_msg = sipp(lab, 'ext', 'uac_media.xml', EXT_HOST4, 5071, alice_rtp, 'kam-alice',
                        remote=ep(EXT_VEIL4, 5060), service='bob', extra=['-d', '6000'])
    State.traces += [uas_msg, uac_msg]
    alice_saw = wait_for('alice got no 200 with SDP', lambda: sdp_endpoint(uac_msg, r'SIP/2\.0 200 '), 15)
    bob_saw = wait_for('bob got no INVITE with SDP', lambda: sdp_endpoint(uas_msg, r'INVITE '), 5)
    log('  alice was told %s:%d, bob %s:%d' % (alice_saw + bob_saw))
    check(alice_saw[0] == EXT_VEIL4 and bob_saw[0] == EXT_VEIL4, 'SDP names %s / %s' % (alice_saw[0], bob_saw[0]))
    alice_veil, bob_veil = ep(*alice_saw), ep(*bob_saw)
    calls = lab.ctl('calls')
    check(len(calls) == 2, 'veilctl calls: two calls (alice->PBX, PBX->bob) expected: %s' % calls)
    pa = lab.peer('ext', ep(EXT_HOST4, alice_rtp), send_to=alice_veil, count=COUNT, interval=INTERVAL)
    pb = lab.peer('ext', ep(EXT_HOST4, bob_rtp), send_to=bob_veil, count=COUNT, interval=INTERVAL, ssrc=0x5EED0002)
    ra, rb = pa.json(30), pb.json(30)
    log('  alice\'s RTP host: %s' % ra)
    log('  bob\'s RTP host: %s' % rb)
    flows = flows_by_local(lab)
    trusted = {k: v for k, v in flows.items() if k.startswith(INT_VEIL4 + ':')}
    log('  trusted-side flows: %s' % {k: (v['egress_dst'], v['packets']) for k, v in trusted.items()})
    drops = lab.drops()
    log('  drops during the call: %s' % {k: v - drops0.get(k, 0) for k, v in drops.items() if v != drops0.get(k, 0)})
    rtp_ok(ra, 'alice', COUNT, alice_veil)
    rtp_ok(rb, 'bob', COUNT, bob_veil)
    # Every packet crossed the trusted side inside the dataplane: hairpinned, never resolved
    # (Veil's own address has no neighbour entry) and never on the trusted wire.
    events = lab.events()
    hp = events.get('hairpinned', 0) - events0.get('hairpinned', 0)
    log('  hairpinned: %d packets' % hp)
    check(hp >= 2 * COUNT, 'hairpinned %d packets, expected at least %d' % (hp, 2 * COUNT))
    for reason in ('no_neighbour', 'hairpin_loop', 'media_no_flow', 'src_mismatch'):
        check(drops.get(reason, 0) == drops0.get(reason, 0), '%s went from %d to %d'
              % (reason, drops0.get(reason, 0), drops.get(reason, 0)))
    for host_flow in trusted.values():
        check(host_flow['egress_dst'].startswith(EXT_HOST4 + ':'), 'trusted flow %s' % host_flow)
    sipp_finish(uac, 'alice', uac_msg)
    sipp_finish(uas, 'bob', uas_msg)
    wait_for('calls still up after the BYE', lambda: lab.ctl('stats')['calls'] == 0, 5)


def test_no_leaks(lab):
    """kamailio saw only Veil's trusted address; neither wire carries the other side's
    addresses or MAC (veil-leak-audit); the hairpinned RTP never reached the trusted wire."""
    time.sleep(0.5)
    frames = audit_wires(lab, State.captures)
    rtp = [f for f in frames['int'] if len(f) > 42 + 12 and f[23] == 17 and f[42] >> 6 == 2]
    check(not rtp, '%d RTP frames on the trusted wire (the hairpin left the box)' % len(rtp))
    for path in State.traces:
        with open(path, errors='replace') as f:
            text = f.read()
        check(INT_HOST4 not in text and INT_VEIL4 not in text, 'a phone saw the trusted side (%s)' % path)


if __name__ == '__main__':
    if os.geteuid() == 0 and not (shutil.which('sipp') and shutil.which('kamailio')):
        print('1..0 # SKIP sipp or kamailio is not installed (packages sip-tester, kamailio)')
        sys.exit(0)
    os.environ['VEIL_LAB_SIP'] = '1'
    os.environ['VEIL_LAB_REGISTER_DOMAIN'] = DOMAIN  # kamailio's realm is the To domain
    sys.exit(run_tests('kamailio', [test_setup, test_register_via_veil, test_call_between_untrusted_phones,
                                    test_no_leaks]))
