#!/usr/bin/env python3
"""A minimal SIP user agent over TLS (Python's ssl module, i.e. OpenSSL) for
tests/sip/test_b2bua.py: sipp as packaged by Debian has no TLS transport.

  sip_tls_peer.py uac LOCAL_IP TARGET_IP TARGET_PORT CAFILE SERVER_NAME MEDIA_PORT
      Connects to TARGET over TLS verifying its certificate against CAFILE for SERVER_NAME,
      sends OPTIONS (expects 200), then INVITE with SDP, reads responses up to the final one,
      ACKs a 2xx, waits 0.3 s, sends BYE (expects 200).
  sip_tls_peer.py options LOCAL_IP TARGET_IP TARGET_PORT CAFILE SERVER_NAME [CERTFILE KEYFILE]
      OPTIONS over TLS, with a client certificate when given; exit 0 on a 200.
  sip_tls_peer.py uas LOCAL_IP LOCAL_PORT CERTFILE KEYFILE MEDIA_PORT
      Listens for TLS, answers one INVITE with 180 and 200 (SDP), takes its ACK, answers BYE
      with 200, then exits.
  sip_tls_peer.py reg-client LOCAL_IP TARGET_IP TARGET_PORT CAFILE SERVER_NAME MEDIA_PORT DOMAIN
      Registers dave@DOMAIN over TLS, keeps the connection and answers the INVITE that comes
      over it (200 with SDP), its ACK and BYE.
  sip_tls_peer.py pbx-registrar LOCAL_IP LOCAL_PORT CERTFILE KEYFILE MEDIA_PORT
      A TLS PBX: answers Veil's REGISTER (200, 120 s), then calls the registered Contact over
      the same connection: INVITE, ACK, BYE.

Prints one JSON object on stdout: what was received (first lines, chosen headers, SDP), and
exits 0 when the exchange completed as described, 1 otherwise.
"""
import json
import random
import re
import socket
import ssl
import sys
import time

TIMEOUT = 20


