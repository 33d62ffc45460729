"""Harness shared by Veil's end-to-end tests (Python 3 standard library only).

Each test file builds its own lab with tools/veil-lab.sh (namespaces <lab>-sbc, <lab>-ext,
<lab>-int, veild inside <lab>-sbc on DPDK af_packet ports), runs peers inside the host
namespaces with `ip netns exec`, and always takes the lab down again: on success, on
failure, on an exception, on SIGTERM/SIGINT (meson's timeout) and on its own watchdog.

Usage from a test file:

    from lab import Lab, check, run_tests
    def test_something(lab): ...
    sys.exit(run_tests('media', [test_something, ...]))

Arguments: SOURCE_DIR BUILD_DIR (or VEIL_SOURCE_DIR / VEIL_BUILD_DIR; default: this
checkout and its build/).
"""
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

# Addresses of the lab (tools/veil-lab.sh).
EXT_HOST4, EXT_HOST6 = '203.0.113.10', '2001:db8:1::10'
INT_HOST4, INT_HOST6 = '198.51.100.10', '2001:db8:2::10'
EXT_VEIL4, EXT_VEIL6 = '203.0.113.1', '2001:db8:1::1'
INT_VEIL4, INT_VEIL6 = '198.51.100.1', '2001:db8:2::1'

WATCHDOG_S = 240  # fail (and clean up) well before meson's 300 s timeout


