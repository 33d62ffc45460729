#!/usr/bin/env python3
"""An SRTP endpoint for tests (SDES, RFC 4568): like rtp-peer.py (same payload pattern, same
JSON report), but protects what it sends with --key-out and verifies and decrypts what it
receives with --key-in (RFC 3711 AES_CM_128_HMAC_SHA1_80/_32; RFC 7714 AEAD_AES_128_GCM).
A received packet whose tag does not verify counts as `auth_fail`, never as received.

  srtp-peer.py --bind 203.0.113.10:4000 --send-to 203.0.113.1:20000 \\
               --suite AES_CM_128_HMAC_SHA1_80 --key-out BASE64 --key-in BASE64

Needs python3-cryptography (AES); HMAC-SHA1 from the standard library. `--self-test` checks
the key derivation and keystream against RFC 3711 appendix B.2 and B.3 and exits.
"""
import argparse
import base64
import hashlib
import hmac
import json
import socket
import struct
import sys
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SUITES = {  # name: (salt bytes, RTP tag bytes, GCM)
    'AES_CM_128_HMAC_SHA1_80': (14, 10, False),
    'AES_CM_128_HMAC_SHA1_32': (14, 4, False),
    'AEAD_AES_128_GCM': (12, 16, True),
}


def aes_ctr(key, iv16, data):
    e = Cipher(algorithms.AES(key), modes.CTR(iv16)).encryptor()
    return e.update(data) + e.finalize()


def kdf(master_key, master_salt, label, n):
    """RFC 3711 4.3.1 with key_derivation_rate 0 (r = 0): x = (label << 48) XOR salt, AES-CM
    keystream with IV x * 2^16. A 96-bit salt (RFC 7714 11) is taken as the high 96 bits of
    the 112-bit value (libsrtp2 pads it with zeros on the right)."""
    salt = master_salt + bytes(14 - len(master_salt))
    x = int.from_bytes(salt, 'big') ^ (label << 48)
    iv = (x << 16).to_bytes(16, 'big')
    return aes_ctr(master_key, iv, bytes(n))


class Context:
    def __init__(self, suite, master, mki=b''):
        self.salt_len, self.tag_len, self.gcm = SUITES[suite]
        if mki and self.gcm:
            raise ValueError('an MKI is only supported with the AES-CM suites here')
        self.mki = mki     # RFC 3711 MKI: between the encrypted portion and the tag, not authenticated
        if len(master) != 16 + self.salt_len:
            raise ValueError('%s needs %d bytes of key and salt, got %d' % (suite, 16 + self.salt_len, len(master)))
        mk, ms = master[:16], master[16:]
        self.k_e = kdf(mk, ms, 0, 16)
        self.k_a = kdf(mk, ms, 1, 20)
        self.k_s = kdf(mk, ms, 2, self.salt_len)
        self.roc = {}      # ssrc -> (roc, highest seq) for the receiver
        self.seen = {}     # ssrc -> set of recent indexes (replay check)

    def _iv_cm(self, ssrc, index):
        v = (int.from_bytes(self.k_s, 'big') << 16) ^ (ssrc << 64) ^ (index << 16)
        return v.to_bytes(16, 'big')

    def _iv_gcm(self, ssrc, roc, seq):
        iv = bytes(2) + struct.pack('!IIH', ssrc, roc, seq)
        return bytes(a ^ b for a, b in zip(iv, self.k_s))

    def protect(self, pkt, roc=0):
        hdr, body = pkt[:12], pkt[12:]
        seq, ssrc = struct.unpack('!H', pkt[2:4])[0], struct.unpack('!I', pkt[8:12])[0]
        if self.gcm:
            return hdr + AESGCM(self.k_e).encrypt(self._iv_gcm(ssrc, roc, seq), body, hdr)
        enc = hdr + aes_ctr(self.k_e, self._iv_cm(ssrc, (roc << 16) | seq), body)
        tag = hmac.new(self.k_a, enc + struct.pack('!I', roc), hashlib.sha1).digest()[:self.tag_len]
        return enc + self.mki + tag

    def unprotect(self, pkt):
        """The RTP packet, or None when the tag does not verify or it is a replay."""
        if len(pkt) < 12 + len(self.mki) + self.tag_len:
            return None
        if self.mki:
            if pkt[-self.tag_len - len(self.mki):-self.tag_len] != self.mki:
                return None
            pkt = pkt[:-self.tag_len - len(self.mki)] + pkt[-self.tag_len:]
        hdr = pkt[:12]
        seq, ssrc = struct.unpack('!H', pkt[2:4])[0], struct.unpack('!I', pkt[8:12])[0]
        roc, high = self.roc.get(ssrc, (0, seq))
        # RFC 3711 3.3.1 index guess (no wrap expected in a test's few hundred packets).
        v = roc
        if high < 0x8000 and seq - high > 0x8000:
            v = roc - 1
        elif high >= 0x8000 and high - 0x8000 > seq:
            v = roc + 1
        index = (v << 16) | seq
        if index in self.seen.setdefault(ssrc, set()):
            return None
        if self.gcm:
            try:
                body = AESGCM(self.k_e).decrypt(self._iv_gcm(ssrc, v, seq), pkt[12:], hdr)
            except Exception:
                return None
        else:
            enc, tag = pkt[:-self.tag_len], pkt[-self.tag_len:]
            want = hmac.new(self.k_a, enc + struct.pack('!I', v), hashlib.sha1).digest()[:self.tag_len]
            if not hmac.compare_digest(tag, want):
                return None
            body = aes_ctr(self.k_e, self._iv_cm(ssrc, index), enc[12:])
        self.seen[ssrc].add(index)
        if v > roc or (v == roc and seq > high):
            self.roc[ssrc] = (v, seq)
        return hdr + body


