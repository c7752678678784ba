// The browser client (web/client/derive.js) in Chromium against a real
// docsearch server: connect, subscribe, get, append, idempotency, errors,
// chunked snapshots, reconnect and resume after a server restart (with
// requests made while offline), and a reset snapshot after the server's data
// went back (a fresh data directory on the same port).
//
//   node client.test.mjs <path to the docsearch binary>
import { join } from 'node:path';

import {
  DocsearchServer, check, checkEqual, here, launchBrowser, loadChromium, onCleanup, run, tempDir,
} from './lib.mjs';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node client.test.mjs <docsearch binary>');
  process.exit(2);
}

// The test page (pages/client_test.html) comes from the server itself: its
// --www is pointed at pages/, so the page has the server's origin (Chromium
// refuses WebSockets to 127.0.0.1 from pages that did not come from there).
const pages = join(here, 'pages');

const chromium = await loadChromium();
let server;
let page;
const pageErrors = [];
const run_id = Math.random().toString(36).slice(2, 8);

await run([
  ['connect and subscribe deliver a first snapshot', async () => {
    server = new DocsearchServer(binary, tempDir('derive-client-test-'), 0, ['--www', pages]);
    const url = await server.start();
    const browser = await launchBrowser(chromium);
    onCleanup(() => browser.close());
    page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${url}/client_test.html`);
    await page.waitForFunction(() => window.ready === true);
    const first = await page.evaluate(async () => {
      window.statuses = [];
      window.c = derive.connect(undefined, {
        WebSocket: RecordingWebSocket, minDelayMs: 100, maxDelayMs: 1000,
        onStatus: (s) => statuses.push(s),
      });
      window.log = [];
      window.sub = c.subscribe('documents', { prefix: 'ct-' }, (state, info) =>
        log.push({ type: info.type, offset: info.offset, reset: info.reset, keys: [...state.keys()].sort() }));
      await waitFor(() => log.length > 0, 'the first snapshot');
      return { entry: log[0], url: c.url, connected: c.connected };
    });
    checkEqual(first.entry.type, 'snapshot', 'first message type');
    checkEqual(first.entry.keys, [], 'no ct- documents yet');
    check(first.entry.offset >= 6, 'the snapshot is at the examples\' offset or later');
    checkEqual(first.url, `${url.replace('http:', 'ws:')}/v1/ws`, 'the WebSocket URL');
    check(first.connected, 'connected');
  }],

  ['append resolves with consecutive offsets that the subscription then shows', async () => {
    const r = await page.evaluate(async () => {
      const r = await c.append([put('ct-1', 'One'), put('ct-2', 'Two')]);
      await waitFor(() => sub.offset >= r.offsets[1], 'the subscription to reach the append');
      return { ...r, keys: [...sub.state.keys()].sort(), one: sub.state.get('ct-1') };
    });
    checkEqual(r.offsets.length, 2, 'two offsets');
    checkEqual(r.offsets[1], r.offsets[0] + 1, 'consecutive offsets');
    checkEqual(r.replayed, false, 'not a replay');
    check(typeof r.idempotencyKey === 'string' && r.idempotencyKey.length > 0, 'a generated key');
    checkEqual(r.keys, ['ct-1', 'ct-2'], 'subscribed state');
    checkEqual(r.one, { text: 'text of ct-1', title: 'One', updated: r.offsets[0] }, 'ct-1 value');
  }],

  ['get reads a key after an offset, and null for a missing key', async () => {
    const r = await page.evaluate(async () => {
      const { offsets } = await c.append(put('ct-3', 'Three'));
      const found = await c.get('documents', 'ct-3', { after: offsets[0] });
      const missing = await c.get('documents', 'ct-none');
      return { offset: offsets[0], found, missing };
    });
    checkEqual(r.found.value.title, 'Three', 'read-your-writes');
    check(r.found.offset >= r.offset, 'read at or after the append');
    checkEqual(r.missing.value, null, 'missing key');
  }],

  ['an append retried with its idempotency key is a replay', async () => {
    const r = await page.evaluate(async (key) => {
      const first = await c.append(put('ct-4', 'Four'), { idempotencyKey: key });
      const again = await c.append(put('ct-4', 'Four'), { idempotencyKey: key });
      return { first, again };
    }, `ct-key-${run_id}`);
    checkEqual(r.again.offsets, r.first.offsets, 'same offsets');
    checkEqual(r.again.replayed, true, 'replayed');
  }],

  ['a refused append rejects with the server\'s error code and message', async () => {
    const e = await page.evaluate(() => c.append({ type: 'doc.put', key: 'ct-bad', data: { text: 'x' } })
      .then(() => null, (e) => ({ name: e.name, code: e.code, message: e.message })));
    checkEqual(e && e.code, 'invalid_event', 'error code');
    checkEqual(e.name, 'DeriveError', 'error class');
    check(/title/.test(e.message), `the message names the field: ${e.message}`);
  }],

  ['a subscription to an unknown view reports unknown_view', async () => {
    const code = await page.evaluate(() => new Promise((resolve) => {
      c.subscribe('no-such-view', { prefix: '' }, () => resolve('delivered'), { onError: (e) => resolve(e.code) });
    }));
    checkEqual(code, 'unknown_view', 'error code');
    const thrown = await page.evaluate(() => {
      try { c.subscribe('documents', {}, () => {}); return null; } catch (e) { return e.name; }
    });
    checkEqual(thrown, 'TypeError', 'a filter without key or prefix');
  }],

  ['a key subscription holds only that key', async () => {
    const r = await page.evaluate(async () => {
      let last = null;
      const s = c.subscribe('stats', { key: 'totals' }, (state) => { last = [...state.entries()]; });
      await waitFor(() => last !== null, 'the totals snapshot');
      s.unsubscribe();
      return last;
    });
    checkEqual(r.map(([k]) => k), ['totals'], 'keys');
    check(r[0][1].puts >= 10, 'totals count the puts');
  }],

  ['after unsubscribe nothing more is delivered', async () => {
    const r = await page.evaluate(async () => {
      const mine = [];
      const s = c.subscribe('documents', { prefix: 'ct-u' }, (state, info) => mine.push(info.type));
      await waitFor(() => mine.length === 1, 'the snapshot');
      s.unsubscribe();
      const { offsets } = await c.append(put('ct-u1', 'Unseen'));
      await waitFor(() => sub.offset >= offsets[0], 'the other subscription to see the change');
      return { mine, seenByOther: sub.state.has('ct-u1') };
    });
    checkEqual(r.mine, ['snapshot'], 'messages of the unsubscribed subscription');
    check(r.seenByOther, 'the change was delivered to the other subscription');
  }],

  ['a large snapshot arrives in chunks and is applied once, when complete', async () => {
    const r = await page.evaluate(async () => {
      const events = (from, n) => Array.from({ length: n }, (_, i) =>
        put(`bulk-${String(from + i).padStart(4, '0')}`, `Bulk ${from + i}`, 'bulk text'));
      await c.append(events(0, 1000));
      const { offsets } = await c.append(events(1000, 200));
      await c.get('documents', 'bulk-1199', { after: offsets[199] });  // the view has them all
      received.length = 0;
      const calls = [];
      const s = c.subscribe('documents', { prefix: 'bulk-' }, (state, info) =>
        calls.push({ type: info.type, size: state.size }));
      await waitFor(() => calls.length > 0, 'the bulk snapshot');
      const chunks = received.filter((m) => m.op === 'snapshot' && m.id === s.id);
      s.unsubscribe();
      return { calls, chunks: chunks.map((m) => ({ n: m.items.length, more: m.more === true })) };
    });
    checkEqual(r.calls, [{ type: 'snapshot', size: 1200 }], 'one onState call with the whole state');
    check(r.chunks.length >= 2, `several snapshot messages (got ${JSON.stringify(r.chunks)})`);
    check(r.chunks.slice(0, -1).every((m) => m.more) && !r.chunks[r.chunks.length - 1].more,
          'more: true on every chunk but the last');
  }],

  ['after a server restart the client resumes and sends queued requests once', async () => {
    const before = await page.evaluate(() => ({ offset: sub.offset, mark: log.length }));
    checkEqual(await server.stop(), 0, 'docsearch exit code after SIGTERM');
    await page.evaluate(async (key) => {
      await waitFor(() => !c.connected, 'the client to see the disconnect');
      window.pendingAppend = c.append(put('ct-offline', 'Written offline'), { idempotencyKey: key });
      window.pendingGet = c.get('documents', 'ct-1');
    }, `ct-offline-${run_id}`);
    await server.start();  // same port, same data directory
    const r = await page.evaluate(async (mark) => {
      const appended = await pendingAppend;
      const got = await pendingGet;
      await waitFor(() => sub.state.has('ct-offline'), 'the offline append in the subscription');
      return { appended, got: got.value.title, after: log.slice(mark), statuses };
    }, before.mark);
    checkEqual(r.got, 'One', 'the queued get');
    checkEqual(r.after[0].type, 'resumed', 'the subscription resumed (no new snapshot)');
    checkEqual(r.after[0].offset, before.offset, 'resumed from the last applied offset');
    check(r.after.every((e) => e.type !== 'snapshot'), 'no snapshot after the resume');
    check(r.statuses.includes('closed') && r.statuses[r.statuses.length - 1] === 'open',
          `statuses went closed, then open: ${r.statuses}`);
    const { body } = await server.json('/v1/events?from=1&limit=10000');
    const copies = body.events.filter((e) => e.key === 'ct-offline').length;
    checkEqual(copies, 1, 'the queued append took effect once');
    checkEqual(body.events.filter((e) => e.key === 'welcome').length, 1,
               'the restart did not add the example documents again');
    checkEqual(r.appended.offsets[0], body.events.find((e) => e.key === 'ct-offline').offset,
               'the queued append resolved with its offset');
  }],

  ['when the server\'s data went back, a reset snapshot replaces the state', async () => {
    const before = await page.evaluate(() => ({ offset: sub.offset, mark: log.length }));
    await server.stop();
    server = new DocsearchServer(binary, tempDir('derive-client-test-fresh-'), server.port,
                                 ['--www', pages]);
    await server.start();  // the same port, an empty data directory
    const r = await page.evaluate(async (mark) => {
      await waitFor(() => log.slice(mark).some((e) => e.reset), 'a reset snapshot');
      const after = log.slice(mark);
      const { offsets } = await c.append(put('ct-new', 'After the reset'));
      await waitFor(() => sub.state.has('ct-new'), 'a change after the reset');
      return { after, offsetAtReset: after.find((e) => e.reset).offset, keys: [...sub.state.keys()], appended: offsets[0] };
    }, before.mark);
    check(r.offsetAtReset < before.offset, 'the reset snapshot is at the fresh server\'s offset');
    checkEqual(r.after.find((e) => e.reset).keys, [], 'the old ct- documents are gone');
    checkEqual(r.keys, ['ct-new'], 'the state follows the new server');
  }],

  ['close() stops reconnecting and rejects new requests', async () => {
    const r = await page.evaluate(async () => {
      c.close();
      const e = await c.get('documents', 'ct-new').then(() => null, (e) => e.code);
      return { e, connected: c.connected, last: statuses[statuses.length - 1] };
    });
    checkEqual(r, { e: 'closed', connected: false, last: 'closed' }, 'after close()');
    checkEqual(pageErrors, [], 'uncaught errors in the page');
    checkEqual(await server.stop(), 0, 'docsearch exit code');
  }],
], { timeoutMs: 60000, overallMs: 240000 });