class Failure(Exception):
    """An assertion about user-visible behaviour did not hold."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def log(msg):
    """Diagnostics: TAP comments (meson runs these tests with protocol 'tap')."""
    for line in str(msg).splitlines() or ['']:
        print('# ' + line, flush=True)


def tap(line):
    print(line, flush=True)


def dirs():
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.environ.get('VEIL_SOURCE_DIR') or os.path.normpath(os.path.join(here, '..', '..'))
    build = os.environ.get('VEIL_BUILD_DIR') or os.path.join(src, 'build')
    if len(sys.argv) >= 3:
        src, build = sys.argv[1], sys.argv[2]
    return os.path.abspath(src), os.path.abspath(build)


class Proc:
    """A process started in a namespace; output collected at the end."""

    def __init__(self, lab, argv, desc, kill_pattern=None, persistent=False):
        """kill_pattern: a string unique to this process's command line, for daemons that fork
        workers (kamailio): kill() also kills every process whose command line has it.
        persistent: it serves several tests (a PBX) and is killed when the lab goes down."""
        self.desc = desc
        self.kill_pattern = kill_pattern
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = self.err = None
        self._head = b''  # stdout read while it runs (early_output)
        (lab._persistent_procs if persistent else lab._procs).append(self)

    def early_output(self):
        """What the process has printed so far (non-blocking); also part of .out later."""
        r, _, _ = select.select([self.p.stdout], [], [], 0)
        if r:
            self._head += os.read(self.p.stdout.fileno(), 4096)
        return self._head

    def wait(self, timeout):
        try:
            self.out, self.err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.out, self.err = self.p.communicate()
            raise Failure('%s did not finish within %.0f s; stderr: %s'
                          % (self.desc, timeout, self.err.decode(errors='replace').strip()))
        finally:
            self.out = self._head + (self.out or b'')
        return self.p.returncode

    def json(self, timeout):
        rc = self.wait(timeout)
        text = self.out.decode(errors='replace').strip()
        check(rc == 0, '%s exited %d; stderr: %s' % (self.desc, rc, self.err.decode(errors='replace').strip()))
        try:
            return json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            raise Failure('%s printed no JSON report: %r' % (self.desc, text))

    def kill(self):
        if self.kill_pattern:
            subprocess.run(['pkill', '-KILL', '-f', '--', self.kill_pattern], capture_output=True)
        if self.p.poll() is None:
            try:
                self.p.kill()
            except ProcessLookupError:
                pass
        try:
            self.p.communicate(timeout=5)
        except Exception:
            pass


class Capture:
    """tcpdump on eth0 of a host namespace, written to a pcap file."""

    def __init__(self, lab, host, path, persistent=False):
        self.path = path
        argv = lab.ns_argv(host, ['tcpdump', '-i', 'eth0', '-n', '-s', '0', '-U', '--immediate-mode',
                                       '-Z', 'root', '-w', path])
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        (lab._persistent if persistent else lab._captures).append(self)
        # tcpdump says "listening on eth0" once the capture is active.
        deadline = time.monotonic() + 10
        buf = b''
        while b'listening on' not in buf:
            left = deadline - time.monotonic()
            check(left > 0 and self.p.poll() is None,
                  'tcpdump in %s did not start: %s' % (host, buf.decode(errors='replace')))
            r, _, _ = select.select([self.p.stderr], [], [], left)
            if r:
                chunk = os.read(self.p.stderr.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
        check(b'listening on' in buf, 'tcpdump in %s did not start: %s' % (host, buf.decode(errors='replace')))

    def stop(self):
        if self.p.poll() is None:
            time.sleep(0.3)  # let the last packets in flight be written
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return read_pcap(self.path)


def read_pcap(path):
    """Returns the frames of a pcap file as a list of bytes (classic pcap, any byte order)."""
    with open(path, 'rb') as f:
        data = f.read()
    check(len(data) >= 24, 'capture %s is empty (%d bytes)' % (path, len(data)))
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        end = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        end = '>'
    else:
        raise Failure('capture %s is not a pcap file (magic %s)' % (path, magic.hex()))
    linktype = struct.unpack(end + 'I', data[20:24])[0]
    check(linktype == 1, 'capture %s: link type %d, expected Ethernet' % (path, linktype))
    frames, off = [], 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + 'IIII', data[off:off + 16])
        off += 16
        frames.append(data[off:off + incl])
        off += incl
    return frames


def udp_of(frame):
    """(src_ip, sport, dst_ip, dport, payload) of an Ethernet/IPv4|IPv6/UDP frame, else None."""
    if len(frame) < 14:
        return None
    et = struct.unpack('!H', frame[12:14])[0]
    if et == 0x0800 and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        if frame[23] != 17:
            return None
        src, dst = socket.inet_ntop(socket.AF_INET, frame[26:30]), socket.inet_ntop(socket.AF_INET, frame[30:34])
        l4 = 14 + ihl
    elif et == 0x86DD and len(frame) >= 62:
        if frame[20] != 17:
            return None
        src, dst = socket.inet_ntop(socket.AF_INET6, frame[22:38]), socket.inet_ntop(socket.AF_INET6, frame[38:54])
        l4 = 54
    else:
        return None
    if len(frame) < l4 + 8:
        return None
    sport, dport = struct.unpack('!HH', frame[l4:l4 + 4])
    return src, sport, dst, dport, frame[l4 + 8:]


def find_leaks(frames, needles):
    """[(frame index, needle name)] for every frame containing one of the named byte strings."""
    hits = []
    for i, fr in enumerate(frames):
        for name, pat in needles.items():
            if pat in fr:
                hits.append((i, name))
    return hits


def addr_needles(v4, v6, mac):
    """Raw and text forms of a host's identity, as they could appear in a frame."""
    n = {
        v4 + ' (raw)': socket.inet_pton(socket.AF_INET, v4),
        v4 + ' (text)': v4.encode(),
        v6 + ' (raw)': socket.inet_pton(socket.AF_INET6, v6),
        v6 + ' (text)': v6.encode(),
        'MAC ' + mac: bytes.fromhex(mac.replace(':', '')),
    }
    return n


