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

// Runs in the page.
async function runScenario(o) {
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
  });
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
  await ua.stop();
  return out;
}

main().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
