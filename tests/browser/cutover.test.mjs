// A view version cutover seen from Chromium (docs/storage.md, "View versions"):
// docsearch restarted with --search-version 3 builds search v3 beside the
// served v2 and cuts over by itself. Page A, subscribed to the postings of one
// word in every document, must see one reset snapshot to the complete v3 and
// never fewer postings than the documents hold; page B appends and reads its
// own writes (get with after=) the whole time, across the cutover.
//
//   node cutover.test.mjs <path to the docsearch binary>
import { join } from 'node:path';

import {
  DocsearchServer, check, checkEqual, here, launchBrowser, loadChromium, onCleanup, run, sleep,
  tempDir,
} from './lib.mjs';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node cutover.test.mjs <docsearch binary>');
  process.exit(2);
}

const pages = join(here, 'pages');
const chromium = await loadChromium();
// Enough documents that v3 takes a while to build beside v2.
const documents = 4000;
const filler = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
let server;
let browser;
let pageA;
let pageB;
const pageErrors = [];

async function appendDocuments() {
  let last = 0;
  for (let from = 0; from < documents; from += 500) {
    const events = Array.from({ length: 500 }, (_, i) => ({
      type: 'doc.put', key: `cv-${from + i}`,
      data: { title: `zeta ${from + i}`, text: `${filler} n${(from + i) % 97}` },
    }));
    const r = await fetch(`${server.url}/v1/events`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events),
    });
    checkEqual(r.status, 201, 'append status');
    last = (await r.json()).offsets.at(-1);
  }
  return last;
}

async function openPage(url) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${url}/client_test.html`);
  await page.waitForFunction(() => window.ready === true);
  await page.evaluate(() => {
    window.c = derive.connect(undefined, { minDelayMs: 50, maxDelayMs: 200 });
  });
  return page;
}

await run([
  ['page A holds every posting of one word while search v2 serves', async () => {
    server = new DocsearchServer(binary, tempDir('derive-cutover-test-'), 0, ['--www', pages]);
    const url = await server.start();
    const last = await appendDocuments();
    const probe = await server.json(`/v1/views/search/${encodeURIComponent('zeta/cv-0')}?after=${last}`);
    checkEqual(probe.body.value, 2, 'v2: a title word counts twice');
    browser = await launchBrowser(chromium);
    onCleanup(() => browser.close());
    pageA = await openPage(url);
    const r = await pageA.evaluate(async (n) => {
      window.log = [];
      window.sub = c.subscribe('search', { prefix: 'zeta/' }, (state, info) =>
        log.push({ type: info.type, reset: info.reset === true, offset: info.offset,
                   size: state.size, weight: state.get('zeta/cv-0') }));
      await waitFor(() => sub.state.size === n, 'every posting');
      return log.at(-1);
    }, documents);
    checkEqual(r.size, documents, 'postings');
    checkEqual(r.weight, 2, 'v2 weight');
  }],

  ['a restart with --search-version 3 cuts over while the pages stay subscribed', async () => {
    const mark = await pageA.evaluate(() => log.length);
    checkEqual(await server.stop(), 0, 'docsearch exit code after SIGTERM');
    server.extraArgs = ['--www', pages, '--search-version', '3'];
    await server.start();  // same port and data: v2 serves (stale) while v3 builds
    const views = await server.json('/v1/views');
    const search = views.body.views.find((v) => v.name === 'search');
    checkEqual(search.version, 2, `v2 still served right after the start: ${JSON.stringify(search)}`);
    check(search.versions.some((v) => v.version === 3 && v.role === 'building'),
          `v3 builds beside: ${JSON.stringify(search.versions)}`);
    pageB = await openPage(server.url);
    // Page B: append, then read the write back through search, until well
    // after page A saw the cutover.
    const reads = pageB.evaluate(async () => {
      const out = [];
      for (let i = 0; i < 400; i++) {
        const key = `rw-${i}`;
        const { offsets } = await c.append({ type: 'doc.put', key, data: { title: `rwt${i}`, text: 'x' } });
        const got = await c.get('search', `rwt${i}/${key}`, { after: offsets[0] });
        out.push({ offset: offsets[0], value: got.value, at: got.offset });
        if (window.stopReads) break;
      }
      return out;
    });
    const seen = await pageA.evaluate(async (mark) => {
      await waitFor(() => log.slice(mark).some((e) => e.reset), 'a reset snapshot', 60000);
      return log.slice(mark);
    }, mark);
    await sleep(300);
    await pageB.evaluate(() => { window.stopReads = true; });
    const written = await reads;

    const resets = seen.filter((e) => e.reset);
    checkEqual(resets.length, 1, `one reset snapshot: ${JSON.stringify(seen.slice(0, 5))}`);
    checkEqual(seen[0].type, 'resumed', 'page A resumed on v2 before the cutover');
    check(seen.every((e) => e.size >= documents),
          `never fewer postings than documents: ${JSON.stringify(seen.map((e) => e.size))}`);
    checkEqual(resets[0].size, documents, 'the reset snapshot is the complete v3');
    checkEqual(resets[0].weight, 5, 'the reset snapshot comes from v3 (title boost)');
    const before = seen.slice(0, seen.indexOf(resets[0]));
    check(before.every((e) => e.weight === 2), 'nothing of v3 before the reset');
    check(written.length >= 2, `page B kept writing (${written.length} round trips)`);
    for (const w of written) {
      check(w.value !== null, `read-your-writes at offset ${w.offset}: ${JSON.stringify(w)}`);
      check(w.at >= w.offset, `read at or after its write: ${JSON.stringify(w)}`);
      checkEqual(w.value, 5, `read from v3 (served once it holds the write)`);
    }
    const after = await server.json('/v1/views');
    const s = after.body.views.find((v) => v.name === 'search');
    checkEqual(s.version, 3, 'v3 served');
  }],

  ['both pages keep working after the cutover', async () => {
    const r = await pageB.evaluate(async () => {
      const { offsets } = await c.append({ type: 'doc.put', key: 'cv-new', data: { title: 'zeta new', text: 'x' } });
      return offsets[0];
    });
    const size = await pageA.evaluate(async ([n, at]) => {
      await waitFor(() => sub.offset >= at && sub.state.size === n + 1, 'the new posting');
      return sub.state.get('zeta/cv-new');
    }, [documents, r]);
    checkEqual(size, 5, 'the new posting has v3 weight');
    checkEqual(pageErrors, [], 'uncaught errors in the pages');
    checkEqual(await server.stop(), 0, 'docsearch exit code');
  }],
], { timeoutMs: 90000, overallMs: 240000 });
