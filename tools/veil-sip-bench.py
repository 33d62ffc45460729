#!/usr/bin/env python3
"""veil-sip-bench: the SIP call rate Veil sustains, measured with sipp on one machine.

Brings up its own lab (tools/veil-lab.sh with VEIL_LAB_SIP=1: veild with the B2BUA, DPDK
af_packet ports, an untrusted host and a trusted host in network namespaces), then for each
call rate in turn:

  * a sipp UAS on the trusted host 198.51.100.10:5060 (the PBX Veil is configured with):
    INVITE -> 180, 200 with SDP; ACK; BYE -> 200 (tools/sipp/uas_bench.xml);
  * a sipp UAC on the untrusted host 203.0.113.10 calling Veil's 203.0.113.1:5060 at that rate
    (-r) for a bounded number of calls (rate x --seconds), concurrency bounded (-l):
    INVITE with SDP, 200, ACK, a uniformly random 0-1 s call, BYE, 200
    (tools/sipp/uac_bench.xml).

No RTP is sent (the SDP ports are only numbers), but Veil still allocates media ports and
programs and removes each call's flows in the dataplane. For each rate it reports the calls
attempted, successful and failed (on both sipp sides), retransmissions, unexpected messages,
veild's CPU per thread and sipp's CPU, and after the rate veilctl stats (active calls and flows
must be back to 0). It stops at the first rate with a failed call (unless --all) and prints the
highest rate sustained with no failed call and no unexpected message. The lab is always
removed at the end, also on error or Ctrl-C.

Needs root and sipp (Debian package sip-tester).

  sudo tools/veil-sip-bench.py                      # rates 10 25 50 100 200 300 400 600 800, 10 s each
  sudo tools/veil-sip-bench.py --rates 50,100 --seconds 5 --json out.json
"""
import argparse
import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LABSH = os.path.join(HERE, 'veil-lab.sh')
SCEN = os.path.join(HERE, 'sipp')
EXT_HOST, EXT_VEIL = '203.0.113.10', '203.0.113.1'   # untrusted host, Veil's untrusted address
INT_HOST = '198.51.100.10'                            # trusted host = the PBX in the lab's [sip]
CLK = os.sysconf('SC_CLK_TCK')


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted('signal %d' % signum)


