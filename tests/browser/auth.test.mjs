// Authentication in Chromium (docs/security.md): docsearch in auth mode
// (HS256 tokens, samples/docsearch/auth-rules.json), the browser client with a
// token provider. A signed-in page sees its own documents live, is refused
// another user's prefix, keeps its subscription across token renewals, and an
// anonymous page sees only the public area. Everything runs over TLS (https and
// wss on one port, a certificate made at test time with the openssl command),
// as a deployment in front of browsers would.
//
//   node auth.test.mjs <path to the docsearch binary>
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  DocsearchServer, check, checkEqual, here, launchBrowser, loadChromium, onCleanup, run, skip,
  sleep, tempDir,
} from './lib.mjs';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node auth.test.mjs <docsearch binary>');
  process.exit(2);
}

const pages = join(here, 'pages');

// A self-signed certificate for 127.0.0.1 and localhost. The pages accept it
// (ignoreHTTPSErrors), and so does this script's fetch.
const certDir = tempDir('derive-auth-tls-');
const cert = join(certDir, 'cert.pem');
const key = join(certDir, 'key.pem');
try {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=derive-auth-test',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'pipe' });
} catch (e) {
  await skip(`cannot make a certificate with openssl (install the openssl package): ${e.message}`);
}
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const tlsArgs = ['--tls-cert', cert, '--tls-key', key];
const secret = `browser-auth-test-secret-${Math.random().toString(36).slice(2)}`;

const b64url = (s) => Buffer.from(s).toString('base64url');
// An HS256 JWT for `sub`, valid for `ttl` seconds.
function token(sub, ttl = 3600) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + ttl }));
  const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

const chromium = await loadChromium();
let server;
let url;
let browser;
let context;  // accepts the test certificate
let alice;  // the signed-in page
const pageErrors = [];
const socketUrls = [];  // every WebSocket the test pages opened