def audit_wires(lab, captures):
    """Stops the lab hosts' captures ({'ext': Capture, 'int': Capture}) and audits each wire:
    tools/veil-leak-audit.py (the other side's prefixes in every form: text, binary, hex,
    reverse DNS, IPv4 inside IPv6...; its host's MAC) and the raw/text addresses of the other
    host. Raises Failure on a leak; returns {host: frames} for further checks."""
    frames = {h: c.stop() for h, c in captures.items()}
    check(frames, 'no captures')
    macs = {h: lab.mac(h) for h in ('ext', 'int')}
    needles = {'int': addr_needles(EXT_HOST4, EXT_HOST6, macs['ext']),
               'ext': addr_needles(INT_HOST4, INT_HOST6, macs['int'])}
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
    for host, fr in frames.items():
        other = 'int' if host == 'ext' else 'ext'
        prefixes = ['198.51.100.0/24', '2001:db8:2::/48'] if host == 'ext' else ['203.0.113.0/24', '2001:db8:1::/48']
        argv = [sys.executable, os.path.join(root, 'tools', 'veil-leak-audit.py'), captures[host].path,
                '--forbid-mac', macs[other]]
        for pfx in prefixes:
            argv += ['--forbid', pfx]
        r = subprocess.run(argv, capture_output=True, text=True)
        log('  %s host capture: %d frames; veil-leak-audit: %s'
            % (host, len(fr), (r.stdout.strip().splitlines() or [''])[-1]))
        check(r.returncode == 0, 'veil-leak-audit on the %s host\'s capture exited %d: %s %s'
              % (host, r.returncode, r.stdout[:2000], r.stderr[-500:]))
        leaks = find_leaks(fr, needles[host])
        if leaks:
            i, what = leaks[0]
            raise Failure('%d frame(s) on the %s host\'s wire carry the other host\'s identity; first: frame %d '
                          'contains %s: %r' % (len(leaks), host, i, what, fr[i][:400]))
    return frames


