// A browser on the untrusted side of Veil's lab: headless Debian chromium driven by
// playwright-core, with SIP.js (from npm, loaded as ES modules) as the page's SIP stack.
// Runs inside the lab's untrusted network namespace (tests/e2e/test_websocket.py starts it
// with `ip netns exec`): chromium must never run where it could reach outside hosts.
//
//   node veil-browser.mjs '{"scenario":"register","server":"wss://203.0.113.1:8443", ...}'
//
// The page is served by playwright's request interception as https://phone.example.test/
// (a secure context with the Origin Veil's [websocket] allowed_origins names), so nothing is
// fetched from a network. Prints one JSON object: what happened, and every SIP message the
// browser received.
import { chromium } from 'playwright-core';
import { readFile } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const sipLib = join(here, 'node_modules', 'sip.js', 'lib');
const opts = JSON.parse(process.argv[2] || '{}');
const origin = opts.origin || 'https://phone.example.test';

const page_html = `<!doctype html><html><head><meta charset="utf-8"><title>veil test phone</title></head>
<body><script type="module">
import * as SIP from '/sip/index.js';
window.SIP = SIP;
window.sipReady = true;
</script></body></html>`;

async function main() {
  const browser = await chromium.launch({
    executablePath: opts.chromium || '/usr/bin/chromium',
    args: ['--no-sandbox', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--no-first-run', '--disable-default-apps'],
  });
  const result = { scenario: opts.scenario };
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    await context.route('**/*', async (route) => {
      const url = new URL(route.request().url());
      if (url.origin !== origin) return route.abort();
      if (url.pathname === '/' || url.pathname === '/index.html')
        return route.fulfill({ status: 200, contentType: 'text/html', body: page_html });
      if (url.pathname.startsWith('/sip/')) {
        const file = normalize(join(sipLib, url.pathname.slice(5)));
        if (!file.startsWith(sipLib)) return route.abort();
        try {
          return route.fulfill({ status: 200, contentType: 'text/javascript', body: await readFile(file) });
        } catch {
          return route.fulfill({ status: 404, body: '' });
        }
      }
      return route.fulfill({ status: 404, body: '' });
    });
    const page = await context.newPage();
    page.on('console', (m) => { if (opts.verbose) console.error('[page]', m.text()); });
    await page.goto(origin + '/');
    await page.waitForFunction(() => window.sipReady === true, null, { timeout: 10000 });
    Object.assign(result, await page.evaluate(runScenario, opts));
  } catch (e) {
    result.error = String(e && e.message || e);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(result));
}

