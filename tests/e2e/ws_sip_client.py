#!/usr/bin/env python3
"""A SIP user agent over WebSocket (RFC 7118) for tests/e2e/test_websocket.py: what a browser
running a SIP library sends (Via "<random>.invalid" with transport WSS, Contact
"<user>@<random>.invalid;transport=ws", no rport), built on python3-websockets.

    ws_sip_client.py URL SCENARIO [options]

Scenarios (each prints one JSON object on stdout: what happened and every SIP message
received, verbatim):
  register-and-answer  REGISTER (answering a digest challenge), wait for an INVITE, answer it
                       with SDP (180, 200), wait for ACK and for the caller's BYE (200).
  call                 INVITE with SDP to --target, ACK the 200, keep the call --hold s, BYE.
  options              OPTIONS (optionally without Content-Length): the answer.
  send-raw             send --raw as one message; report what comes back within --wait s.
  handshake            open the WebSocket only (to see how the upgrade is answered).
  hold-open            open the WebSocket and keep it --hold seconds.
"""
import argparse
import asyncio
import hashlib
import json
import random
import re
import ssl
import string

import websockets


def rnd(n=10):
    return ''.join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


class Ua:
    def __init__(self, ws, args):
        self.ws, self.args = ws, args
        self.host = rnd(12) + '.invalid'  # what SIP.js/JsSIP put in Via and Contact
        self.user = args.user
        self.received = []

    def via(self):
        return 'Via: SIP/2.0/WSS %s;branch=z9hG4bK%s' % (self.host, rnd(16))

    async def send(self, text):
        await self.ws.send(text)

    async def recv(self, timeout):
        msg = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(msg, bytes):
            msg = msg.decode(errors='replace')
        self.received.append(msg)
        return msg

    async def expect(self, pred, timeout, what):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            left = end - loop.time()
            if left <= 0:
                raise RuntimeError('timed out waiting for %s' % what)
            msg = await self.recv(left)
            if pred(msg):
                return msg


def first_line(msg):
    return msg.split('\r\n', 1)[0]


def status(msg):
    m = re.match(r'SIP/2\.0 (\d{3})', msg)
    return int(m.group(1)) if m else None


def header(msg, name):
    head = msg.split('\r\n\r\n', 1)[0]
    for line in head.split('\r\n')[1:]:
        k, _, v = line.partition(':')
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def headers(msg, name):
    head = msg.split('\r\n\r\n', 1)[0]
    out = []
    for line in head.split('\r\n')[1:]:
        k, _, v = line.partition(':')
        if k.strip().lower() == name.lower():
            out.append(v.strip())
    return out


def body(msg):
    return msg.split('\r\n\r\n', 1)[1] if '\r\n\r\n' in msg else ''


def digest(challenge, method, uri, user, password):
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    ha1 = hashlib.md5(('%s:%s:%s' % (user, params['realm'], password)).encode()).hexdigest()
    ha2 = hashlib.md5(('%s:%s' % (method, uri)).encode()).hexdigest()
    resp = hashlib.md5(('%s:%s:%s' % (ha1, params['nonce'], ha2)).encode()).hexdigest()
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5'
            % (user, params['realm'], params['nonce'], uri, resp))


def sdp(addr, port, user):
    return ('v=0\r\no=%s 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n'
            'm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n' % (user, addr, addr, port))