def read_message(conn, buf):
    """One SIP message from a stream: (text, rest of buffer); keep-alive CRLFs skipped."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        while buf.startswith(b'\r\n'):
            buf = buf[2:]
        end = buf.find(b'\r\n\r\n')
        if end >= 0:
            head = buf[:end].decode(errors='replace')
            m = re.search(r'^(?:Content-Length|l)\s*:\s*(\d+)', head, re.M | re.I)
            length = int(m.group(1)) if m else 0
            total = end + 4 + length
            if len(buf) >= total:
                return buf[:total].decode(errors='replace'), buf[total:]
        if time.monotonic() > deadline:
            raise TimeoutError('no complete message')
        data = conn.recv(65536)
        if not data:
            raise EOFError('connection closed')
        buf += data


def header(msg, name):
    m = re.search(r'^(?:%s)\s*:\s*([^\r\n]*)' % name, msg.split('\r\n\r\n', 1)[0], re.M | re.I)
    return m.group(1) if m else None


def body(msg):
    return msg.split('\r\n\r\n', 1)[1] if '\r\n\r\n' in msg else ''


def sdp(ip, port):
    return ('v=0\r\no=tls 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n'
            'm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n' % (ip, ip, port))


def uac(local, target, port, cafile, server_name, media):
    out = {'received': []}
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection((target, port), timeout=TIMEOUT, source_address=(local, 0))
    conn = ctx.wrap_socket(raw, server_hostname=server_name)
    out['peer_subject'] = dict(x[0] for x in conn.getpeercert()['subject'])
    lport = conn.getsockname()[1]
    call_id = '%x@tls-uac' % random.getrandbits(64)
    tag = '%x' % random.getrandbits(32)
    buf = b''

    def request(method, ruri, cseq, to_tag='', body_text='', ctype=None):
        lines = ['%s %s SIP/2.0' % (method, ruri),
                 'Via: SIP/2.0/TLS %s:%d;branch=z9hG4bK%x;rport' % (local, lport, random.getrandbits(48)),
                 'From: "Alice" <sip:alice@%s>;tag=%s' % (local, tag),
                 'To: <sip:bob@%s>%s' % (target, ';tag=' + to_tag if to_tag else ''),
                 'Call-ID: %s' % call_id, 'CSeq: %d %s' % (cseq, method),
                 'Contact: <sip:alice@%s:%d;transport=tls>' % (local, lport), 'Max-Forwards: 70']
        if ctype:
            lines.append('Content-Type: ' + ctype)
        lines.append('Content-Length: %d' % len(body_text))
        conn.sendall(('\r\n'.join(lines) + '\r\n\r\n' + body_text).encode())

    ruri = 'sip:bob@%s:%d;transport=tls' % (target, port)
    request('OPTIONS', ruri, 1)
    msg, buf = read_message(conn, buf)
    out['options'] = msg.split('\r\n', 1)[0]
    request('INVITE', ruri, 2, body_text=sdp(local, media), ctype='application/sdp')
    while True:
        msg, buf = read_message(conn, buf)
        first = msg.split('\r\n', 1)[0]
        out['received'].append(first)
        code = int(first.split()[1])
        if code >= 200:
            break
    out['final'] = first
    if not 200 <= code < 300:
        print(json.dumps(out))
        return 1
    out['contact'] = header(msg, 'Contact|m')
    out['sdp'] = body(msg)
    to_tag = re.search(r';tag=([^;\s]+)', header(msg, 'To|t')).group(1)
    target_uri = re.search(r'<([^>]+)>', out['contact']).group(1)
    request('ACK', target_uri, 2, to_tag=to_tag)
    time.sleep(0.3)
    request('BYE', target_uri, 3, to_tag=to_tag)
    while True:
        msg, buf = read_message(conn, buf)
        if msg.startswith('SIP/2.0') and 'BYE' in (header(msg, 'CSeq') or ''):
            out['bye'] = msg.split('\r\n', 1)[0]
            break
    conn.close()
    print(json.dumps(out))
    return 0 if out['options'].startswith('SIP/2.0 200') and out['bye'].startswith('SIP/2.0 200') else 1


def options(local, target, port, cafile, server_name, certfile=None, keyfile=None):
    """OPTIONS over TLS, presenting a client certificate when given one: prints {'final': ...}
    or {'error': ...} (handshake refused, connection closed) and exits 0 only on a 200."""
    out = {}
    try:
        ctx = ssl.create_default_context(cafile=cafile)
        if certfile:
            ctx.load_cert_chain(certfile, keyfile)
        raw = socket.create_connection((target, port), timeout=5, source_address=(local, 0))
        conn = ctx.wrap_socket(raw, server_hostname=server_name)
        lport = conn.getsockname()[1]
        lines = ['OPTIONS sip:%s:%d;transport=tls SIP/2.0' % (target, port),
                 'Via: SIP/2.0/TLS %s:%d;branch=z9hG4bK%x;rport' % (local, lport, random.getrandbits(48)),
                 'From: <sip:pbx@%s>;tag=%x' % (local, random.getrandbits(32)), 'To: <sip:%s>' % target,
                 'Call-ID: %x@tls-options' % random.getrandbits(64), 'CSeq: 1 OPTIONS', 'Max-Forwards: 70',
                 'Content-Length: 0']
        conn.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
        global TIMEOUT
        TIMEOUT = 5
        msg, _ = read_message(conn, b'')
        out['final'] = msg.split('\r\n', 1)[0]
        conn.close()
    except (OSError, EOFError, ValueError, RuntimeError) as e:
        out['error'] = '%s: %s' % (type(e).__name__, e)
    print(json.dumps(out))
    return 0 if out.get('final', '').startswith('SIP/2.0 200') else 1


def uas(local, port, certfile, keyfile, media):
    out = {'received': []}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((local, port))
    lsock.listen(4)
    print(json.dumps({'listening': True}), flush=True)
    lsock.settimeout(TIMEOUT)
    conn, addr = lsock.accept()
    conn = ctx.wrap_socket(conn, server_side=True)
    conn.settimeout(TIMEOUT)
    buf = b''
    to_tag = '%x' % random.getrandbits(32)
    done = False
    while not done:
        msg, buf = read_message(conn, buf)
        first = msg.split('\r\n', 1)[0]
        out['received'].append(first)
        if first.startswith('SIP/2.0'):
            continue
        method = first.split()[0]
        copy = ['Via', 'From', 'Call-ID', 'CSeq']
        hdrs = ['%s: %s' % (h, header(msg, h)) for h in copy]
        vias = re.findall(r'^Via\s*:\s*([^\r\n]*)', msg.split('\r\n\r\n', 1)[0], re.M | re.I)
        hdrs = ['Via: %s' % v for v in vias] + hdrs[1:]
        to = header(msg, 'To')
        if ';tag=' not in to:
            to += ';tag=' + to_tag
        hdrs.append('To: ' + to)
        if method == 'INVITE':
            out['invite_via'] = vias
            out['invite_sdp'] = body(msg)
            out['invite_ruri'] = first
            out['invite_contact'] = header(msg, 'Contact|m')
            for code, text, b in ((180, 'Ringing', ''), (200, 'OK', sdp(local, media))):
                lines = ['SIP/2.0 %d %s' % (code, text)] + hdrs + [
                    'Contact: <sip:bob@%s:%d;transport=tls>' % (local, port)]
                if b:
                    lines.append('Content-Type: application/sdp')
                lines.append('Content-Length: %d' % len(b))
                conn.sendall(('\r\n'.join(lines) + '\r\n\r\n' + b).encode())
        elif method == 'ACK':
            out['ack'] = True
        elif method == 'BYE':
            lines = ['SIP/2.0 200 OK'] + hdrs + ['Content-Length: 0']
            conn.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
            done = True
        else:
            lines = ['SIP/2.0 200 OK'] + hdrs + ['Content-Length: 0']
            conn.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
    time.sleep(0.3)
    conn.close()
    print(json.dumps(out))
    return 0 if out.get('ack') and out.get('invite_sdp') else 1


def send(conn, first, hdrs, body_text='', ctype='application/sdp'):
    lines = [first] + hdrs
    if body_text:
        lines.append('Content-Type: ' + ctype)
    lines.append('Content-Length: %d' % len(body_text))
    conn.sendall(('\r\n'.join(lines) + '\r\n\r\n' + body_text).encode())


def answer(conn, msg, code, text, extra=(), body_text=''):
    vias = re.findall(r'^Via\s*:\s*([^\r\n]*)', msg.split('\r\n\r\n', 1)[0], re.M | re.I)
    hdrs = ['Via: %s' % v for v in vias] + ['%s: %s' % (h, header(msg, h)) for h in ('From', 'To', 'Call-ID', 'CSeq')]
    send(conn, 'SIP/2.0 %d %s' % (code, text), hdrs + list(extra), body_text)


def reg_client(local, target, port, cafile, server_name, media, domain):
    """Registers over TLS, keeps the connection, answers the call that comes over it."""
    out = {'received': []}
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection((target, port), timeout=TIMEOUT, source_address=(local, 0))
    conn = ctx.wrap_socket(raw, server_hostname=server_name)
    lport = conn.getsockname()[1]
    tag = '%x' % random.getrandbits(32)
    send(conn, 'REGISTER sip:%s SIP/2.0' % domain,
         ['Via: SIP/2.0/TLS %s:%d;branch=z9hG4bK%x;rport' % (local, lport, random.getrandbits(48)),
          'From: <sip:dave@%s>;tag=%s' % (domain, tag), 'To: <sip:dave@%s>' % domain,
          'Call-ID: %x@tls-client' % random.getrandbits(64), 'CSeq: 1 REGISTER',
          'Contact: <sip:dave@%s:%d;transport=tls>;expires=300' % (local, lport), 'Max-Forwards: 70'])
    buf = b''
    msg, buf = read_message(conn, buf)
    out['register'] = msg.split('\r\n', 1)[0]
    out['register_contact'] = header(msg, 'Contact|m')
    print(json.dumps({'registered': out['register']}), flush=True)
    while True:
        msg, buf = read_message(conn, buf)
        first = msg.split('\r\n', 1)[0]
        out['received'].append(first)
        method = first.split()[0]
        if method == 'INVITE':
            out['invite'] = first
            out['invite_sdp'] = body(msg)
            to_tag = ';tag=%x' % random.getrandbits(32)
            vias = re.findall(r'^Via\s*:\s*([^\r\n]*)', msg.split('\r\n\r\n', 1)[0], re.M | re.I)
            hdrs = ['Via: %s' % v for v in vias] + ['From: ' + header(msg, 'From'), 'To: ' + header(msg, 'To') + to_tag,
                                                   'Call-ID: ' + header(msg, 'Call-ID'), 'CSeq: ' + header(msg, 'CSeq'),
                                                   'Contact: <sip:dave@%s:%d;transport=tls>' % (local, lport)]
            send(conn, 'SIP/2.0 200 OK', hdrs, sdp(local, media))
        elif method == 'ACK':
            out['ack'] = True
        elif method == 'BYE':
            answer(conn, msg, 200, 'OK')
            break
    time.sleep(0.3)
    conn.close()
    print(json.dumps(out))
    return 0 if out['register'].startswith('SIP/2.0 200') and out.get('ack') else 1


def pbx_registrar(local, port, certfile, keyfile, media):
    """Accepts Veil's TLS connection, answers its REGISTER (120 s) and calls the Contact it
    registered, over that connection: INVITE, ACK, BYE."""
    out = {'received': []}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((local, port))
    lsock.listen(4)
    print(json.dumps({'listening': True}), flush=True)
    lsock.settimeout(TIMEOUT)
    conn, _ = lsock.accept()
    conn = ctx.wrap_socket(conn, server_side=True)
    conn.settimeout(TIMEOUT)
    buf = b''
    msg, buf = read_message(conn, buf)
    out['register'] = msg.split('\r\n', 1)[0]
    contact = header(msg, 'Contact|m')
    out['register_contact'] = contact
    answer(conn, msg, 200, 'OK', ['Contact: %s;expires=120' % contact.split(';expires')[0]])
    target = re.search(r'<([^>]+)>', contact).group(1)
    call_id, tag = '%x@tls-pbx' % random.getrandbits(64), '%x' % random.getrandbits(32)
    base = ['From: <sip:pbx@%s>;tag=%s' % (local, tag), 'Call-ID: ' + call_id, 'Max-Forwards: 70',
            'Contact: <sip:pbx@%s:%d;transport=tls>' % (local, port)]

    def via():
        return 'Via: SIP/2.0/TLS %s:%d;branch=z9hG4bK%x' % (local, port, random.getrandbits(48))
    send(conn, 'INVITE %s SIP/2.0' % target, [via(), 'To: <sip:dave@%s>' % local, 'CSeq: 1 INVITE'] + base,
         sdp(local, media))
    while True:
        msg, buf = read_message(conn, buf)
        first = msg.split('\r\n', 1)[0]
        out['received'].append(first)
        if first.startswith('SIP/2.0') and int(first.split()[1]) >= 200:
            break
    out['final'] = first
    to = header(msg, 'To')
    uri = re.search(r'<([^>]+)>', header(msg, 'Contact|m')).group(1)
    send(conn, 'ACK %s SIP/2.0' % uri, [via(), 'To: ' + to, 'CSeq: 1 ACK'] + base)
    time.sleep(0.3)
    send(conn, 'BYE %s SIP/2.0' % uri, [via(), 'To: ' + to, 'CSeq: 2 BYE'] + base)
    while True:
        msg, buf = read_message(conn, buf)
        if msg.startswith('SIP/2.0') and 'BYE' in (header(msg, 'CSeq') or ''):
            out['bye'] = msg.split('\r\n', 1)[0]
            break
    time.sleep(0.3)
    conn.close()
    print(json.dumps(out))
    return 0 if out['final'].startswith('SIP/2.0 200') and out['bye'].startswith('SIP/2.0 200') else 1


def main():
    try:
        if sys.argv[1] == 'reg-client':
            return reg_client(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7]),
                              sys.argv[8])
        if sys.argv[1] == 'pbx-registrar':
            return pbx_registrar(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
        if sys.argv[1] == 'options':
            return options(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6], *sys.argv[7:9])
        if sys.argv[1] == 'uac':
            return uac(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7]))
        return uas(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
    except Exception as e:  # reported as JSON, exit 1
        print(json.dumps({'error': '%s: %s' % (type(e).__name__, e)}))
        return 1


if __name__ == '__main__':
    sys.exit(main())