class Lab:
    def __init__(self, tag):
        self.src, self.build = dirs()
        self.name = 'e2e%s%d' % (tag[:1], os.getpid())  # short: it names namespaces and devices
        self.sbc, self.ext, self.int = self.name + '-sbc', self.name + '-ext', self.name + '-int'
        self.sock = '/run/veil-lab-%s/veil.sock' % self.name
        self.script = os.path.join(self.src, 'tools', 'veil-lab.sh')
        self.veilctl = os.path.join(self.build, 'tools', 'veilctl')
        self.veild = os.path.join(self.build, 'controlplane', 'veild')
        self.rtp_peer = os.path.join(self.src, 'tools', 'rtp-peer.py')
        self.tmp = tempfile.mkdtemp(prefix='veil-%s-' % self.name)
        self._procs = []
        self._captures = []
        self._persistent = []  # captures that span several tests
        self._persistent_procs = []  # processes that do (a PBX)
        self._is_up = False
        self._down_done = False

    # --- lab lifetime -------------------------------------------------------------------

    def env(self):
        e = dict(os.environ)
        e['VEIL_LAB'] = self.name
        e['VEIL_BUILD'] = self.build
        return e

    def up(self):
        self._is_up = True  # even a failed "up" may leave namespaces behind
        r = subprocess.run([self.script, 'up'], env=self.env(), capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, 'tools/veil-lab.sh up failed (exit %d):\n%s%s'
              % (r.returncode, r.stdout, r.stderr))
        log('lab %s up' % self.name)

    def kill_children(self, persistent=False):
        for c in self._captures + (self._persistent if persistent else []):
            if c.p.poll() is None:
                c.p.kill()
                c.p.wait()
        for p in self._procs + (self._persistent_procs if persistent else []):
            p.kill()

    def down(self):
        if self._down_done:
            return
        self._down_done = True
        self.kill_children(persistent=True)
        if self._is_up:
            log_path = '/run/veil-lab-%s/veild.log' % self.name
            self.veild_log = ''
            try:
                with open(log_path) as f:
                    self.veild_log = f.read()
            except OSError:
                pass
            r = subprocess.run([self.script, 'down'], env=self.env(), capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                log('warning: veil-lab.sh down exited %d: %s%s' % (r.returncode, r.stdout, r.stderr))
            left = [ns for ns in (self.sbc, self.ext, self.int) if ns in netns_list()]
            if left:
                log('warning: namespaces left behind: %s' % ' '.join(left))
            else:
                log('lab %s down' % self.name)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def down_detached(self):
        """From a signal handler: hand the teardown to a process outside our process group
        (meson SIGKILLs the group 0.5 s after SIGTERM)."""
        self.kill_children(persistent=True)
        if self._is_up and not self._down_done:
            self._down_done = True
            subprocess.Popen(['/bin/sh', '-c', '"$0" down >/dev/null 2>&1; rm -rf "$1"', self.script, self.tmp],
                             env=self.env(), start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # --- running things -----------------------------------------------------------------

    def ns(self, host):
        return {'ext': self.ext, 'int': self.int, 'sbc': self.sbc}[host]

    def ns_argv(self, host, argv):
        return ['ip', 'netns', 'exec', self.ns(host)] + list(argv)

    def sh(self, host, argv, timeout=30):
        return subprocess.run(self.ns_argv(host, argv), capture_output=True, text=True, timeout=timeout)

    def ctl_raw(self, *args, sock=None, json_out=False):
        argv = [self.veilctl, '-s', sock or self.sock] + (['--json'] if json_out else []) + list(args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=20)

    def ctl(self, *args):
        """veilctl --json ARGS, which must succeed; returns the parsed answer."""
        r = self.ctl_raw(*args, json_out=True)
        check(r.returncode == 0, 'veilctl %s exited %d: %s' % (' '.join(args), r.returncode, r.stderr.strip()))
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise Failure('veilctl --json %s printed invalid JSON (%s): %r' % (' '.join(args), e, r.stdout[:500]))

    def events(self):
        return self.ctl('stats')['events']

    def drops(self):
        return {row['reason']: row['packets'] for row in self.ctl('drops')}

    def flow(self, fid):
        return self.ctl('flow', str(fid))

    def flow_add(self, **kw):
        return self.ctl('flow-add', *flow_args(kw))

    def flow_update(self, **kw):
        return self.ctl('flow-update', *flow_args(kw))

    def peer(self, host, bind, send_to=None, count=100, interval=0.005, delay=0.5, duration=0,
             ssrc=0x5EED0001, linger=1.0, desc=None):
        argv = [sys.executable, self.rtp_peer, '--bind', bind, '--linger', str(linger)]
        if send_to:
            argv += ['--send-to', send_to, '--count', str(count), '--interval', str(interval),
                     '--delay', str(delay), '--ssrc', hex(ssrc)]
        else:
            argv += ['--duration', str(duration)]
        return Proc(self, self.ns_argv(host, argv), desc or 'rtp-peer on %s host (%s)' % (host, bind))

    def python(self, host, code, *args, desc=None):
        """Runs a small Python program inside a namespace (background)."""
        return Proc(self, self.ns_argv(host, [sys.executable, '-c', code] + [str(a) for a in args]),
                    desc or 'python in %s' % host)

    def send_udp(self, host, src, dst, payload, count=1, interval=0.002):
        code = ('import socket,sys,time\n'
                'def ep(t):\n'
                '    if t.startswith("["): h,p=t[1:].split("]:")\n'
                '    else: h,p=t.rsplit(":",1)\n'
                '    return h,int(p)\n'
                's_=ep(sys.argv[1]); d=ep(sys.argv[2])\n'
                'fam=socket.AF_INET6 if ":" in s_[0] else socket.AF_INET\n'
                's=socket.socket(fam,socket.SOCK_DGRAM); s.bind(s_)\n'
                'for i in range(int(sys.argv[4])):\n'
                '    s.sendto(bytes.fromhex(sys.argv[3]),d); time.sleep(float(sys.argv[5]))\n')
        p = self.python(host, code, src, dst, payload.hex(), count, interval, desc='UDP sender in %s' % host)
        rc = p.wait(30)
        check(rc == 0, 'UDP sender in %s failed: %s' % (host, p.err.decode(errors='replace')))

    def mac(self, host):
        r = self.sh(host, ['cat', '/sys/class/net/eth0/address'])
        check(r.returncode == 0, 'cannot read the MAC of eth0 in %s' % host)
        return r.stdout.strip()

    def capture(self, host, label, persistent=False):
        return Capture(self, host, os.path.join(self.tmp, '%s-%s.pcap' % (label, host)), persistent)


def flow_args(kw):
    out = []
    for k, v in kw.items():
        out.append('%s=%s' % (k.replace('_', '-'), v))
    return out


def netns_list():
    r = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def wait_for(what, fn, timeout, interval=0.1):
    """Polls fn() until it returns a true value; returns it or raises Failure(what)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Failure('%s (waited %.1f s)' % (what, timeout))
        time.sleep(interval)


def rtp_ok(report, who, expect, source):
    """The common assertions on an rtp-peer report."""
    check(report['bad'] == 0, '%s: %d packet(s) with a damaged payload or header: %s' % (who, report['bad'], report))
    check(report['received'] >= expect, '%s: received %d of %d packets: %s'
          % (who, report['received'], expect, report))
    check(list(report['sources']) == [source], '%s: saw sources %s, expected only %s'
          % (who, report['sources'], source))


class _Interrupted(BaseException):
    pass


def run_tests(tag, tests):
    """Creates the lab, runs each test function against it, always removes the lab. Prints
    TAP (one test point per scenario, diagnostics as comments) and a summary line.
    Returns the exit status (0 all passed, 1 a failure)."""
    names = [fn.__name__[5:] if fn.__name__.startswith('test_') else fn.__name__ for fn in tests]
    if os.geteuid() != 0:
        tap('1..0 # SKIP end-to-end tests need root (network namespaces, DPDK)')
        return 0
    problems = []
    for tool in ('ip', 'tcpdump'):
        if not shutil.which(tool):
            problems.append('%s is not installed (tools/install-deps.sh installs it)' % tool)
    lab = Lab(tag)
    for path in (lab.veild, lab.veilctl):
        if not os.access(path, os.X_OK):
            problems.append('%s is not built (ninja -C %s)' % (path, lab.build))

    def on_signal(signum, frame):
        log('E2E: interrupted by signal %d; removing lab %s' % (signum, lab.name))
        lab.down_detached()
        os._exit(1)

    def on_alarm(signum, frame):
        raise _Interrupted('watchdog: the tests ran for more than %d s' % WATCHDOG_S)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(WATCHDOG_S)

    tap('1..%d' % len(tests))
    passed, failed = [], []
    t_all = time.monotonic()
    try:
        if not problems:
            try:
                lab.up()
            except (Failure, _Interrupted, subprocess.TimeoutExpired) as e:
                problems.append('lab setup: %s' % e)
        for i, (fn, name) in enumerate(zip(tests, names), 1):
            if problems:
                log('%s: not run: %s' % (name, '; '.join(problems)))
                tap('not ok %d - %s' % (i, name))
                failed.append(name)
                continue
            t0 = time.monotonic()
            log('--- %s: %s' % (name, ' '.join((fn.__doc__ or '').split())))
            ok = False
            try:
                fn(lab)
                ok = True
            except Failure as e:
                log('FAIL %s: %s' % (name, e))
            except _Interrupted as e:
                log('FAIL %s: %s' % (name, e))
                problems.append(str(e))
            except Exception:
                log('FAIL %s: unexpected error\n%s' % (name, traceback.format_exc()))
            finally:
                # A test's own helpers must not outlive it.
                lab.kill_children()
                lab._procs.clear()
                lab._captures.clear()
            log('%s %s (%.1f s)' % ('PASS' if ok else 'FAIL', name, time.monotonic() - t0))
            tap('%s %d - %s' % ('ok' if ok else 'not ok', i, name))
            (passed if ok else failed).append(name)
        if failed and lab._is_up:
            log_path = '/run/veil-lab-%s/veild.log' % lab.name
            try:
                with open(log_path) as f:
                    log('--- veild log (%s):\n%s' % (log_path, f.read()[-4000:]))
            except OSError:
                pass
    finally:
        signal.alarm(0)
        lab.down()
    log('E2E: %d passed, %d failed (%s, %.1f s)%s' % (len(passed), len(failed), tag, time.monotonic() - t_all,
                                                     ': ' + ', '.join(failed) if failed else ''))
    return 1 if failed else 0