async def register(ua, a):
    uri = 'sip:%s' % a.domain
    call_id, tag = rnd(20), rnd(8)
    auth = None
    for cseq in (1, 2):
        lines = ['REGISTER %s SIP/2.0' % uri, ua.via(), 'Max-Forwards: 70',
                 'To: <sip:%s@%s>' % (ua.user, a.domain), 'From: <sip:%s@%s>;tag=%s' % (ua.user, a.domain, tag),
                 'Call-ID: %s' % call_id, 'CSeq: %d REGISTER' % cseq,
                 'Contact: <sip:%s@%s;transport=ws>;expires=300' % (ua.user, ua.host),
                 'Expires: 300', 'User-Agent: ws-test-ua']
        if auth:
            lines.append('Authorization: %s' % auth)
        await ua.send('\r\n'.join(lines) + '\r\nContent-Length: 0\r\n\r\n')
        r = await ua.expect(lambda m: status(m) and status(m) >= 200, 10, 'REGISTER answer')
        if status(r) == 401 and cseq == 1:
            auth = digest(header(r, 'WWW-Authenticate'), 'REGISTER', uri, a.auth_user, a.password)
            continue
        return status(r)
    return None


def response(req, code, phrase, extra=(), body_text=''):
    lines = ['SIP/2.0 %d %s' % (code, phrase)] + ['Via: %s' % v for v in headers(req, 'Via')]
    for h in ('From', 'To', 'Call-ID', 'CSeq'):
        lines.append('%s: %s' % (h, header(req, h)))
    lines += list(extra)
    if body_text:
        lines.append('Content-Type: application/sdp')
    lines.append('Content-Length: %d' % len(body_text.encode()))
    return '\r\n'.join(lines) + '\r\n\r\n' + body_text


async def answer(ua, a, result):
    inv = await ua.expect(lambda m: first_line(m).startswith('INVITE '), a.wait, 'an INVITE')
    result['invite'] = inv
    totag = rnd(8)
    to = header(inv, 'To') + ';tag=' + totag
    contact = 'Contact: <sip:%s@%s;transport=ws>' % (ua.user, ua.host)

    def with_to(code, phrase, extra=(), b=''):
        r = response(inv, code, phrase, extra, b)
        return re.sub(r'^To: .*$', 'To: ' + to, r, count=1, flags=re.M)
    await ua.send(with_to(180, 'Ringing', [contact]))
    await ua.send(with_to(200, 'OK', [contact], sdp(a.media_addr, a.media_port, ua.user)))
    ack = await ua.expect(lambda m: first_line(m).startswith('ACK '), 10, 'the ACK')
    result['ack'] = first_line(ack)
    bye = await ua.expect(lambda m: first_line(m).startswith('BYE '), a.wait, 'the BYE')
    await ua.send(response(bye, 200, 'OK'))
    result['bye'] = first_line(bye)


async def call(ua, a, result):
    call_id, tag = rnd(20), rnd(8)
    target = a.target
    frm = 'From: "WS Alice" <sip:%s@%s>;tag=%s' % (ua.user, a.domain, tag)
    to = 'To: <%s>' % target
    contact = 'Contact: <sip:%s@%s;transport=ws>' % (ua.user, ua.host)
    offer = sdp(a.media_addr, a.media_port, ua.user)
    await ua.send('\r\n'.join(['INVITE %s SIP/2.0' % target, ua.via(), 'Max-Forwards: 70', to, frm,
                               'Call-ID: %s' % call_id, 'CSeq: 1 INVITE', contact,
                               'Content-Type: application/sdp', 'Content-Length: %d' % len(offer)])
                  + '\r\n\r\n' + offer)
    ok = await ua.expect(lambda m: status(m) and status(m) >= 200, 15, 'the INVITE answer')
    result['final'] = status(ok)
    result['answer'] = ok
    if status(ok) != 200:
        return
    to_full = header(ok, 'To')
    remote = re.search(r'<([^>]+)>', header(ok, 'Contact')).group(1)
    await ua.send('\r\n'.join(['ACK %s SIP/2.0' % remote, ua.via(), 'Max-Forwards: 70', 'To: ' + to_full, frm,
                               'Call-ID: %s' % call_id, 'CSeq: 1 ACK', 'Content-Length: 0']) + '\r\n\r\n')
    await asyncio.sleep(a.hold)
    await ua.send('\r\n'.join(['BYE %s SIP/2.0' % remote, ua.via(), 'Max-Forwards: 70', 'To: ' + to_full, frm,
                               'Call-ID: %s' % call_id, 'CSeq: 2 BYE', 'Content-Length: 0']) + '\r\n\r\n')
    bye_ok = await ua.expect(lambda m: header(m, 'CSeq') == '2 BYE' and status(m), 10, 'the BYE answer')
    result['bye'] = status(bye_ok)


