"""End-to-end test of Veil's B2BUA (sip/) with real sipp peers in network namespaces.

Three namespaces, created here under a name unique to this run and always removed:
  <p>-ext: the untrusted peer, 203.0.113.10 (sipp caller or callee)
  <p>-sbc: b2bua_harness on 203.0.113.1 (ext0) and 198.51.100.1 (int0), plain kernel veths
  <p>-int: the PBX, 198.51.100.10 (sipp), and a stranger at 198.51.100.11
Nothing runs in the root namespace and nothing is routed out of the namespaces.

Every SIP packet on both wires is captured (tcpdump) and checked: no address of one side
on the other (also by tools/veil-leak-audit.py, the operators' audit, over both captures), distinct Call-IDs per leg, SDP naming only the SBC's address of that side
with the ports the (recording) MediaAnchor allocated; the anchor's flows match the peers'
SDP; the call counter returns to 0. Output: TAP. Needs root, sipp and tcpdump, else SKIP.

Usage: test_b2bua.py SOURCE_DIR BUILD_DIR   (VEIL_SIP_ONLY=t_a,t_b runs only those tests;
VEIL_KEEP_TMP=1 keeps the captures and sipp traces)
"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback

SRC, BUILD = (sys.argv[1], sys.argv[2]) if len(sys.argv) >= 3 else (
    os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')), None)
if BUILD is None:
    BUILD = os.path.join(SRC, 'build')
sys.path.insert(0, os.path.join(SRC, 'tests', 'e2e'))
from lab import read_pcap, udp_of  # noqa: E402  (pcap reading shared with the dataplane e2e)

EXT_PEER, EXT_SBC = '203.0.113.10', '203.0.113.1'
INT_PEER, INT_SBC, INT_STRANGER = '198.51.100.10', '198.51.100.1', '198.51.100.11'
UNTRUSTED_PREFIX, TRUSTED_PREFIX = '203.0.113.', '198.51.100.'
PBX_PORT, TARGET_PORT = 5060, 5070
EXT_MEDIA_BASE, INT_MEDIA_BASE = 20000, 30000
SCEN = os.path.join(SRC, 'tests', 'sip', 'scenarios')
WATCHDOG_S = 180
REG_DOMAIN, REG_PORT = 'voice.example.com', 5071


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def log(msg):
    for line in str(msg).splitlines() or ['']:
        print('# ' + line, flush=True)


def sh(*argv, check_rc=True):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check_rc and p.returncode != 0:
        raise Failure('%s failed: %s' % (' '.join(argv), p.stderr.decode(errors='replace').strip()))
    return p.stdout.decode(errors='replace')


class Lab:
    def __init__(self):
        self.p = 'vsip%d' % (os.getpid() % 100000)
        self.ns = {k: '%s-%s' % (self.p, k) for k in ('ext', 'sbc', 'int')}
        self.procs = []
        self.tmp = None

    def nsx(self, ns, argv):
        return ['ip', 'netns', 'exec', self.ns[ns]] + argv

    def up(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix=self.p + '-')
        for ns in self.ns.values():
            sh('ip', 'netns', 'add', ns)
        e, s, i = self.ns['ext'], self.ns['sbc'], self.ns['int']
        # Created directly inside the namespaces: nothing appears in the root namespace.
        sh('ip', '-n', e, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'ext0', 'netns', s)
        sh('ip', '-n', i, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'int0', 'netns', s)
        sh('ip', '-n', e, 'addr', 'add', EXT_PEER + '/24', 'dev', 'eth0')
        sh('ip', '-n', s, 'addr', 'add', EXT_SBC + '/24', 'dev', 'ext0')
        sh('ip', '-n', s, 'addr', 'add', INT_SBC + '/24', 'dev', 'int0')
        sh('ip', '-n', i, 'addr', 'add', INT_PEER + '/24', 'dev', 'eth0')
        sh('ip', '-n', i, 'addr', 'add', INT_STRANGER + '/24', 'dev', 'eth0')
        for ns in self.ns.values():
            sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
            # No IPv6 on these links: no router solicitations or DAD in the captures.
            sh('ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1')
        for ns, dev in ((e, 'eth0'), (s, 'ext0'), (s, 'int0'), (i, 'eth0')):
            sh('ip', '-n', ns, 'link', 'set', dev, 'up')

    def down(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
            try:
                p.communicate(timeout=5)
            except Exception:
                pass
        for ns in self.ns.values():
            subprocess.run(['ip', 'netns', 'del', ns], stderr=subprocess.DEVNULL)
        if self.tmp and not os.environ.get('VEIL_KEEP_TMP'):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def macs(self, side):
        """MACs of the link on `side` ('ext' or 'int'): the peer's eth0 and the SBC's port."""
        out = []
        for ns, dev in ((side, 'eth0'), ('sbc', side + '0')):
            m = re.search(r'link/ether ([0-9a-f:]{17})', sh('ip', '-n', self.ns[ns], 'link', 'show', dev))
            check(m, 'no MAC for %s in %s' % (dev, ns))
            out.append(m.group(1))
        return out

    def popen(self, ns, argv, **kw):
        p = subprocess.Popen(self.nsx(ns, argv), **kw)
        self.procs.append(p)
        return p


class Harness:
    def __init__(self, lab, argv=None, name='harness'):
        exe = os.path.join(BUILD, 'tests', 'sip', 'b2bua_harness')
        check(os.access(exe, os.X_OK), 'harness not built: ' + exe)
        self.errpath = os.path.join(lab.tmp, name + '.log')
        self.err = open(self.errpath, 'wb')
        if argv is None:
            argv = ['--ext', EXT_SBC, '--int', INT_SBC,
                    '--pbx', '%s:%d' % (INT_PEER, PBX_PORT),
                    '--target', '%s:%d' % (EXT_PEER, TARGET_PORT),
                    '--ext-media', str(EXT_MEDIA_BASE), '--int-media', str(INT_MEDIA_BASE),
                    '--no-response-ms', '3000', '--allow-header', 'Subject',
                    '--min-se', '10', '--register-domain', REG_DOMAIN,
                    '--register-min-interval', '30']
        self.p = lab.popen('sbc', [exe] + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        check(self.readline(10) == 'ready', 'harness did not start: ' + self.log_text())

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        buf = b''
        while not buf.endswith(b'\n'):
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.p.stdout], [], [], max(left, 0))
            if not r:
                raise Failure('harness silent for %.0f s' % timeout)
            c = os.read(self.p.stdout.fileno(), 1)
            if not c:
                raise Failure('harness exited: ' + self.log_text())
            buf += c
        return buf.decode().strip()

    def log_text(self):
        self.err.flush()
        with open(self.errpath, 'rb') as f:
            return f.read().decode(errors='replace')[-3000:]

    def stats(self):
        self.p.stdin.write(b'stats\n')
        self.p.stdin.flush()
        return json.loads(self.readline(10))

    def wait_idle(self, timeout=8):
        """Polls until no call object is alive (the leak check); returns the stats."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if st['active_calls'] == 0 or time.monotonic() > deadline:
                return st
            time.sleep(0.1)

    def quit(self):
        self.p.stdin.write(b'quit\n')
        self.p.stdin.flush()
        st = json.loads(self.readline(10))
        rc = self.p.wait(timeout=10)
        return st, rc


