#!/usr/bin/env python3
"""Sends hand-made SIP requests (well-formed, unsupported, malformed, oversized) to one SIP
address and prints one JSON object: case name -> the status line of the answer, or null
when none came within the timeout. Used by tests/sip/test_b2bua.py inside a namespace.

Usage: sip_probe.py LOCAL_IP TARGET_IP TARGET_PORT
"""
import json
import socket
import sys
import time

LOCAL, TARGET, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
LOCAL_PORT = 5090


def message(method, cseq=None, call_id=True, extra=(), body='', transport='UDP'):
    branch = 'z9hG4bKprobe%d' % int(time.time() * 1e6)
    lines = ['%s sip:bob@%s:%d SIP/2.0' % (method, TARGET, PORT),
             'Via: SIP/2.0/%s %s:%d;branch=%s;rport' % (transport, LOCAL, LOCAL_PORT, branch),
             'From: <sip:probe@%s>;tag=probe1' % LOCAL,
             'To: <sip:bob@%s>' % TARGET]
    if call_id:
        lines.append('Call-ID: probe-%d@%s' % (int(time.time() * 1e6), LOCAL))
    lines.append('CSeq: %s' % (cseq if cseq is not None else '1 ' + method))
    lines.append('Max-Forwards: 70')
    lines.extend(extra)
    lines.append('Content-Length: %d' % len(body))
    return ('\r\n'.join(lines) + '\r\n\r\n' + body).encode()


def answer(data):
    return data.split(b'\r\n', 1)[0].decode(errors='replace') if data else None


def udp(raw, timeout=1.5, port=LOCAL_PORT):
    """The first answer to `raw`, provisional (1xx) answers skipped."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOCAL, port))
    s.settimeout(timeout)
    try:
        s.sendto(raw, (TARGET, PORT))
        while True:
            a = answer(s.recv(70000))
            if not (a and a.startswith('SIP/2.0 1')):
                return a
    except socket.timeout:
        return None
    finally:
        s.close()


def tcp(raw, timeout=3):
    s = socket.create_connection((TARGET, PORT), timeout=timeout, source_address=(LOCAL, 0))
    try:
        s.sendall(raw)
        data = b''
        while b'\r\n' not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return answer(data)
    except (socket.timeout, ConnectionError):
        return None
    finally:
        s.close()


CASES = [
    ('options', lambda: udp(message('OPTIONS'))),
    ('unknown_method', lambda: udp(message('FOO'))),
    ('refer', lambda: udp(message('REFER', extra=['Refer-To: <sip:carol@%s>' % LOCAL]))),
    ('message', lambda: udp(message('MESSAGE', extra=['Content-Type: text/plain'], body='hi'))),
    ('subscribe', lambda: udp(message('SUBSCRIBE', extra=['Event: presence']))),
    # INFO and UPDATE outside any dialog: nothing to relay them on.
    ('info_no_dialog', lambda: udp(message('INFO', extra=['Content-Type: application/dtmf-relay'],
                                           body='Signal=1\r\nDuration=100\r\n'))),
    ('update_no_dialog', lambda: udp(message('UPDATE'))),
    ('no_call_id', lambda: udp(message('OPTIONS', call_id=False))),
    ('bad_cseq', lambda: udp(message('OPTIONS', cseq='abc OPTIONS'))),
    ('cseq_method_mismatch', lambda: udp(message('OPTIONS', cseq='1 INVITE'))),
    ('invite_no_call_id', lambda: udp(message('INVITE', call_id=False))),
    # An INVITE's failure is retransmitted until ACKed: answers come to another port.
    ('session_interval_too_small', lambda: udp(message('INVITE', extra=['Supported: timer', 'Session-Expires: 5']),
                                               port=LOCAL_PORT + 1)),
    # An m= line that makes sofia-sip's SDP parser allocate without bound (tens of GB): Veil
    # refuses it before parsing (488), and stays up.
    ('invite_sdp_bomb', lambda: udp(message('INVITE', extra=['Content-Type: application/sdp'],
                                            body='v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n'
                                                 'm=audio 49170 X/"" 0\r\n' % (LOCAL, LOCAL)),
                                    port=LOCAL_PORT + 2)),
    ('garbage', lambda: udp(b'\xff\xfe this is not SIP\r\n\r\n')),
    # sofia-sip's UDP transport takes anything starting with 0x00/0x01 for STUN and answers
    # with a STUN error (no SIP, nothing but the sender's own bytes echoed).
    ('stun_like', lambda: udp(b'\x00\x01\x00\x00 this is not SIP either')),
    ('bad_request_line', lambda: udp(b'OPTIONS nonsense\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKx\r\n\r\n'
                                     % (LOCAL.encode(), LOCAL_PORT))),
    # 64 KiB is the limit; a UDP datagram cannot exceed it, TCP can.
    ('oversized_tcp', lambda: tcp(message('OPTIONS', extra=['Content-Type: text/plain'], body='x' * 70000,
                                          transport='TCP'))),
    ('options_after', lambda: udp(message('OPTIONS'))),
]

print(json.dumps({name: fn() for name, fn in CASES}), flush=True)