async def options(ua, a, result):
    lines = ['OPTIONS sip:%s SIP/2.0' % a.domain, ua.via(), 'Max-Forwards: 70', 'To: <sip:%s>' % a.domain,
             'From: <sip:%s@%s>;tag=%s' % (ua.user, a.domain, rnd(8)), 'Call-ID: %s' % rnd(20), 'CSeq: 1 OPTIONS']
    if not a.no_content_length:
        lines.append('Content-Length: 0')
    await ua.send('\r\n'.join(lines) + '\r\n\r\n')
    r = await ua.expect(lambda m: status(m), 10, 'the OPTIONS answer')
    result['status'] = status(r)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument('url')
    p.add_argument('scenario')
    p.add_argument('--ca')
    p.add_argument('--origin', default='https://phone.example.test')
    p.add_argument('--no-subprotocol', action='store_true')
    p.add_argument('--user', default='alice')
    p.add_argument('--auth-user', default='alice')
    p.add_argument('--password', default='s3cret')
    p.add_argument('--domain', default='voice.example.com')
    p.add_argument('--target', default='sip:bob@voice.example.com')
    p.add_argument('--media-addr', default='203.0.113.10')
    p.add_argument('--media-port', type=int, default=4100)
    p.add_argument('--hold', type=float, default=1.0)
    p.add_argument('--wait', type=float, default=20.0)
    p.add_argument('--raw', default='')
    p.add_argument('--no-content-length', action='store_true')
    a = p.parse_args()
    ctx = None
    if a.url.startswith('wss:'):
        ctx = ssl.create_default_context(cafile=a.ca)
    result = {'scenario': a.scenario}
    try:
        async with websockets.connect(a.url, subprotocols=None if a.no_subprotocol else ['sip'],
                                      origin=a.origin, ssl=ctx, max_size=None, open_timeout=10,
                                      ping_interval=None) as ws:
            result['subprotocol'] = ws.subprotocol
            result['response_headers'] = dict(ws.response_headers.raw_items())
            ua = Ua(ws, a)
            try:
                if a.scenario == 'register-and-answer':
                    result['register'] = await register(ua, a)
                    if result['register'] == 200:
                        print(json.dumps({'registered': True}), flush=True)
                        await answer(ua, a, result)
                elif a.scenario == 'call':
                    await call(ua, a, result)
                elif a.scenario == 'options':
                    await options(ua, a, result)
                elif a.scenario == 'send-raw':
                    await ws.send(a.raw.encode().decode('unicode_escape'))
                    try:
                        await ua.recv(a.wait)
                    except asyncio.TimeoutError:
                        pass
                    except websockets.exceptions.ConnectionClosed as e:
                        result['closed'] = e.rcvd.code if e.rcvd else None
                elif a.scenario == 'hold-open':
                    await asyncio.sleep(a.hold)
                    result['open'] = ws.open
            except websockets.exceptions.ConnectionClosed as e:
                result['closed'] = e.rcvd.code if e.rcvd else None
            except (RuntimeError, asyncio.TimeoutError) as e:
                result['error'] = str(e) or type(e).__name__
            result['received'] = ua.received
    except websockets.exceptions.InvalidStatusCode as e:
        result['http_status'] = e.status_code
    except (websockets.exceptions.InvalidMessage, websockets.exceptions.ConnectionClosed, OSError,
            asyncio.TimeoutError, EOFError) as e:
        result['handshake_error'] = type(e).__name__ + ': ' + str(e)
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    asyncio.run(main())