async function openPage() {
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('websocket', (ws) => socketUrls.push(ws.url()));
  await page.exposeFunction('makeToken', (sub, ttl) => token(sub, ttl));
  await page.goto(`${url}/client_test.html`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

async function postAs(sub, event) {
  const r = await fetch(`${url}/v1/events`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token(sub)}` },
    body: JSON.stringify(event),
  });
  return { status: r.status, body: await r.json() };
}

const put = (key, title) => ({ type: 'doc.put', key, data: { title, text: `text of ${title}` } });

await run([
  ['a signed-in page subscribes to its own documents', async () => {
    const dir = tempDir('derive-auth-test-');
    const secretFile = join(dir, 'secret');
    writeFileSync(secretFile, `${secret}\n`);
    server = new DocsearchServer(binary, join(dir, 'data'), 0,
                                 ['--www', pages, '--auth-secret-file', secretFile, ...tlsArgs]);
    url = await server.start();
    check(url.startsWith('https://'), `docsearch serves https: ${url}`);
    browser = await launchBrowser(chromium);
    onCleanup(() => browser.close());
    context = await browser.newContext({ ignoreHTTPSErrors: true });
    alice = await openPage();
    const r = await alice.evaluate(async () => {
      window.calls = 0;
      window.c = derive.connect(undefined, {
        token: async () => { calls += 1; return makeToken('alice', 3600); },
        minDelayMs: 100,
      });
      window.log = [];
      window.sub = c.subscribe('documents', { prefix: 'users/alice/' }, (state, info) =>
        log.push({ type: info.type, keys: [...state.keys()].sort() }));
      await waitFor(() => log.length > 0, 'the first snapshot');
      return { first: log[0], calls };
    });
    checkEqual(r.first, { type: 'snapshot', keys: [] }, 'an empty own area');
    check(r.calls >= 1, 'the token provider was called at connect');
  }],

  ['its own documents arrive live, another user\'s do not', async () => {
    const own = await alice.evaluate(async () => {
      const { offsets } = await c.append(put('users/alice/notes', 'Alice notes'));
      await waitFor(() => sub.state.has('users/alice/notes'), 'its own append');
      return offsets[0];
    });
    check(own > 0, 'appended');
    checkEqual((await postAs('bob', put('users/bob/diary', 'Bob diary'))).status, 201, 'bob appends');
    checkEqual((await postAs('alice', put('users/alice/todo', 'Alice todo'))).status, 201,
               'alice appends from elsewhere');
    const keys = await alice.evaluate(async () => {
      await waitFor(() => sub.state.has('users/alice/todo'), 'the write from elsewhere');
      return [...sub.state.keys()].sort();
    });
    checkEqual(keys, ['users/alice/notes', 'users/alice/todo'], 'only alice\'s documents');
  }],

  ['another user\'s prefix, the whole view and a foreign append are refused', async () => {
    const r = await alice.evaluate(async () => {
      const refused = (view, prefix) => new Promise((resolve) => {
        c.subscribe(view, { prefix }, () => resolve('delivered'),
                    { onError: (e) => resolve(`${e.code}: ${e.message}`) });
      });
      const bob = await refused('documents', 'users/bob/');
      const all = await refused('documents', '');
      const append = await c.append(put('users/bob/x', 'Forged')).then(() => 'appended', (e) => e.code);
      const search = await c.query('search', 'search', { q: 'diary', in: 'users/bob/' })
        .then(() => 'answered', (e) => `${e.status} ${e.code}`);
      const ownSearch = await c.query('search', 'search', { q: 'notes', in: 'users/alice/' },
                                      { after: 0 });
      return { bob, all, append, search, hits: ownSearch.hits.map((h) => h.id) };
    });
    check(/^forbidden: .*users\/bob\//.test(r.bob), `refused with the prefix named: ${r.bob}`);
    check(/^forbidden/.test(r.all), `the whole view is refused, not filtered: ${r.all}`);
    checkEqual(r.append, 'forbidden', 'a write into bob\'s area');
    checkEqual(r.search, '403 forbidden', 'searching bob\'s area over HTTP');
    checkEqual(r.hits, ['users/alice/notes'], 'searching its own area');
  }],

  ['a short-lived token is renewed and the subscription goes on', async () => {
    const r = await alice.evaluate(async () => {
      window.shortCalls = 0;
      received.length = 0;
      window.c2 = derive.connect(undefined, {
        token: async () => { shortCalls += 1; return makeToken('alice', 3); },
        minDelayMs: 100, WebSocket: RecordingWebSocket,
      });
      window.errors2 = [];
      window.sub2 = c2.subscribe('documents', { prefix: 'users/alice/' }, () => {},
                                 { onError: (e) => errors2.push(e.code) });
      await waitFor(() => sub2.offset !== null, 'the snapshot');
      await new Promise((resolve) => setTimeout(resolve, 5000));  // past the first token's exp
      return {
        calls: shortCalls,
        renewed: received.filter((m) => m.op === 'authenticated').length,
        expired: received.filter((m) => m.code === 'token_expired').length,
      };
    });
    check(r.calls >= 2, `the provider was asked again before expiry (${r.calls} calls)`);
    check(r.renewed >= 1, 'the server accepted an auth message');
    checkEqual(r.expired, 0, 'renewed in time: the server never ended the subscription');
    checkEqual((await postAs('alice', put('users/alice/later', 'Later'))).status, 201, 'append');
    const after = await alice.evaluate(async () => {
      await waitFor(() => sub2.state.has('users/alice/later'), 'a change after the renewal');
      return { errors: errors2, connected: c2.connected };
    });
    checkEqual(after, { errors: [], connected: true }, 'no error, still connected');
  }],

  ['an anonymous page sees the public area and is refused a user\'s', async () => {
    const anon = await openPage();
    const r = await anon.evaluate(async () => {
      window.c = derive.connect(undefined, { minDelayMs: 100 });
      const pub = await new Promise((resolve) => {
        c.subscribe('documents', { prefix: 'public/' }, (state) => resolve([...state.keys()].length));
      });
      const user = await new Promise((resolve) => {
        c.subscribe('documents', { prefix: 'users/alice/' }, () => resolve('delivered'),
                    { onError: (e) => resolve(e.code) });
      });
      return { pub, user };
    });
    check(r.pub >= 6, `the public examples (${r.pub})`);
    checkEqual(r.user, 'unauthorized', 'a user\'s area without a token');
    await anon.close();
  }],

  ['the docsearch page signs in with #token= and lists its own and the public documents', async () => {
    const dir = tempDir('derive-auth-page-');
    writeFileSync(join(dir, 'secret'), `${secret}\n`);
    const app = new DocsearchServer(binary, join(dir, 'data'), 0,
                                    ['--auth-secret-file', join(dir, 'secret'), ...tlsArgs]);
    const appUrl = await app.start();
    for (const [sub, key] of [['alice', 'users/alice/diary'], ['bob', 'users/bob/secret']]) {
      const r = await fetch(`${appUrl}/v1/events`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token(sub)}` },
        body: JSON.stringify(put(key, `${sub} document`)),
      });
      checkEqual(r.status, 201, `${sub} appends`);
    }
    const listed = async (page, n) => {
      await page.waitForFunction((n) => document.querySelectorAll('#documents li.doc').length >= n,
                                 n, { timeout: 15000 });
      return page.$$eval('#documents li.doc', (lis) => lis.map((li) => li.dataset.id).sort());
    };
    const signedIn = await context.newPage();
    signedIn.on('pageerror', (e) => pageErrors.push(e.message));
    await signedIn.goto(`${appUrl}/#token=${token('alice')}`);
    const ids = await listed(signedIn, 7);
    check(ids.includes('users/alice/diary'), `alice's document is listed: ${ids}`);
    check(!ids.some((id) => id.startsWith('users/bob/')), 'bob\'s document is not');
    checkEqual(ids.filter((id) => id.startsWith('public/')).length, 6, 'the public examples');
    check(!(await signedIn.url()).includes('token='), 'the token left the address bar');
    const anonymous = await context.newPage();
    anonymous.on('pageerror', (e) => pageErrors.push(e.message));
    await anonymous.goto(`${appUrl}/`);
    const publicIds = await listed(anonymous, 6);
    check(publicIds.every((id) => id.startsWith('public/')), `only public documents: ${publicIds}`);
    await signedIn.close();
    await anonymous.close();
    checkEqual(await app.stop(), 0, 'docsearch exit code');
  }],

  ['the page had no uncaught errors and the server stops cleanly', async () => {
    await sleep(100);
    checkEqual(pageErrors, [], 'uncaught errors in the pages');
    check(socketUrls.length > 0 && socketUrls.every((u) => u.startsWith('wss://')),
          `every WebSocket went over TLS: ${socketUrls}`);
    checkEqual(await server.stop(), 0, 'docsearch exit code');
  }],
], { timeoutMs: 60000, overallMs: 240000 });