def self_test():
    # RFC 3711 B.3: key derivation.
    mk = bytes.fromhex('E1F97A0D3E018BE0D64FA32C06DE4139')
    ms = bytes.fromhex('0EC675AD498AFEEBB6960B3AABE6')
    assert kdf(mk, ms, 0, 16).hex().upper() == 'C61E7A93744F39EE10734AFE3FF7A087'
    assert kdf(mk, ms, 2, 14).hex().upper() == '30CBBC08863D8C85D49DB34A9AE1'
    assert kdf(mk, ms, 1, 20).hex().upper() == 'CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4'
    # RFC 3711 B.2: AES-CM keystream.
    k = bytes.fromhex('2B7E151628AED2A6ABF7158809CF4F3C')
    iv = bytes.fromhex('F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000')
    assert aes_ctr(k, iv, bytes(16)).hex().upper() == 'E03EAD0935C95E80E166B16DD92B4EB4'
    # Round trips for each suite, tamper detected.
    for suite, (salt, _, _) in SUITES.items():
        a, b = Context(suite, bytes(range(16 + salt))), Context(suite, bytes(range(16 + salt)))
        pkt = struct.pack('!BBHII', 0x80, 0, 7, 1234, 0xCAFE) + b'hello srtp'
        p = a.protect(pkt)
        assert p != pkt and b.unprotect(p) == pkt
        assert b.unprotect(p) is None  # replay
        q = bytearray(a.protect(struct.pack('!BBHII', 0x80, 0, 8, 1234, 0xCAFE) + b'x' * 10))
        q[14] ^= 1
        assert b.unprotect(bytes(q)) is None
    print('srtp-peer self-test: ok')


def endpoint(text):
    if text.startswith('['):
        host, port = text[1:].split(']:')
    else:
        host, port = text.rsplit(':', 1)
    return host, int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--self-test', action='store_true')
    ap.add_argument('--bind', type=endpoint)
    ap.add_argument('--send-to', type=endpoint)
    ap.add_argument('--suite', default='AES_CM_128_HMAC_SHA1_80', choices=sorted(SUITES))
    ap.add_argument('--key-out', help='base64 master key || salt this peer protects with')
    ap.add_argument('--key-in', help='base64 master key || salt of the far end (verify, decrypt)')
    ap.add_argument('--mki-out', default='', help='hex MKI this peer puts in its packets (its key was offered with one)')
    ap.add_argument('--count', type=int, default=50)
    ap.add_argument('--interval', type=float, default=0.02)
    ap.add_argument('--payload', type=int, default=160)
    ap.add_argument('--ssrc', type=lambda s: int(s, 0), default=0x5EED0001)
    ap.add_argument('--pt', type=int, default=0)
    ap.add_argument('--delay', type=float, default=0.3)
    ap.add_argument('--linger', type=float, default=1.0)
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return 0
    if not args.bind or not args.key_in or (args.send_to and not args.key_out):
        ap.error('--bind, --key-in and (with --send-to) --key-out are needed')
    tx = Context(args.suite, base64.b64decode(args.key_out), bytes.fromhex(args.mki_out)) if args.key_out else None
    rx = Context(args.suite, base64.b64decode(args.key_in))

    fam = socket.AF_INET6 if ':' in args.bind[0] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(args.bind)
    s.settimeout(0.005)
    sent = received = bad = auth_fail = 0
    sources, ssrcs, seqs = {}, set(), []
    seq, ts = 1000, 160000
    start = time.monotonic()
    next_send = start + args.delay
    end_send = None
    while True:
        now = time.monotonic()
        if args.send_to and sent < args.count and now >= next_send:
            body = bytes((sent + i) & 0xFF for i in range(args.payload))
            hdr = struct.pack('!BBHII', 0x80, args.pt & 0x7F, seq & 0xFFFF, ts & 0xFFFFFFFF, args.ssrc)
            s.sendto(tx.protect(hdr + body), args.send_to)
            sent += 1
            seq += 1
            ts += args.payload
            next_send += args.interval
            if sent == args.count:
                end_send = now
        if end_send is not None and now - end_send >= args.linger:
            break
        if not args.send_to and now - start >= args.delay + args.count * args.interval + args.linger:
            break
        try:
            data, src = s.recvfrom(4096)
        except socket.timeout:
            continue
        key = '[%s]:%d' % src[:2] if fam == socket.AF_INET6 else '%s:%d' % src[:2]
        sources[key] = sources.get(key, 0) + 1
        pkt = rx.unprotect(data) if len(data) >= 12 and data[0] >> 6 == 2 else None
        if pkt is None:
            auth_fail += 1
            continue
        received += 1
        rseq, rssrc = struct.unpack('!H', pkt[2:4])[0], struct.unpack('!I', pkt[8:12])[0]
        ssrcs.add(rssrc)
        seqs.append(rseq)
        n = rseq - 1000
        if pkt[12:] != bytes((n + i) & 0xFF for i in range(len(pkt) - 12)):
            bad += 1
    json.dump({'bind': '%s:%d' % args.bind, 'sent': sent, 'received': received, 'bad': bad,
               'auth_fail': auth_fail, 'sources': sources, 'ssrcs': sorted('0x%08x' % x for x in ssrcs),
               'first_seq': min(seqs) if seqs else None, 'last_seq': max(seqs) if seqs else None},
              sys.stdout)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
