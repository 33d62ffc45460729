#!/usr/bin/env python3
"""Veil end-to-end: ICE-lite through veild's DPDK dataplane. A browser-like client in the
untrusted namespace (STUN built here with hmac/zlib, independently of Veil's codec) sends
media before any check (dropped), a check with the wrong password (answered 401, nothing
selected), then a valid check with USE-CANDIDATE (answered with a success response whose
MESSAGE-INTEGRITY, FINGERPRINT and XOR-MAPPED-ADDRESS it verifies); after that RTP flows both
ways between it and the trusted host, and the counters say so."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import check, log, rtp_ok, run_tests, wait_for  # noqa: E402

PWD = 'e2eIcePasswordOf22chars'
N = 50

CLIENT = r'''
import hashlib, hmac, json, os, socket, struct, sys, time, zlib
PWD, USER = sys.argv[1], sys.argv[2]
veil = ('203.0.113.1', 20600)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('203.0.113.10', 4600))
s.settimeout(2.0)

def attr(t, v):
    return struct.pack('!HH', t, len(v)) + v + b'\0' * ((4 - len(v) % 4) % 4)

def check_msg(txid, pwd, use_candidate):
    body = attr(0x0006, USER.encode()) + attr(0x0024, struct.pack('!I', 0x6e7f1eff))
    body += attr(0x802A, struct.pack('!Q', 0x0102030405060708))
    if use_candidate:
        body += attr(0x0025, b'')
    hdr = struct.pack('!HHI', 0x0001, len(body) + 24, 0x2112A442) + txid
    body += attr(0x0008, hmac.new(pwd.encode(), hdr + body, hashlib.sha1).digest())
    msg = struct.pack('!HHI', 0x0001, len(body) + 8, 0x2112A442) + txid + body
    return msg + attr(0x8028, struct.pack('!I', (zlib.crc32(msg) ^ 0x5354554e) & 0xffffffff))

def parse(msg):
    mtype, mlen, cookie = struct.unpack('!HHI', msg[:8])
    out = {'type': mtype, 'len_ok': mlen + 20 == len(msg), 'cookie_ok': cookie == 0x2112A442,
           'txid': msg[8:20].hex()}
    off = 20
    while off + 4 <= len(msg):
        t, l = struct.unpack('!HH', msg[off:off + 4])
        v = msg[off + 4:off + 4 + l]
        if t == 0x0009:
            out['error'] = (v[2] & 7) * 100 + v[3]
        elif t == 0x0020:
            port = struct.unpack('!H', v[2:4])[0] ^ 0x2112
            ip = bytes(a ^ b for a, b in zip(v[4:8], struct.pack('!I', 0x2112A442)))
            out['mapped'] = '%s:%d' % (socket.inet_ntoa(ip), port)
        elif t == 0x0008:
            hdr = msg[:2] + struct.pack('!H', off + 24 - 20) + msg[4:20]
            out['mi_ok'] = hmac.compare_digest(hmac.new(PWD.encode(), hdr + msg[20:off], hashlib.sha1).digest(), v)
        elif t == 0x8028:
            out['fp_ok'] = struct.unpack('!I', v)[0] == (zlib.crc32(msg[:off]) ^ 0x5354554e) & 0xffffffff
        off += 4 + l + (4 - l % 4) % 4
    return out

def rtp(seq):
    # rtp-peer's payload pattern (tools/rtp-peer.py), so the trusted host checks every byte.
    return struct.pack('!BBHII', 0x80, 0, seq, seq * 160, 0x1CE1CE00) + bytes((seq - 1000 + i) & 0xFF for i in range(160))

report = {}
for i in range(5):              # before any check: must be dropped
    s.sendto(rtp(900 + i), veil)
time.sleep(0.2)
s.sendto(check_msg(os.urandom(12), 'not-the-password-of-veil', True), veil)
try:
    report['unauth'] = parse(s.recvfrom(2048)[0])
except socket.timeout:
    report['unauth'] = None
txid = os.urandom(12)
s.sendto(check_msg(txid, PWD, True), veil)
try:
    r = parse(s.recvfrom(2048)[0])
    r['txid_ok'] = r.pop('txid') == txid.hex()
    report['success'] = r
except socket.timeout:
    report['success'] = None
received, sources = 0, {}
s.settimeout(0.005)
start = time.monotonic()
sent = 0
while time.monotonic() - start < 4.0:
    if sent < int(sys.argv[3]) and time.monotonic() - start >= sent * 0.01:
        s.sendto(rtp(1000 + sent), veil)
        sent += 1
    try:
        data, src = s.recvfrom(2048)
    except socket.timeout:
        continue
    if data and data[0] >> 6 == 2:
        received += 1
        k = '%s:%d' % src
        sources[k] = sources.get(k, 0) + 1
report.update(sent=sent, received=received, sources=sources)
print(json.dumps(report))
'''


def test_ice_lite_check_then_media(lab):
    """ICE-lite: unvalidated media dropped, a bad check answered 401 and not selected, a
    valid check answered (MI, FINGERPRINT, XOR-MAPPED-ADDRESS verified by the client), then
    RTP both ways from and to the checked address only."""
    lab.flow_add(id=60, port='external', local='203.0.113.1:20600', egress_port='internal',
                 egress_local='198.51.100.1:30600', egress_remote='198.51.100.10:5600', peer=61,
                 ice_ufrag='veil', ice_pwd=PWD, ice_remote_ufrag='brow', dtls='yes')
    lab.flow_add(id=61, port='internal', local='198.51.100.1:30600', remote='198.51.100.10:5600',
                 egress_port='external', egress_local='203.0.113.1:20600', peer=60,
                 ice_consent_from_peer='yes')
    drops0, events0 = lab.drops(), lab.events()
    pbx = lab.peer('int', '198.51.100.10:5600', send_to='198.51.100.1:30600', count=N, interval=0.01,
                   delay=2.0, ssrc=0x0B0B0B0B, linger=1.5)
    client = lab.python('ext', CLIENT, PWD, 'veil:brow', N, desc='ICE client in ext')
    rep = client.json(30)
    rp = pbx.json(30)
    log('  client: %s' % rep)
    log('  trusted host: %s' % rp)
    u = rep['unauth']
    check(u is not None and u['type'] == 0x0111 and u.get('error') == 401 and 'mi_ok' not in u and u.get('fp_ok'),
          'the check with a wrong password was not answered with an unsigned 401 with FINGERPRINT: %s' % u)
    ok = rep['success']
    check(ok is not None and ok['type'] == 0x0101 and ok['len_ok'] and ok['cookie_ok'] and ok['txid_ok'],
          'no Binding success response to the valid check: %s' % ok)
    check(ok.get('mi_ok') is True and ok.get('fp_ok') is True,
          'success response MESSAGE-INTEGRITY/FINGERPRINT do not verify: %s' % ok)
    check(ok.get('mapped') == '203.0.113.10:4600', 'XOR-MAPPED-ADDRESS is %s, expected the client 203.0.113.10:4600'
          % ok.get('mapped'))
    rtp_ok(rp, 'trusted host', N, '198.51.100.1:30600')
    check(rep['received'] >= N and list(rep['sources']) == ['203.0.113.1:20600'],
          'the client received %d RTP packets from %s, expected %d from Veil only'
          % (rep['received'], rep['sources'], N))
    drops, events = lab.drops(), lab.events()
    check(drops['ice_unvalidated'] - drops0['ice_unvalidated'] == 5,
          'ice_unvalidated rose by %d, expected 5' % (drops['ice_unvalidated'] - drops0['ice_unvalidated']))
    check(drops['stun_auth_fail'] - drops0['stun_auth_fail'] == 1,
          'stun_auth_fail rose by %d, expected 1' % (drops['stun_auth_fail'] - drops0['stun_auth_fail']))
    check(events['stun_answered'] - events0['stun_answered'] == 1,
          'stun_answered rose by %d, expected 1' % (events['stun_answered'] - events0['stun_answered']))
    f = lab.flow(60)
    check(f['ice_checks'] == 1 and f['learned_remote'] == '203.0.113.10:4600' and f['packets'] == N,
          'flow 60 after the call: %s' % f)
    check(PWD not in str(f), 'the ICE password shows in veilctl flow: %s' % f)
    f = lab.flow(61)
    check(f['packets'] == N and f['egress_dst'] == '203.0.113.10:4600', 'flow 61 after the call: %s' % f)


def fingerprint_of(lab, pem_text):
    """SHA-256 fingerprint (AB:CD:...) of a PEM certificate, by openssl x509."""
    path = os.path.join(lab.tmp, 'fp.pem')
    with open(path, 'w') as f:
        f.write(pem_text)
    r = lab.sh('ext', ['openssl', 'x509', '-in', path, '-noout', '-fingerprint', '-sha256'])
    check(r.returncode == 0, 'openssl x509 failed: %s' % r.stderr)
    return r.stdout.strip().split('=', 1)[1].upper()


def s_client(lab, port, bind):
    """OpenSSL's own DTLS 1.2 client in the untrusted namespace: our certificate, use_srtp
    AES-CM only, keying material exported; stdin closes after 2 s (close_notify)."""
    argv = ['sh', '-c', 'sleep 2 | exec openssl s_client -dtls1_2 -connect 203.0.113.1:%d -bind %s '
            '-use_srtp SRTP_AES128_CM_SHA1_80 -cert %s -key %s -keymatexport EXTRACTOR-dtls_srtp '
            '-keymatexportlen 60 -showcerts -mtu 1200 2>&1'
            % (port, bind, os.path.join(lab.tmp, 'peer.pem'), os.path.join(lab.tmp, 'peer.key'))]
    return lab.sh('ext', argv, timeout=20).stdout


def test_dtls_srtp_with_openssl_client(lab):
    """DTLS-SRTP through the dataplane with an independent client (openssl s_client): Veil
    answers as DTLS server from its media address, presents the certificate whose fingerprint
    `veilctl dtls` shows, negotiates use_srtp, and a peer whose certificate does not match
    the signaled fingerprint is refused."""
    r = lab.sh('ext', ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                       '-nodes', '-keyout', os.path.join(lab.tmp, 'peer.key'), '-out',
                       os.path.join(lab.tmp, 'peer.pem'), '-days', '2', '-subj', '/CN=e2e-peer'])
    check(r.returncode == 0, 'openssl req failed: %s' % r.stderr)
    with open(os.path.join(lab.tmp, 'peer.pem')) as f:
        peer_fp = fingerprint_of(lab, f.read())
    for fid, port in ((70, 20700), (72, 20702)):  # a SIP phone's DTLS-SRTP: no ICE
        lab.flow_add(id=fid, port='external', local='203.0.113.1:%d' % port, egress_port='internal',
                     egress_local='198.51.100.1:%d' % (port + 10000), egress_remote='198.51.100.10:5700',
                     dtls='yes')
    add = lab.ctl('dtls-add', 'flow=70', 'setup=active', 'hash=sha-256', 'fingerprint=' + peer_fp)
    check(add['role'] == 'server' and add['setup'] == 'passive', 'dtls-add answered %s' % add)
    veil_fp = add['fingerprint']
    check(veil_fp.startswith('sha-256 '), 'Veil fingerprint %r' % veil_fp)
    events0 = lab.events()

    out = s_client(lab, 20700, '203.0.113.10:4700')
    check('SRTP Extension negotiated, profile=SRTP_AES128_CM_SHA1_80' in out,
          's_client did not negotiate use_srtp with Veil:\n%s' % out[-3000:])
    km = re.search(r'Keying material: ([0-9A-F]{120})', out)
    check(km is not None, 's_client exported no 60-byte keying material:\n%s' % out[-3000:])
    certs = re.findall(r'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----', out, re.S)
    check(certs, 's_client showed no server certificate:\n%s' % out[-3000:])
    check(fingerprint_of(lab, certs[0] + '\n') == veil_fp.split(' ', 1)[1],
          'the certificate Veil presented does not match its a=fingerprint %s' % veil_fp)

    def session(fid):
        for row in lab.ctl('dtls')['sessions']:
            if row['flow'] == fid:
                return row
        return None
    st = wait_for('DTLS session on flow 70 did not complete',
                  lambda: (session(70) or {}).get('profile') == 'SRTP_AES128_CM_SHA1_80' and session(70), 3)
    log('  flow 70 DTLS: %s' % st)
    check(st['state'] in ('connected', 'closed') and st['role'] == 'server' and st['error'] == '-',
          'flow 70 DTLS session: %s' % st)
    events = lab.events()
    check(events['dtls_to_control'] > events0['dtls_to_control'], 'no DTLS record reached the control plane')

    # A certificate that does not match the signaled fingerprint: the handshake fails.
    wrong = ':'.join(['00'] * 32)
    lab.ctl('dtls-add', 'flow=72', 'setup=active', 'fingerprint=' + wrong)
    out = s_client(lab, 20702, '203.0.113.10:4702')
    check('SRTP Extension negotiated' not in out or 'alert' in out.lower(),
          's_client completed a handshake Veil should have refused:\n%s' % out[-2000:])
    st = wait_for('DTLS session on flow 72 did not fail',
                  lambda: (session(72) or {}).get('state') == 'failed' and session(72), 3)
    check('fingerprint' in st['error'], 'flow 72 failed for another reason: %s' % st)
    check(lab.ctl('dtls')['records_for_unknown_flows'] == 0, 'DTLS records for flows without a session')


if __name__ == '__main__':
    sys.exit(run_tests('ice', [test_ice_lite_check_then_media, test_dtls_srtp_with_openssl_client]))