def wait_listening(lab, ns, port, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = sh(*lab.nsx(ns, ['ss', '-Hulnp']))
        if re.search(r':%d\s' % port, out):
            return
        time.sleep(0.05)
    raise Failure('nothing listening on udp port %d in %s' % (port, ns))


def sipp(lab, ns, scenario, local_ip, local_port, remote=None, media_port=None, service='bob', timeout=20,
         extra=(), calls=1):
    argv = ['sipp', '-sf', os.path.join(SCEN, scenario), '-i', local_ip, '-p', str(local_port),
            '-m', str(calls), '-nostdin', '-timeout', str(timeout), '-timeout_error', '-s', service,
            '-trace_msg', '-message_file', os.path.join(lab.tmp, '%s-%s.msg' % (ns, scenario)),
            '-trace_err', '-error_file', os.path.join(lab.tmp, '%s-%s.err' % (ns, scenario))]
    if media_port:
        argv += ['-mp', str(media_port)]
    argv += list(extra)
    if remote:
        argv.append(remote)
    return lab.popen(ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(lab, p, what, timeout=25):
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        raise Failure('%s did not finish' % what)
    if p.returncode != 0:
        errs = ''
        for f in sorted(os.listdir(lab.tmp)):
            if f.endswith('.err') and os.path.getmtime(os.path.join(lab.tmp, f)) > time.time() - 30:
                with open(os.path.join(lab.tmp, f), errors='replace') as fh:
                    errs += f + ': ' + fh.read()[-1500:]
        raise Failure('%s exited %d: %s %s' % (what, p.returncode, err.decode(errors='replace')[-500:], errs))


class Capture:
    def __init__(self, lab, ns, dev, name):
        self.path = os.path.join(lab.tmp, name + '.pcap')
        self.p = lab.popen(ns, ['tcpdump', '-i', dev, '-n', '-s', '0', '-U', '--immediate-mode', '-Z', 'root', '-w', self.path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline, buf = time.monotonic() + 10, b''
        while b'listening on' not in buf:
            check(time.monotonic() < deadline and self.p.poll() is None, 'tcpdump did not start in ' + ns)
            r, _, _ = select.select([self.p.stderr], [], [], 0.5)
            if r:
                buf += os.read(self.p.stderr.fileno(), 4096)

    def stop(self):
        time.sleep(0.2)
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=5)
        return read_pcap(self.path)


def sip_messages(frames):
    """(src, dst, text) of every UDP SIP message in a capture."""
    out = []
    for f in frames:
        u = udp_of(f)
        if not u:
            continue
        src, sport, dst, dport, payload = u
        if payload.startswith(b'SIP/2.0') or re.match(rb'^[A-Z]+ sip:', payload):
            out.append((src, dst, payload.decode(errors='replace'), payload))
    return out


def headers_of(text):
    head = text.split('\r\n\r\n', 1)[0]
    return head.split('\r\n')


def call_ids(msgs):
    ids = set()
    for _, _, text, _ in msgs:
        m = re.search(r'^(?:Call-ID|i):\s*(\S+)', text, re.M | re.I)
        if m:
            ids.add(m.group(1))
    return ids


def sdp_of(text):
    parts = text.split('\r\n\r\n', 1)
    return parts[1] if len(parts) == 2 and 'v=0' in parts[1] else None


def audit(msgs, frames, side, st):
    """The topology-hiding assertions for one wire."""
    foreign_text = TRUSTED_PREFIX if side == 'ext' else UNTRUSTED_PREFIX
    foreign_bin = bytes([198, 51, 100]) if side == 'ext' else bytes([203, 0, 113])
    sbc = EXT_SBC if side == 'ext' else INT_SBC
    for f in frames:
        u = udp_of(f)
        if not u:
            continue
        payload = u[4]
        check(foreign_text.encode() not in payload,
              '%s wire: a %s address in a packet: %r' % (side, foreign_text, payload[:400]))
        check(foreign_bin not in payload, '%s wire: a binary %s address in a UDP payload' % (side, foreign_text))
    allocated = set()
    for pr in st['programs']:
        allocated.add(pr['ext_local'] if side == 'ext' else pr['in_local'])
    for src, dst, text, _ in msgs:
        if src != sbc:
            continue
        for h in headers_of(text)[1:]:
            name = h.split(':', 1)[0].strip().lower()
            check(name not in ('server', 'user-agent', 'warning', 'x-internal-route', 'x-caller-secret', 'record-route'),
                  '%s wire: header from the other leg crossed: %s' % (side, h))
        check(not re.search(r'InternalPBX|CallerPhone|Busy at pbx|Ringing at the PBX|OK from', text),
              '%s wire: text of the other leg crossed: %s' % (side, text[:300]))
        sdp = sdp_of(text)
        if sdp:
            for c in re.findall(r'^c=IN IP4 (\S+)', sdp, re.M):
                check(c == sbc, '%s wire: SDP c=%s is not the SBC' % (side, c))
            for o in re.findall(r'^o=(\S+) \S+ \S+ IN IP4 (\S+)', sdp, re.M):
                check(o == ('veil', sbc), '%s wire: SDP o= is %s' % (side, o))
            for port in re.findall(r'^m=audio (\d+) ', sdp, re.M):
                check('%s:%s' % (sbc, port) in allocated,
                      '%s wire: SDP port %s was not allocated by the anchor (%s)' % (side, port, sorted(allocated)))


# ------------------------------------------------------------------------------------------

def scenario_pair(lab, h, uas_ns, uas_scen, uas_ip, uas_port, uac_ns, uac_scen, uac_ip, uac_port, remote,
                  uac_media, uas_media, service='bob'):
    uas = sipp(lab, uas_ns, uas_scen, uas_ip, uas_port, media_port=uas_media)
    wait_listening(lab, uas_ns, uas_port)
    uac = sipp(lab, uac_ns, uac_scen, uac_ip, uac_port, remote=remote, media_port=uac_media, service=service)
    try:
        finish(lab, uac, 'sipp caller (%s)' % uac_scen)
        finish(lab, uas, 'sipp callee (%s)' % uas_scen)
    finally:
        for p in (uac, uas):
            if p.poll() is None:
                p.kill()
                p.wait()
    st = h.wait_idle()
    check(st['active_calls'] == 0, 'call objects left after %s: %d' % (uac_scen, st['active_calls']))
    return st


def programs_since(st, before):
    return st['programs'][len(before['programs']):]


def t_call_untrusted_to_pbx(lab, h, ctx):
    before = h.stats()
    st = scenario_pair(lab, h, 'int', 'uas_call.xml', INT_PEER, PBX_PORT, 'ext', 'uac_call.xml', EXT_PEER, 5061,
                       '%s:5060' % EXT_SBC, 16000, 17000)
    progs = programs_since(st, before)
    check(progs, 'no flows programmed')
    last = progs[-1]
    check(last['ext_remote'] == '%s:16000' % EXT_PEER, 'ext remote %s' % last['ext_remote'])
    check(last['in_remote'] == '%s:17000' % INT_PEER, 'in remote %s' % last['in_remote'])
    check(last['ext_local'].startswith(EXT_SBC + ':') and last['in_local'].startswith(INT_SBC + ':'),
          'locals %s %s' % (last['ext_local'], last['in_local']))
    check(progs[0]['in_remote'] == '', 'the offer already named an internal remote')
    check(last['id'] in st['removes'], 'flows of the call not removed')
    check(st['calls_answered'] == before['calls_answered'] + 1, 'answered counter')


def t_call_pbx_to_untrusted(lab, h, ctx):
    before = h.stats()
    st = scenario_pair(lab, h, 'ext', 'uas_call.xml', EXT_PEER, TARGET_PORT, 'int', 'uac_call.xml', INT_PEER, 5062,
                       '%s:5060' % INT_SBC, 17002, 16002)
    last = programs_since(st, before)[-1]
    check(last['in_remote'] == '%s:17002' % INT_PEER, 'in remote %s' % last['in_remote'])
    check(last['ext_remote'] == '%s:16002' % EXT_PEER, 'ext remote %s' % last['ext_remote'])
    check(last['id'] in st['removes'], 'flows not removed')


def t_cancel(lab, h, ctx):
    before = h.stats()
    st = scenario_pair(lab, h, 'int', 'uas_cancel.xml', INT_PEER, PBX_PORT, 'ext', 'uac_cancel.xml', EXT_PEER, 5063,
                       '%s:5060' % EXT_SBC, 16004, 17004)
    for pr in programs_since(st, before):
        check(pr['id'] in st['removes'], 'flows of the cancelled call not removed')
    check(st['calls_cancelled'] == before['calls_cancelled'] + 1 and st['calls_failed'] == before['calls_failed'],
          'cancelled %d -> %d, failed %d -> %d' % (before['calls_cancelled'], st['calls_cancelled'],
                                                  before['calls_failed'], st['calls_failed']))


def t_busy(lab, h, ctx):
    before = h.stats()
    scenario_pair(lab, h, 'int', 'uas_busy.xml', INT_PEER, PBX_PORT, 'ext', 'uac_busy.xml', EXT_PEER, 5064,
                  '%s:5060' % EXT_SBC, 16006, 17006)
    st = h.stats()
    check(st['calls_failed'] == before['calls_failed'] + 1, 'failed counter')
    ctx['busy_checked'] = True


def t_callee_bye(lab, h, ctx):
    scenario_pair(lab, h, 'int', 'uas_callee_bye.xml', INT_PEER, PBX_PORT, 'ext', 'uac_callee_bye.xml', EXT_PEER,
                  5065, '%s:5060' % EXT_SBC, 16008, 17008)


def t_hold_reinvite(lab, h, ctx):
    before = h.stats()
    st = scenario_pair(lab, h, 'int', 'uas_hold.xml', INT_PEER, PBX_PORT, 'ext', 'uac_hold.xml', EXT_PEER, 5067,
                       '%s:5060' % EXT_SBC, 16012, 17012)
    check(st['reinvites'] == before['reinvites'] + 1, 're-INVITE not relayed')
    progs = programs_since(st, before)
    check(len({p['id'] for p in progs}) == 1, 'a re-INVITE must keep the stream (same ports)')
    check(progs[-1]['ext_remote'] == '%s:16012' % EXT_PEER and progs[-1]['in_remote'] == '%s:17012' % INT_PEER,
          'remotes after the re-INVITE: %s' % progs[-1])


def t_refused_source(lab, h, ctx):
    before = h.stats()
    uac = sipp(lab, 'int', 'uac_refused.xml', INT_STRANGER, 5066, remote='%s:5060' % INT_SBC, media_port=17010)
    finish(lab, uac, 'sipp stranger')
    st = h.wait_idle()
    check(st['refused_source'] == before['refused_source'] + 1, 'refused counter')
    check(len(st['programs']) == len(before['programs']), 'a refused call programmed flows')


EXPECTED_ANSWERS = {
    'options': 'SIP/2.0 200 OK',                    # keepalive, answered by Veil, not relayed
    'unknown_method': 'SIP/2.0 501 Not Implemented',
    'refer': 'SIP/2.0 405 Method Not Allowed',      # refused deliberately (docs/topology-hiding.md)
    'message': 'SIP/2.0 405 Method Not Allowed',
    'subscribe': 'SIP/2.0 405 Method Not Allowed',
    'info_no_dialog': 'SIP/2.0 481 Call/Transaction Does Not Exist',    # nothing to relay it on
    'update_no_dialog': 'SIP/2.0 481 Call Does Not Exist',              # sofia-sip answers it itself
    'no_call_id': 'SIP/2.0 400 Bad Request',
    'bad_cseq': 'SIP/2.0 400 Bad CSeq Header',
    'cseq_method_mismatch': 'SIP/2.0 400 Bad Request',
    'invite_no_call_id': 'SIP/2.0 400 Bad Request',
    'session_interval_too_small': 'SIP/2.0 422 Session Interval Too Small',  # Min-SE 10 in this harness
    'invite_sdp_bomb': 'SIP/2.0 488 Not Acceptable Here',  # refused before sofia-sip's SDP parser
    'garbage': None,                                # cannot be answered: dropped and counted
    'bad_request_line': None,
    'oversized_tcp': 'SIP/2.0 413 Request Entity Too Large',
    'options_after': 'SIP/2.0 200 OK',              # still alive
}


def t_robustness(lab, h, ctx):
    """OPTIONS, unsupported and unknown methods, malformed and oversized requests, on both
    sides: each answer's status asserted, nothing relayed, no call object, harness alive."""
    before = h.stats()
    probe = os.path.join(SRC, 'tests', 'sip', 'sip_probe.py')
    for ns, local, sbc in (('ext', EXT_PEER, EXT_SBC), ('int', INT_PEER, INT_SBC)):
        p = lab.popen(ns, ['python3', probe, local, sbc, '5060'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=60)
        check(p.returncode == 0, 'probe in %s exited %d: %s' % (ns, p.returncode, err.decode(errors='replace')[-800:]))
        got = json.loads(out)
        check(got.get('stun_like') is None or not got['stun_like'].startswith('SIP/'),
              '%s side: a STUN-like datagram got a SIP answer: %r' % (ns, got.get('stun_like')))
        for case, want in EXPECTED_ANSWERS.items():
            check(got.get(case) == want, '%s side, %s: answered %r, expected %r' % (ns, case, got.get(case), want))
    st = h.wait_idle()
    check(h.p.poll() is None, 'harness died')
    check(st['active_calls'] == 0, 'call objects after the probes: %d' % st['active_calls'])
    # The SDP bomb (one per side) is an INVITE with a parsable header: a call that fails with 488.
    check(st['calls_total'] == before['calls_total'] + 2 and st['sdp_rejected'] == before['sdp_rejected'] + 2,
          'calls %d -> %d, sdp_rejected %d -> %d: only the two SDP bombs may start (and fail) calls'
          % (before['calls_total'], st['calls_total'], before['sdp_rejected'], st['sdp_rejected']))
    check(st['options_answered'] == before['options_answered'] + 4, 'options_answered %d -> %d'
          % (before['options_answered'], st['options_answered']))
    check(st['malformed_dropped'] >= before['malformed_dropped'] + 4, 'malformed_dropped %d -> %d'
          % (before['malformed_dropped'], st['malformed_dropped']))
    check(len(st['programs']) == len(before['programs']), 'the probes programmed flows')
    ctx['probed'] = True


def t_session_timer(lab, h, ctx):
    """RFC 4028: a caller asks for a 10 s session timer and refreshes nothing. Veil's 200
    carries Session-Expires: 10;refresher=uac and Require: timer (asserted by the sipp
    scenario); when the session expires Veil sends BYE to the caller and to the PBX."""
    before = h.stats()
    uas = sipp(lab, 'int', 'uas_call.xml', INT_PEER, PBX_PORT, media_port=17014, timeout=90)
    wait_listening(lab, 'int', PBX_PORT)
    t0 = time.monotonic()
    uac = sipp(lab, 'ext', 'uac_session_timer.xml', EXT_PEER, 5068, remote='%s:5060' % EXT_SBC,
               media_port=16014, timeout=90)
    try:
        finish(lab, uac, 'sipp caller (uac_session_timer.xml)', timeout=90)
        took = time.monotonic() - t0
        finish(lab, uas, 'sipp callee (uas_call.xml)', timeout=10)
    finally:
        for p in (uac, uas):
            if p.poll() is None:
                p.kill()
                p.wait()
    log('session timer: BYE %.1f s after the INVITE' % took)
    check(took >= 5, 'BYE after only %.1f s' % took)
    st = h.wait_idle()
    check(st['active_calls'] == 0, 'call objects left: %d' % st['active_calls'])
    check(st['calls_answered'] == before['calls_answered'] + 1, 'answered counter')


def run_pair(lab, uas_ns, uas_scen, uas_ip, uas_port, uac_ns, uac_scen, uac_ip, uac_port, remote, service):
    uas = sipp(lab, uas_ns, uas_scen, uas_ip, uas_port)
    wait_listening(lab, uas_ns, uas_port)
    # The digest uri is the Request-URI (sip:<domain>), as a real phone computes it (sipp's
    # default would be the address it sends to).
    uac = sipp(lab, uac_ns, uac_scen, uac_ip, uac_port, remote=remote, service=service,
               extra=('-auth_uri', service))
    try:
        finish(lab, uac, 'sipp %s' % uac_scen)
        finish(lab, uas, 'sipp %s' % uas_scen)
    finally:
        for p in (uac, uas):
            if p.poll() is None:
                p.kill()
                p.wait()


def t_register_and_call(lab, h, ctx):
    """Issue 3 item 4. A client registers through Veil: the PBX challenges (401, digest),
    the client's credentials cross and the PBX verifies them (sipp verifyauth), 200 grants
    120 s to Veil's own Contact. A refresh 0.3 s later is answered by Veil (throttling: the
    PBX sees no third REGISTER). The PBX then calls Veil's Contact and the call reaches the
    client at the address and port it registered from (its Contact names another address).
    Un-REGISTER is relayed and removes the binding; the PBX's next INVITE to that Contact
    gets 480."""
    before = h.stats()
    check(before['bindings'] == 0, 'bindings before: %d' % before['bindings'])
    run_pair(lab, 'int', 'uas_registrar.xml', INT_PEER, PBX_PORT, 'ext', 'uac_register.xml', EXT_PEER, REG_PORT,
             '%s:5060' % EXT_SBC, REG_DOMAIN)
    st = h.stats()
    check(st['bindings'] == 1, 'bindings after REGISTER: %d' % st['bindings'])
    check(st['registers_received'] == before['registers_received'] + 3, 'registers_received %d -> %d'
          % (before['registers_received'], st['registers_received']))
    check(st['registers_relayed'] == before['registers_relayed'] + 2, 'registers_relayed %d -> %d'
          % (before['registers_relayed'], st['registers_relayed']))
    check(st['registers_throttled'] == before['registers_throttled'] + 1, 'refresh not answered locally')
    with open(os.path.join(lab.tmp, 'int-uas_registrar.xml.msg'), errors='replace') as f:
        m = re.search(r'Contact:\s*<sip:(veil-[0-9a-f]{16})@' + re.escape(INT_SBC), f.read(), re.I)
    check(m, 'no Veil Contact in the REGISTER the PBX received')
    token = m.group(1)
    ctx['reg_token'] = token

    # The PBX calls Veil's Contact: the call reaches the client's flow (203.0.113.10:5071).
    before = h.stats()
    st = scenario_pair(lab, h, 'ext', 'uas_call.xml', EXT_PEER, REG_PORT, 'int', 'uac_call.xml', INT_PEER, 5062,
                       '%s:5060' % INT_SBC, 17020, 16020, service=token)
    last = programs_since(st, before)[-1]
    check(last['ext_remote'] == '%s:16020' % EXT_PEER, 'ext remote %s' % last['ext_remote'])
    check(st['calls_answered'] == before['calls_answered'] + 1, 'call to the registered client not answered')

    # Un-REGISTER: relayed, binding removed.
    before = h.stats()
    run_pair(lab, 'int', 'uas_unregister.xml', INT_PEER, PBX_PORT, 'ext', 'uac_unregister.xml', EXT_PEER, REG_PORT,
             '%s:5060' % EXT_SBC, REG_DOMAIN)
    st = h.stats()
    check(st['bindings'] == 0, 'bindings after un-REGISTER: %d' % st['bindings'])
    check(st['registers_removed'] == before['registers_removed'] + 1, 'registers_removed')

    # The PBX calls the removed contact: 480, nothing reaches the untrusted side.
    before = h.stats()
    uac = sipp(lab, 'int', 'uac_unregistered.xml', INT_PEER, 5062, remote='%s:5060' % INT_SBC, service=token)
    finish(lab, uac, 'sipp PBX calling an unregistered contact')
    st = h.wait_idle()
    check(st['calls_failed'] == before['calls_failed'] + 1, 'failed counter')
    check(len(st['programs']) == len(before['programs']), 'a call to an unregistered contact programmed flows')
    ctx['registered'] = True


def t_register_expiry(lab, h, ctx):
    """A client asks for 2 s: Veil raises the Expires it sends to its minimum (60, asserted
    by the PBX scenario), the PBX grants 2 s, the client is told 2 s. Without a refresh the
    binding is swept and the PBX's INVITE to Veil's Contact gets 480."""
    before = h.stats()
    run_pair(lab, 'int', 'uas_register_short.xml', INT_PEER, PBX_PORT, 'ext', 'uac_register_short.xml', EXT_PEER,
             REG_PORT + 1, '%s:5060' % EXT_SBC, REG_DOMAIN)
    st = h.stats()
    check(st['bindings'] == before['bindings'] + 1, 'bindings after REGISTER: %d' % st['bindings'])
    with open(os.path.join(lab.tmp, 'int-uas_register_short.xml.msg'), errors='replace') as f:
        m = re.search(r'Contact:\s*<sip:(veil-[0-9a-f]{16})@', f.read(), re.I)
    check(m, 'no Veil Contact in the REGISTER the PBX received')
    deadline = time.monotonic() + 6
    while h.stats()['bindings'] != before['bindings'] and time.monotonic() < deadline:
        time.sleep(0.2)
    st = h.stats()
    check(st['bindings'] == before['bindings'], 'binding not swept after its expiry')
    check(st['registers_expired'] == before['registers_expired'] + 1, 'registers_expired')
    uac = sipp(lab, 'int', 'uac_unregistered.xml', INT_PEER, 5062, remote='%s:5060' % INT_SBC, service=m.group(1))
    finish(lab, uac, 'sipp PBX calling an expired contact')
    st = h.wait_idle()
    check(st['calls_failed'] == before['calls_failed'] + 1, 'failed counter')


BLACKHOLE = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print('bound', flush=True)
n = 0
while True:
    data, _ = s.recvfrom(65535)
    n += 1
    print(data.split(b' ', 1)[0].decode(errors='replace'), flush=True)
"""


def unreachable_call(lab, h, port, media):
    """One INVITE from the untrusted side toward a PBX that does not answer: (seconds until the
    caller had its 503, stats after)."""
    before = h.stats()
    t0 = time.monotonic()
    uac = sipp(lab, 'ext', 'uac_pbx_unreachable.xml', EXT_PEER, port, remote='%s:5060' % EXT_SBC,
               media_port=media)
    finish(lab, uac, 'sipp caller toward an unreachable PBX', timeout=20)
    took = time.monotonic() - t0
    st = h.wait_idle()
    check(st['active_calls'] == 0, 'call objects left: %d' % st['active_calls'])
    check(st['calls_failed'] == before['calls_failed'] + 1, 'failed counter %d -> %d'
          % (before['calls_failed'], st['calls_failed']))
    progs = programs_since(st, before)
    check(progs, 'the offer programmed no flows')
    for pr in progs:
        check(pr['id'] in st['removes'], 'flows of the failed call not removed: %s' % pr)
    check(st['live_flows'] == 0 and not st['live_ports'], 'media left: flows %d ports %s'
          % (st['live_flows'], st['live_ports']))
    return took, before, st


def t_pbx_unreachable(lab, h, ctx):
    """Issue 3: PBX unreachable. (a) Nothing listens on the PBX's port (ICMP port unreachable):
    the caller gets 503 quickly. (b) The PBX host swallows every datagram (a listener that
    never answers): Veil gives up after no_response_timeout_ms (3000 in this harness) and
    answers 503, well before the 32 s of timer B. Both times: no call object, the offer's
    flows removed and its ports released."""
    took, _, _ = unreachable_call(lab, h, 5072, 16030)
    log('PBX port closed: 503 after %.2f s' % took)
    check(took < 3.0 + 1.5, '503 after %.1f s with nothing listening' % took)

    bh = lab.popen('int', ['python3', '-c', BLACKHOLE, INT_PEER, str(PBX_PORT)], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    try:
        check(bh.stdout.readline().strip() == b'bound', 'blackhole did not bind')
        took, before, st = unreachable_call(lab, h, 5073, 16032)
        log('PBX silent: 503 after %.2f s' % took)
        check(2.5 <= took < 3.0 + 1.5, '503 after %.1f s (no_response_timeout_ms is 3000)' % took)
        check(st['no_response_timeouts'] == before['no_response_timeouts'] + 1, 'no_response_timeouts')
    finally:
        bh.kill()
        out, _ = bh.communicate(timeout=5)
    got = out.decode(errors='replace').split()
    log('the silent PBX received: %s' % got)
    check(got.count('INVITE') >= 2, 'the INVITE did not reach the silent PBX (or was not retransmitted): %s' % got)
    ctx['unreachable'] = True


def auth_call(lab, h, uas_scen, uac_scen, port, media):
    before = h.stats()
    uas = sipp(lab, 'int', uas_scen, INT_PEER, PBX_PORT, media_port=media + 1000)
    wait_listening(lab, 'int', PBX_PORT)
    uac = sipp(lab, 'ext', uac_scen, EXT_PEER, port, remote='%s:5060' % EXT_SBC, media_port=media,
               extra=('-auth_uri', REG_DOMAIN))
    try:
        finish(lab, uac, 'sipp caller (%s)' % uac_scen)
        finish(lab, uas, 'sipp PBX (%s)' % uas_scen)
    finally:
        for p in (uac, uas):
            if p.poll() is None:
                p.kill()
                p.wait()
    st = h.wait_idle()
    check(st['active_calls'] == 0, 'call objects left: %d' % st['active_calls'])
    check(st['auth_challenges'] == before['auth_challenges'] + 1, 'auth_challenges')
    check(st['calls_answered'] == before['calls_answered'] + 1, 'the authenticated call was not answered')
    check(st['calls_total'] == before['calls_total'] + 1, 'the retry counted as a new call: %d -> %d'
          % (before['calls_total'], st['calls_total']))
    for pr in programs_since(st, before):
        check(pr['id'] in st['removes'], 'flows not removed: %s' % pr)


def t_invite_auth(lab, h, ctx):
    """A PBX that challenges calls, 401 (WWW-Authenticate) then 407 (Proxy-Authenticate), each
    with its realm, nonce and opaque: the challenge reaches the caller verbatim (asserted by the
    caller's scenario and the wire audit), the caller's retry (same Call-ID and From tag, CSeq
    2, credentials) is re-originated on the same B2BUA call: toward the PBX the same Call-ID
    (sipp's PBX matches the retry to the challenged call by it) and From tag, a higher CSeq
    (wire audit). The PBX verifies the 401 digest (sipp verifyauth, alice / s3cret; digest
    uri = the PBX's domain) and checks the 407 credentials' fields, then answers 200."""
    auth_call(lab, h, 'uas_auth.xml', 'uac_auth.xml', 5074, 16040)
    auth_call(lab, h, 'uas_auth407.xml', 'uac_auth407.xml', 5075, 16042)
    ctx['invite_auth'] = True


def t_challenge_names_pbx(lab, h, ctx):
    """A PBX whose digest realm is its own IP address (a realm taken from the To domain when
    register_domain is not set): Veil does not relay the challenge (the client's digest covers
    the realm, so it cannot be rewritten); the caller gets 503, never the realm, and the
    challenges_withheld counter says why (the wire audit checks the caller's wire)."""
    before = h.stats()
    scenario_pair(lab, h, 'int', 'uas_auth_ip_realm.xml', INT_PEER, PBX_PORT, 'ext', 'uac_pbx_unreachable.xml',
                  EXT_PEER, 5077, '%s:5060' % EXT_SBC, 16044, 17044)
    st = h.stats()
    check(st['challenges_withheld'] == before['challenges_withheld'] + 1 and
          st['auth_challenges'] == before['auth_challenges'],
          'withheld %d -> %d, relayed %d -> %d' % (before['challenges_withheld'], st['challenges_withheld'],
                                                  before['auth_challenges'], st['auth_challenges']))
    check('digest challenge names a trusted-side address' in h.log_text(), 'no log line about the withheld realm')


def t_early_media_100rel(lab, h, ctx):
    """Issue 3: provisional responses, early media and PRACK. The PBX answers with a reliable
    183 (Require: 100rel, RSeq 7) carrying SDP, then a 200 without SDP. Veil PRACKs it on the
    PBX's leg itself (RAck: 7 <its CSeq> INVITE), sends the caller its own reliable 183 (Veil's
    RSeq, rewritten SDP naming the SBC) and answers the caller's PRACK on the caller's leg;
    RSeq/RAck never cross. The early answer programs the flows with the PBX's media endpoint
    before the 200, and the caller's 200 repeats the answer."""
    before = h.stats()
    uas = sipp(lab, 'int', 'uas_100rel.xml', INT_PEER, PBX_PORT, media_port=17050)
    wait_listening(lab, 'int', PBX_PORT)
    uac = sipp(lab, 'ext', 'uac_100rel.xml', EXT_PEER, 5076, remote='%s:5060' % EXT_SBC, media_port=16050)
    try:
        finish(lab, uac, 'sipp caller (uac_100rel.xml)')
        finish(lab, uas, 'sipp PBX (uas_100rel.xml)')
    finally:
        for p in (uac, uas):
            if p.poll() is None:
                p.kill()
                p.wait()
    st = h.wait_idle()
    check(st['active_calls'] == 0, 'call objects left: %d' % st['active_calls'])
    check(st['calls_answered'] == before['calls_answered'] + 1, 'not answered')
    check(st['early_media'] == before['early_media'] + 1, 'early_media %d -> %d'
          % (before['early_media'], st['early_media']))
    check(st['reliable_provisionals'] == before['reliable_provisionals'] + 1, 'reliable_provisionals')
    progs = programs_since(st, before)
    check(len(progs) >= 2, 'programs: %s' % progs)
    check(progs[0]['in_remote'] == '' and progs[1]['in_remote'] == '%s:17050' % INT_PEER,
          'the early answer did not program the PBX\'s media endpoint: %s' % progs)
    check(progs[1]['ext_remote'] == '%s:16050' % EXT_PEER, 'ext remote %s' % progs[1]['ext_remote'])
    for pr in progs:
        check(pr['id'] in st['removes'], 'flows not removed: %s' % pr)
    ctx['early_media'] = True

    # A caller without 100rel (uac_call.xml: no Supported header): the PBX's reliable 183 is
    # PRACKed by Veil on the PBX's leg and reaches the caller unreliably (no Require, no RSeq),
    # with the early SDP; the caller's 200 carries the answer again (the PBX's 200 has none).
    before = h.stats()
    st = scenario_pair(lab, h, 'int', 'uas_100rel.xml', INT_PEER, PBX_PORT, 'ext', 'uac_call.xml', EXT_PEER, 5079,
                       '%s:5060' % EXT_SBC, 16052, 17052)
    check(st['calls_answered'] == before['calls_answered'] + 1, 'not answered')
    check(st['early_media'] == before['early_media'] + 1, 'early_media')
    check(st['reliable_provisionals'] == before['reliable_provisionals'], 'a reliable 183 to a caller without 100rel')
    progs = programs_since(st, before)
    check(progs[-1]['in_remote'] == '%s:17052' % INT_PEER and progs[-1]['ext_remote'] == '%s:16052' % EXT_PEER,
          'flows: %s' % progs[-1])
    ctx['early_media_plain'] = True
    # A packet of this call can still reach the PBX's port after its sipp has exited; sofia-sip
    # reports the ICMP "port unreachable" to every transaction toward that address, which would
    # fail the next test's INVITE with 503. Let it pass before the next scenario starts.
    time.sleep(3)


def t_early_update(lab, h, ctx):
    """RFC 3311 5.1: UPDATE in the early dialog. After the reliable 183 and its PRACK the
    caller sends UPDATE with a new offer (another port, sendonly): Veil relays it as its own
    UPDATE in the PBX's early dialog (asserted by the PBX's scenario: a=sendonly, Veil's
    address), the PBX's answer (recvonly) comes back rewritten; the flows follow the new port
    before the 200, and the call is then answered and ends normally."""
    before = h.stats()
    st = scenario_pair(lab, h, 'int', 'uas_early_update.xml', INT_PEER, PBX_PORT, 'ext', 'uac_early_update.xml',
                       EXT_PEER, 5078, '%s:5060' % EXT_SBC, 16060, 17060)
    check(st['calls_answered'] == before['calls_answered'] + 1, 'not answered')
    check(st['early_updates'] == before['early_updates'] + 1 and st['updates'] == before['updates'] + 1,
          'early_updates %d -> %d' % (before['early_updates'], st['early_updates']))
    progs = programs_since(st, before)
    check(any(pr['ext_remote'] == '%s:16070' % EXT_PEER for pr in progs),
          'the early UPDATE did not move the caller\'s media to port 16070: %s' % progs)
    for pr in progs:
        check(pr['id'] in st['removes'], 'flows not removed: %s' % pr)
    ctx['early_update'] = True


def t_update_info(lab, h, ctx):
    """RFC 3311 UPDATE and INFO across legs in an established call. The caller holds with an
    UPDATE (a=sendonly): the PBX gets an UPDATE naming Veil's trusted address, its a=recvonly
    answer reaches the caller rewritten. An INFO with a DTMF relay body crosses as it is; an INFO
    with another body type gets 415 and crosses nothing. The PBX then moves its media with an
    UPDATE: the caller's UPDATE names Veil's untrusted address, and the stream's flows follow the
    PBX's new port (same stream, same SBC ports)."""
    before = h.stats()
    st = scenario_pair(lab, h, 'int', 'uas_update_info.xml', INT_PEER, PBX_PORT, 'ext', 'uac_update_info.xml',
                       EXT_PEER, 5077, '%s:5060' % EXT_SBC, 16060, 17060)
    check(st['updates'] == before['updates'] + 2, 'updates %d -> %d' % (before['updates'], st['updates']))
    check(st['infos'] == before['infos'] + 1, 'infos %d -> %d' % (before['infos'], st['infos']))
    progs = programs_since(st, before)
    check(len({p['id'] for p in progs}) == 1, 'UPDATE must keep the stream: %s' % progs)
    check(progs[-1]['in_remote'] == '%s:17062' % INT_PEER and progs[-1]['ext_remote'] == '%s:16060' % EXT_PEER,
          'remotes after the PBX\'s UPDATE: %s' % progs[-1])
    check(progs[-1]['id'] in st['removes'], 'flows not removed')
    ctx['update_info'] = True


def t_late_offer(lab, h, ctx):
    """Late offer: the caller's INVITE has no SDP; Veil's INVITE to the PBX has none either.
    The PBX's 200 carries the offer: it reaches the caller rewritten (Veil's untrusted address,
    an allocated port) and the flows get the PBX's endpoint; the caller's ACK carries the answer:
    Veil's ACK to the PBX carries it rewritten and the flows get the caller's endpoint then."""
    before = h.stats()
    st = scenario_pair(lab, h, 'int', 'uas_late_offer.xml', INT_PEER, PBX_PORT, 'ext', 'uac_late_offer.xml',
                       EXT_PEER, 5078, '%s:5060' % EXT_SBC, 16070, 17070)
    check(st['late_offers'] == before['late_offers'] + 1, 'late_offers')
    check(st['calls_answered'] == before['calls_answered'] + 1, 'not answered')
    progs = programs_since(st, before)
    check(len(progs) == 2, 'programs: %s' % progs)
    check(progs[0]['in_remote'] == '%s:17070' % INT_PEER and progs[0]['ext_remote'] == '',
          'flows at the 200\'s offer: %s' % progs[0])
    check(progs[1]['in_remote'] == '%s:17070' % INT_PEER and progs[1]['ext_remote'] == '%s:16070' % EXT_PEER,
          'flows at the ACK\'s answer: %s' % progs[1])
    check(progs[1]['id'] in st['removes'], 'flows not removed')
    ctx['late_offer'] = True


def wait_listening_tcp(lab, ns, port, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r':%d\s' % port, sh(*lab.nsx(ns, ['ss', '-Htlnp']))):
            return
        time.sleep(0.05)
    raise Failure('nothing listening on tcp port %d in %s' % (port, ns))


def t_register_two_devices_tcp(lab, h, ctx):
    """Two devices register the same AOR (dave): one over UDP, one over TCP. Veil keeps both
    (bindings keyed by AOR and the device's Call-ID) and registers each with a Contact of its
    own toward the PBX (two veil-<hex> users, two Call-IDs), so the PBX sees two contacts and
    forks as it likes. A PBX call to one device's Veil Contact reaches that device (UDP); a
    PBX call to the AOR user itself goes to the device registered last: over TCP, to the
    address and port it registered from."""
    before = h.stats()
    pbx = sipp(lab, 'int', 'uas_registrar_multi.xml', INT_PEER, PBX_PORT, calls=2)
    wait_listening(lab, 'int', PBX_PORT)
    try:
        a = sipp(lab, 'ext', 'uac_register_dev.xml', EXT_PEER, 5083, remote='%s:5060' % EXT_SBC, service=REG_DOMAIN)
        finish(lab, a, 'device A (UDP) REGISTER')
        b = sipp(lab, 'ext', 'uac_register_dev.xml', EXT_PEER, 5084, remote='%s:5060' % EXT_SBC, service=REG_DOMAIN,
                 extra=('-t', 't1'))
        finish(lab, b, 'device B (TCP) REGISTER')
        finish(lab, pbx, 'PBX registrar')
    finally:
        if pbx.poll() is None:
            pbx.kill()
            pbx.wait()
    st = h.stats()
    check(st['bindings'] == before['bindings'] + 2, 'bindings %d -> %d' % (before['bindings'], st['bindings']))
    check(st['registers_relayed'] == before['registers_relayed'] + 2, 'registers_relayed')
    with open(os.path.join(lab.tmp, 'int-uas_registrar_multi.xml.msg'), errors='replace') as f:
        trace = f.read()
    tokens = re.findall(r'^Contact:\s*<sip:(veil-[0-9a-f]{16})@', trace, re.M | re.I)
    ids = set(re.findall(r'^Call-ID:\s*(\S+)', trace, re.M | re.I))
    check(len(set(tokens)) == 2 and len(ids) == 2, 'REGISTERs at the PBX: contacts %s, Call-IDs %s' % (tokens, ids))
    ctx['two_devices'] = tokens

    # The PBX calls device A's Veil Contact: device A (UDP, 5083) answers.
    before = h.stats()
    st = scenario_pair(lab, h, 'ext', 'uas_call.xml', EXT_PEER, 5083, 'int', 'uac_call.xml', INT_PEER, 5062,
                       '%s:5060' % INT_SBC, 17080, 16080, service=tokens[0])
    check(programs_since(st, before)[-1]['ext_remote'] == '%s:16080' % EXT_PEER, 'device A not reached')

    # The PBX calls the AOR: the device registered last (B, over TCP from port 5084) answers.
    before = h.stats()
    uas = sipp(lab, 'ext', 'uas_call_tcp.xml', EXT_PEER, 5084, media_port=16082, extra=('-t', 't1'))
    wait_listening_tcp(lab, 'ext', 5084)
    uac = sipp(lab, 'int', 'uac_call.xml', INT_PEER, 5062, remote='%s:5060' % INT_SBC, media_port=17082,
               service='dave')
    try:
        finish(lab, uac, 'PBX calling the AOR')
        finish(lab, uas, 'device B (TCP) answering')
    finally:
        for p in (uac, uas):
            if p.poll() is None:
                p.kill()
                p.wait()
    st = h.wait_idle()
    check(st['calls_answered'] == before['calls_answered'] + 1, 'the call to the AOR was not answered')
    check(programs_since(st, before)[-1]['ext_remote'] == '%s:16082' % EXT_PEER, 'device B not reached')


EXT_SBC_TLS, INT_SBC_TLS, TLS_PORT = '203.0.113.2', '198.51.100.2', 5061


def openssl_cert(lab, name, cn, san):
    cert, key = os.path.join(lab.tmp, name + '.crt'), os.path.join(lab.tmp, name + '.key')
    sh('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
       '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=' + cn, '-addext', 'subjectAltName=' + san)
    return cert, key


def t_tls_client_auth(lab, h, ctx):
    """Mutual TLS on the trusted side (tls_client_auth "internal"): a third B2BUA instance on
    203.0.113.3 / 198.51.100.3. A PBX connecting with a certificate that chains to tls_ca_file
    gets 200 to OPTIONS; without a certificate, or with one the CA file does not vouch for, the
    handshake is refused and no SIP is answered. The untrusted side asks no certificate: a
    phone without one gets 200. Then "all": the phone without a certificate is refused too."""
    ext3, int3 = '203.0.113.3', '198.51.100.3'
    for ns, dev, addr in (('sbc', 'ext0', ext3), ('sbc', 'int0', int3)):
        sh('ip', '-n', lab.ns[ns], 'addr', 'add', addr + '/24', 'dev', dev)
    sbc_cert, sbc_key = openssl_cert(lab, 'sbc3', 'sbc.example', 'DNS:sbc.example,IP:%s,IP:%s' % (ext3, int3))
    pbx_cert, pbx_key = openssl_cert(lab, 'pbx3', 'pbx.example', 'DNS:pbx.example,IP:' + INT_PEER)
    rogue_cert, rogue_key = openssl_cert(lab, 'rogue3', 'pbx.example', 'DNS:pbx.example,IP:' + INT_PEER)
    phone_cert, phone_key = openssl_cert(lab, 'phone3', 'phone.example', 'DNS:phone.example,IP:' + EXT_PEER)
    # The CA file vouches for the PBX's and the phone's (self-signed) certificates.
    ca = os.path.join(lab.tmp, 'clients3.pem')
    with open(ca, 'w') as out:
        for path in (pbx_cert, phone_cert):
            with open(path) as f:
                out.write(f.read())
    peer = os.path.join(SRC, 'tests', 'sip', 'sip_tls_peer.py')

    def options(ns, local, target, cert=None, key=None):
        argv = ['python3', peer, 'options', local, target, str(TLS_PORT), sbc_cert, 'sbc.example']
        if cert:
            argv += [cert, key]
        p = lab.popen(ns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=20)
        try:
            return json.loads(out)
        except ValueError:
            raise Failure('TLS OPTIONS peer printed %r %r' % (out[-300:], err[-300:]))

    for policy in ('internal', 'all'):
        h3 = Harness(lab, ['--ext', ext3, '--int', int3, '--pbx', '%s:5060' % INT_PEER, '--tls-port', str(TLS_PORT),
                           '--tls-cert', sbc_cert, '--tls-key', sbc_key, '--tls-ca', ca, '--tls-client-auth', policy,
                           '--ext-media', '23000', '--int-media', '33000'], name='harness-mtls-' + policy)
        try:
            r = options('int', INT_PEER, int3, pbx_cert, pbx_key)
            log('mutual TLS (%s): PBX with its certificate: %s' % (policy, r))
            check(r.get('final') == 'SIP/2.0 200 OK', '%s: the PBX with a good certificate got %s' % (policy, r))
            r = options('int', INT_PEER, int3)
            log('mutual TLS (%s): PBX without a certificate: %s' % (policy, r))
            check('error' in r and 'final' not in r, '%s: a PBX without a certificate got %s' % (policy, r))
            r = options('int', INT_PEER, int3, rogue_cert, rogue_key)
            log('mutual TLS (%s): PBX with a certificate the CA file does not hold: %s' % (policy, r))
            check('error' in r and 'final' not in r, '%s: a PBX with a rogue certificate got %s' % (policy, r))
            r = options('ext', EXT_PEER, ext3)
            log('mutual TLS (%s): phone without a certificate: %s' % (policy, r))
            if policy == 'internal':
                check(r.get('final') == 'SIP/2.0 200 OK', 'internal: the untrusted side asked the phone for a '
                      'certificate: %s' % r)
            else:
                check('error' in r and 'final' not in r, 'all: a phone without a certificate got %s' % r)
                r = options('ext', EXT_PEER, ext3, phone_cert, phone_key)
                check(r.get('final') == 'SIP/2.0 200 OK', 'all: the phone with its certificate got %s' % r)
        finally:
            st, rc = h3.quit()
        check(rc == 0 and st['callback_exceptions'] == 0, 'mutual TLS harness (%s) exit %d' % (policy, rc))


def t_tls_both_sides(lab, h, ctx):
    """SIP over TLS on both sides (sofia-sip's tls transport on OpenSSL). A second B2BUA
    instance on 203.0.113.2 / 198.51.100.2 listens for TLS on 5061 with a certificate from its
    configuration and reaches the PBX over TLS (pbx_transport tls), verifying the PBX's
    certificate against the configured CA file. A TLS client (Python ssl: Debian's sipp has no
    TLS) verifies Veil's certificate, gets 200 to OPTIONS, calls over TLS; the PBX (a TLS server)
    receives Veil's INVITE over TLS with Veil's trusted address in its SDP and Via; 200, ACK and
    BYE cross; no call or media state is left. Then a PBX with a certificate the CA file does not
    vouch for: Veil refuses the session and the caller gets 503. Then a client registers over TLS,
    Veil registers it at the TLS PBX (Contact on Veil's TLS port, ;transport=tls), the PBX calls
    that Contact and the call reaches the client over its own TLS connection."""
    for ns, dev, addr in (('sbc', 'ext0', EXT_SBC_TLS), ('sbc', 'int0', INT_SBC_TLS)):
        sh('ip', '-n', lab.ns[ns], 'addr', 'add', addr + '/24', 'dev', dev)
    sbc_cert, sbc_key = openssl_cert(lab, 'sbc', 'sbc.example', 'DNS:sbc.example,IP:' + EXT_SBC_TLS)
    pbx_cert, pbx_key = openssl_cert(lab, 'pbx', 'pbx.example', 'DNS:pbx.example,IP:' + INT_PEER)
    h2 = Harness(lab, ['--ext', EXT_SBC_TLS, '--int', INT_SBC_TLS, '--pbx', '%s:%d' % (INT_PEER, TLS_PORT),
                       '--pbx-transport', 'tls', '--tls-port', str(TLS_PORT), '--tls-cert', sbc_cert,
                       '--tls-key', sbc_key, '--tls-ca', pbx_cert, '--ext-media', '22000',
                       '--int-media', '32000', '--no-response-ms', '3000', '--register-domain', REG_DOMAIN],
                 name='harness-tls')
    try:
        # The key directory sofia-sip needed is gone once the agents are up.
        left = [f for f in os.listdir('/tmp') if f.startswith('veil-sip-tls-')]
        check(not left, 'TLS key directories left in /tmp: %s' % left)
        peer = os.path.join(SRC, 'tests', 'sip', 'sip_tls_peer.py')
        pbx = lab.popen('int', ['python3', peer, 'uas', INT_PEER, str(TLS_PORT), pbx_cert, pbx_key, '17090'],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(b'listening' in pbx.stdout.readline(), 'TLS PBX did not start')
        uac = lab.popen('ext', ['python3', peer, 'uac', EXT_PEER, EXT_SBC_TLS, str(TLS_PORT), sbc_cert,
                                'sbc.example', '16090'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out_c, err_c = uac.communicate(timeout=30)
        log('TLS caller: %s' % out_c.decode(errors='replace').strip()[:600])
        try:
            out_p, err_p = pbx.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pbx.kill()
            out_p, err_p = pbx.communicate()
            log('TLS harness log: ' + h2.log_text())
            raise Failure('the TLS PBX did not finish: %s %s' % (out_p[-800:], err_p[-500:]))
        log('TLS PBX: %s' % out_p.decode(errors='replace').strip()[:600])
        check(uac.returncode == 0, 'TLS caller exited %d: %s %s' % (uac.returncode, out_c[-800:], err_c[-500:]))
        check(pbx.returncode == 0, 'TLS PBX exited %d: %s %s' % (pbx.returncode, out_p[-800:], err_p[-500:]))
        c, p = json.loads(out_c), json.loads(out_p.splitlines()[-1])
        check(c['peer_subject'].get('commonName') == 'sbc.example', 'Veil presented %s' % c['peer_subject'])
        check(c['final'] == 'SIP/2.0 200 OK', 'caller final %s' % c['final'])
        check('c=IN IP4 %s\r\n' % EXT_SBC_TLS in c['sdp'] and INT_PEER not in c['sdp'], 'caller SDP %r' % c['sdp'])
        check(';transport=tls' in c['contact'].lower() or c['contact'].lower().startswith('<sips:'),
              'Veil\'s Contact toward the TLS caller: %s' % c['contact'])
        check(all(v.upper().startswith('SIP/2.0/TLS %s' % INT_SBC_TLS) for v in p['invite_via']) and
              len(p['invite_via']) == 1, 'Via at the PBX: %s' % p['invite_via'])
        check(p['invite_contact'] == '<sip:%s:%d;transport=tls>' % (INT_SBC_TLS, TLS_PORT),
              'Veil\'s Contact toward the TLS PBX: %s' % p['invite_contact'])
        check('c=IN IP4 %s\r\n' % INT_SBC_TLS in p['invite_sdp'] and EXT_PEER not in p['invite_sdp'],
              'PBX SDP %r' % p['invite_sdp'])
        st = h2.wait_idle()
        check(st['active_calls'] == 0 and st['calls_answered'] == 1, 'TLS harness: %s' % {
            k: st[k] for k in ('active_calls', 'calls_answered', 'calls_failed')})

        # A PBX whose certificate does not chain to tls_ca_file: Veil refuses the TLS session,
        # the caller gets 503 and the PBX never sees a SIP message.
        rogue_cert, rogue_key = openssl_cert(lab, 'rogue', 'pbx.example', 'DNS:pbx.example,IP:' + INT_PEER)
        pbx = lab.popen('int', ['python3', peer, 'uas', INT_PEER, str(TLS_PORT), rogue_cert, rogue_key, '17092'],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(b'listening' in pbx.stdout.readline(), 'rogue TLS PBX did not start')
        uac = lab.popen('ext', ['python3', peer, 'uac', EXT_PEER, EXT_SBC_TLS, str(TLS_PORT), sbc_cert,
                                'sbc.example', '16092'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out_c, _ = uac.communicate(timeout=30)
        pbx.kill()
        out_p, _ = pbx.communicate(timeout=10)
        log('TLS caller toward a rogue PBX: %s' % out_c.decode(errors='replace').strip()[:300])
        c = json.loads(out_c)
        check(c.get('final') == 'SIP/2.0 503 Service Unavailable', 'caller toward a rogue PBX: %s' % c)
        check(b'INVITE' not in out_p, 'the rogue PBX received SIP: %s' % out_p[-300:])
        st = h2.wait_idle()
        check(st['active_calls'] == 0 and st['calls_failed'] == 1, 'TLS harness after the rogue PBX: %s' % {
            k: st[k] for k in ('active_calls', 'calls_answered', 'calls_failed')})

        # A client registering over TLS (Veil relays the REGISTER to the PBX over TLS); the
        # PBX calls the Contact Veil registered; Veil calls the client over the client's own
        # TLS connection (its flow is TLS: the Via said so).
        pbx = lab.popen('int', ['python3', peer, 'pbx-registrar', INT_PEER, str(TLS_PORT), pbx_cert, pbx_key, '17094'],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(b'listening' in pbx.stdout.readline(), 'TLS registrar did not start')
        cl = lab.popen('ext', ['python3', peer, 'reg-client', EXT_PEER, EXT_SBC_TLS, str(TLS_PORT), sbc_cert,
                               'sbc.example', '16094', REG_DOMAIN], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out_p, err_p = pbx.communicate(timeout=30)
        out_c, err_c = cl.communicate(timeout=10)
        log('TLS registrar: %s' % out_p.decode(errors='replace').strip()[-600:])
        log('TLS client: %s' % out_c.decode(errors='replace').strip()[-600:])
        check(pbx.returncode == 0 and cl.returncode == 0, 'TLS registration: PBX %d, client %d: %s %s'
              % (pbx.returncode, cl.returncode, err_p[-300:], err_c[-300:]))
        p, c = json.loads(out_p.splitlines()[-1]), json.loads(out_c.splitlines()[-1])
        check(re.match(r'<sip:veil-[0-9a-f]{16}@%s:%d;transport=tls>' % (re.escape(INT_SBC_TLS), TLS_PORT),
                       p['register_contact']), 'Veil\'s Contact at the PBX: %s' % p['register_contact'])
        check(c['invite'].startswith('INVITE sip:dave@%s:' % EXT_PEER) and 'transport=tls' in c['invite'],
              'the INVITE the client got: %s' % c['invite'])
        check('c=IN IP4 %s\r\n' % EXT_SBC_TLS in c['invite_sdp'], 'client SDP %r' % c['invite_sdp'])
        st = h2.wait_idle()
        check(st['active_calls'] == 0 and st['calls_answered'] == 2, 'TLS harness after the registered call: %s' % {
            k: st[k] for k in ('active_calls', 'calls_answered', 'calls_failed', 'bindings')})
    finally:
        st, rc = h2.quit()
    check(rc == 0 and st['live_flows'] == 0 and not st['live_ports'] and st['callback_exceptions'] == 0,
          'TLS harness exit %d, flows %d, ports %s' % (rc, st['live_flows'], st['live_ports']))


def t_reinvite_without_sdp(lab, h, ctx):
    """A re-INVITE without SDP (RFC 4028 refresh, or a peer asking for an offer) is answered on
    its own leg: Veil's 200 offers the SDP it last sent there (its untrusted address, the same
    port), the caller's ACK answers with a new media port and the flows follow; the PBX sees no
    re-INVITE and the call goes on."""
    before = h.stats()
    st = scenario_pair(lab, h, 'int', 'uas_call.xml', INT_PEER, PBX_PORT, 'ext', 'uac_reinvite_nosdp.xml',
                       EXT_PEER, 5080, '%s:5060' % EXT_SBC, 16100, 17100)
    check(st['reinvites'] == before['reinvites'], 'the re-INVITE without SDP was relayed')
    progs = programs_since(st, before)
    check(len({p['id'] for p in progs}) == 1, 'one stream: %s' % progs)
    check(progs[-1]['ext_remote'] == '%s:16102' % EXT_PEER and progs[-1]['in_remote'] == '%s:17100' % INT_PEER,
          'flows after the ACK\'s answer: %s' % progs[-1])
    check(progs[-1]['id'] in st['removes'], 'flows not removed')


# t_early_update runs first: right after t_early_media_100rel's second call it failed now and
# then with 503, the PBX port's ICMP "port unreachable" for a packet of the previous scenario
# (sent after that PBX exited) being reported by sofia-sip's transport to the new INVITE to the
# same address. That order keeps the adjacencies the suite has always run with.
TESTS = [t_early_update, t_call_untrusted_to_pbx, t_call_pbx_to_untrusted, t_cancel, t_busy, t_callee_bye, t_hold_reinvite,
         t_refused_source, t_robustness, t_session_timer, t_register_and_call,
         t_register_expiry, t_pbx_unreachable, t_invite_auth, t_challenge_names_pbx,
         t_early_media_100rel, t_update_info, t_late_offer, t_register_two_devices_tcp,
         t_tls_both_sides, t_tls_client_auth, t_reinvite_without_sdp]


def main():
    if os.geteuid() != 0 or not shutil.which('sipp') or not shutil.which('tcpdump'):
        print('1..0 # SKIP needs root, sipp and tcpdump')
        return 0
    lab = Lab()

    def on_signal(signum, frame):
        lab.down()
        sys.exit(1)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(WATCHDOG_S)
    only = os.environ.get('VEIL_SIP_ONLY')  # e.g. t_register_and_call, while developing
    tests = [t for t in TESTS if not only or t.__name__ in only.split(',')]
    n = len(tests) + 2
    print('1..%d' % n, flush=True)
    failed = 0
    try:
        lab.up()
        h = Harness(lab)
        cap_ext = Capture(lab, 'ext', 'eth0', 'ext')
        cap_int = Capture(lab, 'int', 'eth0', 'int')
        ctx = {}
        for i, t in enumerate(tests, 1):
            try:
                t(lab, h, ctx)
                print('ok %d - %s' % (i, t.__name__), flush=True)
            except Exception as e:
                failed += 1
                print('not ok %d - %s' % (i, t.__name__), flush=True)
                log(e if isinstance(e, Failure) else traceback.format_exc())
                log('harness log:\n' + h.log_text())
        fx, fi = cap_ext.stop(), cap_int.stop()
        st, rc = h.quit()
        # Wire audit over everything the scenarios sent.
        try:
            mx, mi = sip_messages(fx), sip_messages(fi)
            check(mx and mi, 'no SIP captured (ext %d, int %d)' % (len(mx), len(mi)))
            audit(mx, fx, 'ext', st)
            audit(mi, fi, 'int', st)
            ids_x, ids_i = call_ids(mx), call_ids(mi)
            check(ids_x and ids_i and not (ids_x & ids_i), 'Call-IDs shared between legs: %s' % (ids_x & ids_i))
            if not only:  # checks of the call scenarios (all run)
                # 486 reached the caller with the standard phrase, not the PBX's.
                statuses = [t.split('\r\n', 1)[0] for s, d, t, _ in mx if s == EXT_SBC and t.startswith('SIP/2.0 486')]
                check(statuses and all(s == 'SIP/2.0 486 Busy Here' for s in statuses), '486 lines: %s' % statuses)
                check(any(s == EXT_SBC and t.startswith('SIP/2.0 487 Request Terminated') for s, d, t, _ in mx),
                      'no 487 to the cancelling caller')
                check(any(s == INT_SBC and t.startswith('CANCEL ') for s, d, t, _ in mi), 'no CANCEL toward the PBX')
                check(any(s == EXT_SBC and t.startswith('BYE ') for s, d, t, _ in mx), 'no BYE toward the caller')
                check(any(s == INT_SBC and t.startswith('SIP/2.0 403 Forbidden') for s, d, t, _ in mi),
                      'no 403 to the stranger')
                # Hold crossed: the PBX saw a=sendonly in a re-INVITE, the caller a=recvonly, and
                # the o= version of each leg went up by one.
                check(any(s == INT_SBC and t.startswith('INVITE ') and 'a=sendonly' in t for s, d, t, _ in mi),
                      'no hold re-INVITE toward the PBX')
                check(any(s == EXT_SBC and t.startswith('SIP/2.0 200') and 'a=recvonly' in t for s, d, t, _ in mx),
                      'no hold answer toward the caller')
                # OPTIONS and the other probes stay on the leg they arrived on.
                check(not any(s in (EXT_SBC, INT_SBC) and re.match(r'(OPTIONS|FOO|REFER|MESSAGE|SUBSCRIBE) ', t)
                              for s, d, t, _ in mx + mi), 'Veil relayed a probe request')
            if ctx.get('registered'):
                # The PBX saw the initial REGISTER, the authenticated one and the un-REGISTER:
                # the throttled refresh never crossed.
                regs = {(re.search(r'^Call-ID:\s*(\S+)', t, re.M | re.I).group(1),
                         re.search(r'^CSeq:\s*(\d+)', t, re.M | re.I).group(1))
                        for s, d, t, _ in mi if s == INT_SBC and t.startswith('REGISTER ') and
                        re.search(r'^To:[^\r\n]*sip:alice@', t, re.M | re.I)}
                check(len(regs) == 3, 'REGISTER transactions toward the PBX: %s' % sorted(regs))
                check(all('Authorization: Digest' in t for s, d, t, _ in mi
                          if s == INT_SBC and t.startswith('REGISTER ') and re.search(r'^CSeq:\s*2 ', t, re.M)),
                      'the client\'s Authorization did not reach the PBX')
                check(any(s == EXT_SBC and t.startswith('SIP/2.0 401 Unauthorized') and
                          'nonce="6f1c0a7d2b3e4f5061728394a5b6c7d8"' in t for s, d, t, _ in mx),
                      'the PBX\'s challenge did not reach the client')
                # The call reached the client's flow (not the 203.0.113.99 of its Contact), to
                # the user of its Contact; Veil's veil-<hex> Contact user stays on the trusted side.
                check(any(s == EXT_SBC and d == EXT_PEER and t.startswith('INVITE sip:alice@%s:%d ' % (EXT_PEER, REG_PORT))
                          for s, d, t, _ in mx), 'no INVITE toward the registered client\'s flow')
                check(not any(ctx['reg_token'] in t for s, d, t, _ in mx), 'Veil\'s Contact user on the untrusted side')
            if ctx.get('invite_auth'):
                # Toward the PBX: each challenged INVITE and its retry share Call-ID and From
                # tag, the retry's CSeq is higher and it carries the caller's credentials.
                invs = [t for s, d, t, _ in mi if s == INT_SBC and t.startswith('INVITE ')]

                def hv(t, name):
                    m = re.search(r'^%s:\s*([^\r\n]*)' % name, t, re.M | re.I)
                    return m.group(1) if m else None
                tag = lambda t: re.search(r';tag=([^;\s]+)', hv(t, 'From')).group(1)  # noqa: E731
                for header in ('Authorization', 'Proxy-Authorization'):
                    authed = [t for t in invs if hv(t, header) and hv(t, header).startswith('Digest ')]
                    check(authed, 'no INVITE with %s toward the PBX' % header)
                    a = authed[0]
                    first = [t for t in invs if hv(t, 'Call-ID') == hv(a, 'Call-ID') and not hv(t, header)]
                    check(first, '%s: the retry has a Call-ID of its own toward the PBX' % header)
                    check(tag(first[0]) == tag(a), '%s: From tag changed for the retry' % header)
                    c1, c2 = (int(hv(t, 'CSeq').split()[0]) for t in (first[0], a))
                    check(c2 > c1, '%s: CSeq %d then %d' % (header, c1, c2))
                for code, needle in (('401 Unauthorized', 'WWW-Authenticate: Digest realm="voice.example.com"'),
                                     ('407 Proxy Authentication Required',
                                      'Proxy-Authenticate: Digest realm="voice.example.com"')):
                    check(any(s == EXT_SBC and t.startswith('SIP/2.0 %s\r\n' % code) and needle in t and
                              'nonce="a1b2c3d4e5f60718293a4b5c6d7e8f90"' in t for s, d, t, _ in mx),
                          'the PBX\'s %s with its challenge did not reach the caller' % code)
            if ctx.get('early_media'):
                # The PBX's leg: Veil's PRACK acknowledges the PBX's RSeq 7; the caller's leg:
                # Veil's reliable 183 with its own RSeq and the rewritten SDP; the caller's
                # PRACK stays on the caller's leg.
                pracks = [t for s, d, t, _ in mi if s == INT_SBC and t.startswith('PRACK ')]
                check(len(pracks) == 1 + bool(ctx.get('early_media_plain')) + bool(ctx.get('early_update')) and
                      all(re.search(r'^RAck: 7 \d+ INVITE\r$', p, re.M) for p in pracks),
                      'PRACKs toward the PBX: %s' % [p[:300] for p in pracks])
                e183 = [t for s, d, t, _ in mx if s == EXT_SBC and t.startswith('SIP/2.0 183 Session Progress\r\n')
                        and '%s:5076;' % EXT_PEER in t]
                check(e183 and all(re.search(r'^Require: 100rel\r$', t, re.M) and re.search(r'^RSeq: \d+\r$', t, re.M)
                                   and sdp_of(t) for t in e183), 'the caller\'s 183: %s' % [t[:400] for t in e183])
                check(not any(s == INT_SBC and t.startswith('SIP/2.0 200') and re.search(r'^CSeq: \d+ PRACK', t, re.M)
                              for s, d, t, _ in mi), 'Veil answered a PRACK on the PBX side')
            if ctx.get('update_info'):
                check(any(s == INT_SBC and t.startswith('INFO ') and 'Content-Type: application/dtmf-relay' in t and
                          t.endswith('Signal=5\r\nDuration=160\r\n') for s, d, t, _ in mi),
                      'no DTMF INFO toward the PBX')
                check(not any('x-private-state' in t for s, d, t, _ in mi), 'a refused INFO body crossed')
                check(any(s == EXT_SBC and t.startswith('SIP/2.0 415 Unsupported Media Type\r\n') for s, d, t, _ in mx),
                      'no 415 for the refused INFO')
                check(any(s == EXT_SBC and t.startswith('UPDATE ') and sdp_of(t) for s, d, t, _ in mx),
                      'no UPDATE toward the caller')
                check(any(s == INT_SBC and t.startswith('UPDATE ') and 'a=sendonly' in t for s, d, t, _ in mi),
                      'no hold UPDATE toward the PBX')
            if ctx.get('late_offer'):
                # Veil's ACK to the PBX carries the answer; no other in-dialog request does.
                check(any(s == INT_SBC and t.startswith('ACK ') and sdp_of(t) for s, d, t, _ in mi),
                      'no ACK with the answer toward the PBX')
                check(not any(s == INT_SBC and t.startswith('BYE ') and sdp_of(t) for s, d, t, _ in mi),
                      'a BYE toward the PBX carries SDP')
            if ctx.get('early_media_plain'):
                plain = [t for s, d, t, _ in mx if s == EXT_SBC and t.startswith('SIP/2.0 183 ') and
                         '%s:5079;' % EXT_PEER in t]
                check(plain and all(sdp_of(t) and 'Require:' not in t and 'RSeq:' not in t for t in plain),
                      'no unreliable 183 with SDP to the caller without 100rel')
                check(any(s == EXT_SBC and t.startswith('SIP/2.0 200 ') and re.search(r'^CSeq: 1 INVITE\r$', t, re.M)
                          and sdp_of(t) and '%s:5079;' % EXT_PEER in t for s, d, t, _ in mx),
                      'no 200 with SDP to the caller without 100rel')
            if ctx.get('unreachable'):
                check(any(s == EXT_SBC and t.startswith('SIP/2.0 503 Service Unavailable\r\n')
                          for s, d, t, _ in mx), 'no 503 to the caller of an unreachable PBX')
            # The operators' tool over both captures, every scenario above included: on the
            # untrusted wire no trusted address (any form: text, binary, hex, reverse DNS...)
            # or MAC of the trusted link; on the trusted wire no untrusted address or MAC. (The
            # PBX's bait texts are checked per message above: the untrusted peers run the
            # same sipp scenarios, so a name rule would flag their own packets.)
            for cap, forbid, macs in ((cap_ext, ['198.51.100.0/24'], lab.macs('int')),
                                      (cap_int, ['203.0.113.0/24'], lab.macs('ext'))):
                argv = [sys.executable, os.path.join(SRC, 'tools', 'veil-leak-audit.py'), cap.path]
                for f in forbid:
                    argv += ['--forbid', f]
                for m in macs:
                    argv += ['--forbid-mac', m]
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                check(r.returncode == 0, 'veil-leak-audit on %s exited %d: %s %s'
                      % (os.path.basename(cap.path), r.returncode, r.stdout.decode(errors='replace')[:2000],
                         r.stderr.decode(errors='replace')[-500:]))
            print('ok %d - wire audit (%d + %d SIP messages)' % (n - 1, len(mx), len(mi)), flush=True)
        except Exception as e:
            failed += 1
            print('not ok %d - wire audit' % (n - 1), flush=True)
            log(e if isinstance(e, Failure) else traceback.format_exc())
        try:
            check(rc == 0 and st['active_calls'] == 0, 'harness exit %d, calls %d' % (rc, st['active_calls']))
            check(st['live_flows'] == 0 and not st['live_ports'] and st['bad_releases'] == 0,
                  'media left: flows %d ports %s bad releases %d' % (st['live_flows'], st['live_ports'],
                                                                     st['bad_releases']))
            check(st['callback_exceptions'] == 0, 'exceptions in callbacks')
            print('ok %d - no call or media state left (%d calls)' % (n, st['calls_total']), flush=True)
        except Exception as e:
            failed += 1
            print('not ok %d - no call or media state left' % n, flush=True)
            log(e)
    except Exception:
        log(traceback.format_exc())
        failed += 1
    finally:
        signal.alarm(0)
        lab.down()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
