#!/usr/bin/env python3
"""A symmetric RTP endpoint for labs and tests: sends a G.711-like RTP stream from one
UDP socket and receives on the same socket (as SIP phones do), then prints a JSON report:
packets sent/received, the source addresses seen, sequence gaps and payload integrity.

  rtp-peer.py --bind 203.0.113.10:4000 --send-to 203.0.113.1:20000 --count 50
"""
import argparse
import json
import os
import socket
import struct
import sys
import time


def endpoint(text):
    if text.startswith('['):
        host, port = text[1:].split(']:')
    else:
        host, port = text.rsplit(':', 1)
    return host, int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bind', required=True, type=endpoint)
    ap.add_argument('--send-to', type=endpoint)
    ap.add_argument('--count', type=int, default=50, help='packets to send')
    ap.add_argument('--interval', type=float, default=0.02)
    ap.add_argument('--payload', type=int, default=160)
    ap.add_argument('--ssrc', type=lambda s: int(s, 0), default=0x5EED0001)
    ap.add_argument('--pt', type=int, default=0)
    ap.add_argument('--delay', type=float, default=0.3,
                    help='seconds between binding and the first send (lets the far end bind too)')
    ap.add_argument('--linger', type=float, default=1.0, help='seconds to keep receiving after the last send')
    ap.add_argument('--duration', type=float, default=0, help='receive-only: seconds to listen')
    args = ap.parse_args()

    fam = socket.AF_INET6 if ':' in args.bind[0] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(args.bind)
    s.settimeout(0.005)

    sent = received = bad = rtcp = 0
    pts = {}  # payload type -> RTP packets received
    sources = {}
    ssrcs = set()
    seqs = []
    seq = 1000
    ts = 160000
    start = time.monotonic()
    next_send = start + args.delay
    end_send = None
    stop_at = start + args.duration if not args.send_to else None
    while True:
        now = time.monotonic()
        if args.send_to and sent < args.count and now >= next_send:
            body = bytes((sent + i) & 0xFF for i in range(args.payload))
            hdr = struct.pack('!BBHII', 0x80, args.pt & 0x7F, seq & 0xFFFF, ts & 0xFFFFFFFF, args.ssrc)
            s.sendto(hdr + body, args.send_to)
            sent += 1
            seq += 1
            ts += args.payload
            next_send += args.interval
            if sent == args.count:
                end_send = now
        if end_send is not None and now - end_send >= args.linger:
            break
        if stop_at is not None and now >= stop_at:
            break
        try:
            data, src = s.recvfrom(4096)
        except socket.timeout:
            continue
        received += 1
        key = '[%s]:%d' % src[:2] if fam == socket.AF_INET6 else '%s:%d' % src[:2]
        sources[key] = sources.get(key, 0) + 1
        if len(data) < 12 or data[0] >> 6 != 2:
            bad += 1
            continue
        if 192 <= data[1] <= 223:  # RTCP (RFC 5761 4)
            rtcp += 1
            continue
        pt = data[1] & 0x7F
        pts[pt] = pts.get(pt, 0) + 1
        _, _, rseq, _, rssrc = struct.unpack('!BBHII', data[:12])
        ssrcs.add(rssrc)
        seqs.append(rseq)
        body = data[12:]
        n = rseq - 1000
        if body != bytes((n + i) & 0xFF for i in range(len(body))):
            bad += 1
    report = {
        'bind': '%s:%d' % args.bind, 'sent': sent, 'received': received, 'bad': bad,
        'sources': sources, 'ssrcs': sorted('0x%08x' % x for x in ssrcs),
        'pts': {str(k): v for k, v in sorted(pts.items())}, 'rtcp': rtcp,
        'first_seq': min(seqs) if seqs else None, 'last_seq': max(seqs) if seqs else None,
    }
    json.dump(report, sys.stdout)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