// Runs in the page (serialised by page.evaluate: everything it uses is inside it).
async function runScenario(o) {
  // `call`: an Inviter to o.target; `answer`: register, then accept the first INVITE. The call
  // stays up for o.hold_ms (call: then the browser hangs up) or until the far end's BYE
  // (answer: at most o.timeout_ms), sampling the peer connection's getStats every 500 ms;
  // the last sample taken while the call was up is reported.
  async function mediaScenario(SIP, ua, o, out, sleep) {
    const sdh = { constraints: { audio: true, video: !!o.video } };
    const sampleStats = async (session) => {
      const pc = session && session.sessionDescriptionHandler && session.sessionDescriptionHandler.peerConnection;
      if (!pc) return null;
      const st = { ice_state: pc.iceConnectionState, connection_state: pc.connectionState };
      const report = await pc.getStats();
      const byId = new Map();
      report.forEach((s) => byId.set(s.id, s));
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          st.packets_received = s.packetsReceived; st.bytes_received = s.bytesReceived;
          st.packets_lost = s.packetsLost; st.codec = (byId.get(s.codecId) || {}).mimeType;
        }
        if (s.type === 'outbound-rtp' && s.kind === 'audio') { st.packets_sent = s.packetsSent; st.bytes_sent = s.bytesSent; }
        // Video (o.video: an audio + video call, BUNDLEd on one 5-tuple).
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          st.video_packets_received = s.packetsReceived; st.video_bytes_received = s.bytesReceived;
          st.video_codec = (byId.get(s.codecId) || {}).mimeType; st.video_transport = s.transportId;
        }
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          st.video_packets_sent = (st.video_packets_sent || 0) + s.packetsSent;
          st.video_transport_out = s.transportId;
        }
        if (s.type === 'inbound-rtp' && s.kind === 'audio') st.audio_transport = s.transportId;
        if (s.type === 'transport') st.transports = (st.transports || 0) + 1;
        // RTCP the far end sent: SR (remote-outbound-rtp) and RR about our stream (remote-inbound-rtp).
        if (s.type === 'remote-outbound-rtp' && s.kind === 'audio') {
          st.remote_sr_packets_sent = s.packetsSent; st.remote_sr_reports = s.reportsSent;
        }
        if (s.type === 'remote-inbound-rtp' && s.kind === 'audio') st.remote_rr_packets_lost = s.packetsLost;
        if (s.type === 'transport') {
          st.dtls_state = s.dtlsState; st.srtp_cipher = s.srtpCipher; st.dtls_role = s.dtlsRole;
          const pair = byId.get(s.selectedCandidatePairId);
          const remote = pair && byId.get(pair.remoteCandidateId);
          if (remote) st.remote_candidate = `${remote.address || remote.ip}:${remote.port}`;
        }
      });
      return st;
    };
    let session = null;
    const ended = new Promise((resolve) => { out.ended = false; out._end = resolve; });
    const established = new Promise((resolve) => { out._est = resolve; });
    const watch = (s) => {
      session = s;
      s.stateChange.addListener((state) => {
        out.states.push(state);
        if (state === 'Established') out._est(true);
        if (state === 'Terminated') { out.ended = true; out._end(true); }
      });
    };
    if (o.scenario === 'answer') {
      ua.delegate = {
        onInvite: (inv) => {
          out.invite_received = true;
          watch(inv);
          inv.accept({ sessionDescriptionHandlerOptions: sdh }).catch((e) => { out.error = 'accept: ' + e; });
        },
      };
      const reg = new SIP.Registerer(ua, { expires: o.expires || 300 });
      const registered = new Promise((resolve) => {
        reg.stateChange.addListener((s) => { if (s === 'Registered') resolve(true); });
      });
      await reg.register();
      out.registered = await Promise.race([registered, sleep(10000).then(() => false)]);
      if (!out.registered) return;
    } else {
      const inviter = new SIP.Inviter(ua, SIP.UserAgent.makeURI(o.target), { sessionDescriptionHandlerOptions: sdh });
      watch(inviter);
      await inviter.invite({ requestDelegate: { onReject: (r) => { out.rejected = r.message.statusCode; } } })
        .catch((e) => { out.error = 'invite: ' + e; });
    }
    out.established = await Promise.race([established, sleep(o.timeout_ms || 20000).then(() => false)]);
    if (!out.established) return;
    // call: up for hold_ms, then the browser hangs up; answer: until the far end's BYE.
    const until = Date.now() + (o.scenario === 'answer' ? (o.timeout_ms || 20000) : (o.hold_ms || 5000));
    // o.ice_restart_ms: that long into the call, an ICE restart (re-INVITE with an offer made
    // with iceRestart: new ufrag/pwd); the ICE credentials on both sides are recorded before
    // and after, and the stats sampled just before it.
    const restartAt = o.ice_restart_ms ? Date.now() + o.ice_restart_ms : Infinity;
    const ufrags = () => {
      const pc = session.sessionDescriptionHandler.peerConnection;
      const u = (d) => ((d && d.sdp.match(/a=ice-ufrag:(\S+)/)) || [])[1];
      return { local: u(pc.localDescription), remote: u(pc.remoteDescription) };
    };
    while (Date.now() < until && !out.ended) {
      const st = await sampleStats(session).catch(() => null);
      if (st) out.stats = st;
      if (Date.now() >= restartAt && !out.ice_restart) {
        out.stats_before_restart = st;
        out.ice_restart = { before: ufrags() };
        await session.invite({
          sessionDescriptionHandlerOptions: { ...sdh, offerOptions: { iceRestart: true } },
          requestDelegate: {
            onAccept: () => { out.ice_restart.accepted = true; },
            onReject: (r) => { out.ice_restart.rejected = r.message.statusCode; },
          },
        }).catch((e) => { out.ice_restart.error = '' + e; });
        await sleep(1500);
        out.ice_restart.after = ufrags();
      }
      await Promise.race([sleep(500), ended]);
    }
    if (o.scenario === 'call' && !out.ended) {
      await session.bye().catch((e) => { out.error = 'bye: ' + e; });
      out.hung_up = true;
      await Promise.race([ended, sleep(5000)]);
    }
    delete out._end; delete out._est;
  }

  const SIP = window.SIP;
  const out = { received: [], states: [] };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const ua = new SIP.UserAgent({
    uri: SIP.UserAgent.makeURI(`sip:${o.user}@${o.domain}`),
    transportOptions: { server: o.server, traceSip: false },
    authorizationUsername: o.user,
    authorizationPassword: o.password,
    logLevel: 'error',
    delegate: {},
    // No STUN server (the default names one on the internet): host candidates only; Veil is
    // ICE-lite and gives its own candidate in its SDP.
    sessionDescriptionHandlerFactoryOptions: {
      peerConnectionConfiguration: { iceServers: [] },
      iceGatheringTimeout: 500,
    },
  });
  // Test of Veil's fingerprint check: the SDP the browser sends says a certificate
  // fingerprint that is not its own (first byte changed on the wire only; the peer
  // connection keeps its real certificate, and the length stays the same).
  if (o.mangle_fingerprint) {
    const send = ua.transport.send.bind(ua.transport);
    ua.transport.send = (m) => send(m.replace(/a=fingerprint:sha-256 ([0-9A-F]{2})/g,
      (_, h) => 'a=fingerprint:sha-256 ' + (h === '00' ? '01' : '00')));
  }
  // Every SIP message the browser receives, verbatim.
  ua.transport.onMessage = ((orig) => (msg) => { out.received.push(msg); if (orig) orig(msg); })(ua.transport.onMessage);
  await ua.start();
  if (o.scenario === 'register') {
    const reg = new SIP.Registerer(ua, { expires: o.expires || 300 });
    const registered = new Promise((resolve) => {
      reg.stateChange.addListener((s) => { out.states.push(s); if (s === 'Registered') resolve(true); });
    });
    await reg.register({ requestDelegate: { onReject: (r) => { out.rejected = r.message.statusCode; } } });
    out.registered = await Promise.race([registered, sleep(o.timeout_ms || 10000).then(() => false)]);
    out.contact = ua.contact.uri.toString();
    if (o.hold_ms) await sleep(o.hold_ms);
    if (out.registered && o.unregister) {
      const gone = new Promise((resolve) => reg.stateChange.addListener((s) => { if (s === 'Unregistered') resolve(true); }));
      await reg.unregister();
      out.unregistered = await Promise.race([gone, sleep(5000).then(() => false)]);
    }
  }
  if (o.scenario === 'call' || o.scenario === 'answer') await mediaScenario(SIP, ua, o, out, sleep);
  await ua.stop();
  return out;
}


main().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