class Bench:
    def __init__(self, args):
        self.args = args
        self.lab = args.lab or 'sb%d' % (os.getpid() % 100000)
        # One sipp host sends every call: lift the per-source signaling limit (a carrier
        # trunk would be configured the same way), keep the global punt_pps.
        self.env = dict(os.environ, VEIL_LAB=self.lab, VEIL_LAB_SIP='1', VEIL_LAB_PUNT_PER_SOURCE='0')
        self.build = os.environ.get('VEIL_BUILD', os.path.join(ROOT, 'build'))
        self.sock = '/run/veil-lab-%s/veil.sock' % self.lab
        self.tmp = tempfile.mkdtemp(prefix='veil-sip-bench-')
        self.children = []
        self.up = False

    # -- lab ---------------------------------------------------------------------------------
    def labsh(self, *a, check=True):
        r = subprocess.run([LABSH] + list(a), env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError('veil-lab.sh %s failed: %s%s' % (' '.join(a), r.stdout, r.stderr))
        return r

    def ns(self, host):
        return ['ip', 'netns', 'exec', '%s-%s' % (self.lab, host)]

    def ctl(self, *a):
        r = subprocess.run([os.path.join(self.build, 'tools', 'veilctl'), '-s', self.sock, '--json'] + list(a),
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError('veilctl %s: %s' % (' '.join(a), r.stderr.strip()))
        return json.loads(r.stdout)

    def veild_pid(self):
        with open('/run/veil-lab-%s/veild.pid' % self.lab) as f:
            return int(f.read())

    def threads_cpu(self, pid):
        """{tid: (comm, utime+stime ticks)} of every thread of pid."""
        out = {}
        for tid in os.listdir('/proc/%d/task' % pid):
            try:
                with open('/proc/%d/task/%s/stat' % (pid, tid)) as f:
                    s = f.read()
            except OSError:
                continue
            comm = s[s.index('(') + 1:s.rindex(')')]
            fields = s[s.rindex(')') + 2:].split()
            out[int(tid)] = (comm, int(fields[11]) + int(fields[12]))
        return out

    def sys_cpu(self):
        with open('/proc/stat') as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle+iowait

    def udp_counters(self):
        """The SBC namespace's UDP counters (/proc/net/snmp): RcvbufErrors are SIP datagrams the
        kernel dropped because veild did not read its socket fast enough."""
        r = subprocess.run(self.ns('sbc') + ['cat', '/proc/net/snmp'], capture_output=True, text=True)
        lines = [l.split() for l in r.stdout.splitlines() if l.startswith('Udp:')]
        return dict(zip(lines[0][1:], (int(x) for x in lines[1][1:]))) if len(lines) >= 2 else {}

    def listening(self, host, port):
        r = subprocess.run(self.ns(host) + ['ss', '-Hulnp'], capture_output=True, text=True)
        return re.search(r':%d\s' % port, r.stdout) is not None

    def spawn(self, argv, out):
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.children.append(p)
        return p

    def reap(self, p, timeout):
        """Waits for p (a sipp: `ip netns exec` execs it, same pid); returns (rc, cpu seconds)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                self.children.remove(p)
                return p.returncode, ru.ru_utime + ru.ru_stime
            time.sleep(0.05)
        return None, None

    def kill_children(self):
        for p in list(self.children):
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass
        self.children = []

    # -- one rate ----------------------------------------------------------------------------
    @staticmethod
    def sipp_stats(path):
        """The last line of a sipp -trace_stat CSV as a dict (cumulative counters)."""
        try:
            with open(path, newline='') as f:
                rows = list(csv.reader(f, delimiter=';'))
        except OSError:
            return {}
        if len(rows) < 2:
            return {}
        return dict(zip(rows[0], rows[-1]))

    def run_rate(self, rate):
        a = self.args
        calls = max(int(rate * a.seconds), 1)
        limit = a.max_concurrent or max(50, 3 * rate)
        tag = 'r%d' % rate
        f = lambda s: os.path.join(self.tmp, '%s-%s' % (tag, s))  # noqa: E731
        common = ['-nostdin', '-trace_stat', '-fd', '1', '-trace_err', '-max_recv_loops', '1000']
        uas_argv = self.ns('int') + ['sipp', '-sf', os.path.join(SCEN, 'uas_bench.xml'), '-i', INT_HOST,
                                     '-p', '5060', '-stf', f('uas.csv'), '-error_file', f('uas.err')] + common
        uac_argv = self.ns('ext') + ['sipp', '-sf', os.path.join(SCEN, 'uac_bench.xml'), '-i', EXT_HOST,
                                     '-p', '5060', '-s', 'bob', '-r', str(rate), '-m', str(calls),
                                     '-l', str(limit), '-timeout', str(int(a.seconds * 3 + 30)), '-timeout_error',
                                     '-stf', f('uac.csv'), '-error_file', f('uac.err')] + common + \
            ['%s:5060' % EXT_VEIL]
        self.cmdlines = [uas_argv, uac_argv]
        uas = self.spawn(uas_argv, open(f('uas.out'), 'w'))
        t = time.time()
        while not self.listening('int', 5060):
            if time.time() - t > 10:
                raise RuntimeError('the sipp UAS did not listen on 5060: %s' % open(f('uas.out')).read()[-800:])
            time.sleep(0.05)
        st0 = self.ctl('stats')
        vpid = self.veild_pid()
        udp0 = self.udp_counters()
        th0, sys0, t0 = self.threads_cpu(vpid), self.sys_cpu(), time.time()
        uac = self.spawn(uac_argv, open(f('uac.out'), 'w'))
        rc_uac, cpu_uac = self.reap(uac, a.seconds * 3 + 40)
        wall = time.time() - t0
        th1, sys1 = self.threads_cpu(vpid), self.sys_cpu()
        udp1 = self.udp_counters()
        if rc_uac is None:
            log('  the sipp UAC did not finish; killing it')
            uac.kill()
            rc_uac, cpu_uac = self.reap(uac, 5)
        # Veil's state drains: every call ended, every flow removed.
        t = time.time()
        while True:
            st = self.ctl('stats')
            drained = st.get('calls') == 0 and st.get('flows') == 0 and st['sip']['active_calls'] == 0
            if drained or time.time() - t > a.drain:
                break
            time.sleep(0.1)
        drain_s = time.time() - t
        uas.send_signal(signal.SIGUSR1)  # sipp: stop taking calls, finish, write final stats
        rc_uas, cpu_uas = self.reap(uas, 10)
        if rc_uas is None:
            uas.kill()
            rc_uas, cpu_uas = self.reap(uas, 5)
        uc, us = self.sipp_stats(f('uac.csv')), self.sipp_stats(f('uas.csv'))
        g = lambda d, k: int(d.get(k, '0') or 0)  # noqa: E731
        ticks = lambda th: {tid: v for tid, v in th.items()}  # noqa: E731
        per_thread = {}
        for tid, (comm, v1) in ticks(th1).items():
            v0 = th0.get(tid, (comm, 0))[1]
            per_thread.setdefault(comm, 0.0)
            per_thread[comm] += (v1 - v0) / CLK / wall * 100
        tot, idle = sys1[0] - sys0[0], sys1[1] - sys0[1]
        sip0, sip1 = st0['sip'], st['sip']
        res = {
            'rate': rate, 'calls': calls, 'limit': limit, 'wall_s': round(wall, 2), 'rc_uac': rc_uac,
            'rc_uas': rc_uas,
            'attempted': g(uc, 'TotalCallCreated'), 'successful': g(uc, 'SuccessfulCall(C)'),
            'failed': g(uc, 'FailedCall(C)'), 'uas_successful': g(us, 'SuccessfulCall(C)'),
            'uas_failed': g(us, 'FailedCall(C)'),
            'retrans_uac': g(uc, 'Retransmissions(C)'), 'retrans_uas': g(us, 'Retransmissions(C)'),
            'unexpected': g(uc, 'FailedUnexpectedMessage(C)') + g(us, 'FailedUnexpectedMessage(C)') +
            g(uc, 'OutOfCallMsgs(C)') + g(us, 'OutOfCallMsgs(C)'),
            'sbc_udp': {k: udp1.get(k, 0) - udp0.get(k, 0) for k in ('InDatagrams', 'OutDatagrams', 'RcvbufErrors',
                                                                     'InErrors')},
            'setup_ms': uc.get('ResponseTime1(C)', ''),
            'veil_answered': sip1['calls_answered'] - sip0['calls_answered'],
            'veil_failed': sip1['calls_failed'] - sip0['calls_failed'],
            'after': {'calls': st.get('calls'), 'flows': st.get('flows'), 'active_calls': sip1['active_calls'],
                      'drain_s': round(drain_s, 2)},
            'veild_cpu_pct': {k: round(v, 1) for k, v in sorted(per_thread.items(), key=lambda kv: -kv[1])},
            'sipp_cpu_pct': {'uac': round(cpu_uac / wall * 100, 1) if cpu_uac is not None else None,
                             'uas_whole_run': round(cpu_uas, 2) if cpu_uas is not None else None},
            'machine_busy_pct': round(100.0 * (tot - idle) / tot, 1) if tot else None,
            'loadavg': open('/proc/loadavg').read().split()[:3],
        }
        ok = (res['failed'] == 0 and res['uas_failed'] == 0 and res['unexpected'] == 0 and
              res['successful'] == calls and res['uas_successful'] == calls and rc_uac == 0 and
              res['after']['calls'] == 0 and res['after']['flows'] == 0 and res['after']['active_calls'] == 0)
        # sipp falls behind the target rate when it (or Veil) cannot keep up: the calls should all be
        # placed within calls/rate seconds, plus the last call (<= 1 s) and slack.
        res['on_time'] = wall <= calls / rate + 3.0
        res['ok'] = ok and res['on_time']
        for e in ('uac.err', 'uas.err'):
            try:
                with open(f(e), errors='replace') as fh:
                    txt = fh.read()
                if txt.strip():
                    res.setdefault('errors', {})[e] = txt[-600:]
            except OSError:
                pass
        return res

    # -- the run -----------------------------------------------------------------------------
    def run(self):
        a = self.args
        log('veil-sip-bench: lab %s up (VEIL_LAB=%s VEIL_LAB_SIP=1 %s up)' % (self.lab, self.lab, LABSH))
        self.up = True  # down even if up fails half-way
        self.labsh('up')
        results = []
        for rate in a.rates:
            log('veil-sip-bench: %d cps, %d calls ...' % (rate, max(int(rate * a.seconds), 1)))
            r = self.run_rate(rate)
            results.append(r)
            log('  %s' % json.dumps(r))
            if not r['ok'] and not a.all:
                break
        final = self.ctl('stats')
        return results, final

    def down(self):
        self.kill_children()
        if self.up:
            self.labsh('down', check=False)
            self.up = False


def table(results):
    hdr = ['cps', 'calls', 'ok', 'failed', 'unexp', 'retrans', 'wall s', 'setup', 'veild thr %', 'sipp uac %',
           'busy %', 'load1', 'veild rcvbuf drops', 'after: calls/flows', 'result']
    rows = []
    for r in results:
        vt = ' '.join('%s=%g' % (k, v) for k, v in list(r['veild_cpu_pct'].items())[:3])
        rows.append([str(r['rate']), str(r['attempted']), '%d/%d' % (r['successful'], r['uas_successful']),
                     '%d/%d' % (r['failed'], r['uas_failed']), str(r['unexpected']),
                     '%d/%d' % (r['retrans_uac'], r['retrans_uas']), '%.1f' % r['wall_s'],
                     '%.1f ms' % (int(r['setup_ms'].rsplit(':', 1)[-1]) / 1000) if r['setup_ms'] else '-', vt,
                     str(r['sipp_cpu_pct']['uac']), str(r['machine_busy_pct']), r['loadavg'][0], str(r['sbc_udp']['RcvbufErrors']),
                     '%s/%s' % (r['after']['calls'], r['after']['flows']),
                     'PASS' if r['ok'] else ('BEHIND' if not r['on_time'] and r['failed'] == 0 else 'FAIL')])
    w = [max(len(h), *(len(x[i]) for x in rows)) if rows else len(h) for i, h in enumerate(hdr)]
    line = lambda cells: '  '.join(c.rjust(w[i]) for i, c in enumerate(cells))  # noqa: E731
    return '\n'.join([line(hdr), line(['-' * x for x in w])] + [line(x) for x in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rates', default='10,25,50,100,200,300,400,600,800',
                    help='calls per second to try, in order (default %(default)s)')
    ap.add_argument('--seconds', type=float, default=10, help='seconds of calls per rate (default %(default)s)')
    ap.add_argument('--max-concurrent', type=int, default=0,
                    help='sipp -l (default max(50, 3 x rate); calls last 0-1 s)')
    ap.add_argument('--drain', type=float, default=15, help='seconds to wait for calls/flows to reach 0')
    ap.add_argument('--all', action='store_true', help='go on after a rate with failed calls')
    ap.add_argument('--lab', help='lab name (default sb<pid>)')
    ap.add_argument('--json', help='also write the results here')
    a = ap.parse_args()
    a.rates = [int(x) for x in a.rates.split(',') if x]
    if os.geteuid() != 0:
        sys.exit('veil-sip-bench: needs root (network namespaces, DPDK)')
    if subprocess.run(['sh', '-c', 'command -v sipp'], capture_output=True).returncode != 0:
        sys.exit('veil-sip-bench: sipp is not installed (apt-get install sip-tester)')
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    b = Bench(a)
    t0 = time.time()
    load0 = open('/proc/loadavg').read().split()[:3]
    try:
        results, final = b.run()
    except Interrupted as e:
        log('veil-sip-bench: interrupted (%s); removing the lab' % e)
        b.down()
        sys.exit(130)
    except Exception:
        b.down()
        raise
    b.down()
    best = 0
    for r in results:
        if not r['ok']:
            break
        best = r['rate']
    print('veil-sip-bench: %s, %d cores, sipp %s' % (time.strftime('%Y-%m-%d %H:%M:%S %Z'), os.cpu_count(),
                                                     subprocess.run(['sipp', '-v'], capture_output=True, text=True)
                                                     .stdout.strip().split('\n')[0].strip()))
    print('command: %s' % ' '.join(shlex.quote(x) for x in sys.argv))
    print('last rate: %s' % ' '.join(shlex.quote(x) for x in b.cmdlines[1]))
    print('           %s' % ' '.join(shlex.quote(x) for x in b.cmdlines[0]))
    print('calls of 0-1 s (uniform), no RTP; each call still programs and removes its flows in the dataplane')
    print('ok/failed/retrans: UAC/UAS; unexp: unexpected + out-of-call messages (both sides); '
          'setup: mean INVITE->200 at the UAC; veild thr %: CPU of veild threads (% of one core) while calls ran; '
          'busy %: whole machine')
    print(table(results))
    print('loadavg before: %s, at the end: %s (other work on this machine shares its cores)'
          % (' '.join(load0), ' '.join(results[-1]['loadavg'])))
    print('veilctl stats after the run: calls %s, flows %s, sip %s' % (final.get('calls'), final.get('flows'),
                                                                    json.dumps(final.get('sip'))))
    print('highest rate sustained with no failed call and no unexpected message: %d cps' % best)
    print('total run time %.0f s' % (time.time() - t0))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'results': results, 'final_stats': final, 'best_cps': best}, f, indent=1)
    return 0 if best else 1


if __name__ == '__main__':
    sys.exit(main())
