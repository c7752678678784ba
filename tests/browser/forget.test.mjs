// Issue 13 end to end, as a regulator would check it: a subject forgotten
// from a running docsearch while a Chromium page shows its documents.
//
//   node forget.test.mjs <docsearch binary> <derive binary>
//
// Alice (the subject) writes documents whose ids, titles and texts hold
// strings found nowhere else, some needing JSON escapes (quotes, a backslash,
// non-ASCII); one through the page's editor in her own tab (its Author field
// is the events' subject), 1,900 more over HTTP, spread over 10,000 events
// among Bob's, Carol's and subject-less ones. Another page, open throughout,
// lists her documents, shows her hits for a word she shares with Bob and has
// one of her documents open in its editor. After
// `POST /v1/subjects/{subject}/forget` returns:
// - right away, `derive verify-forgotten` scans every file under the data
//   directory for each string, plain and JSON-escaped: none may be found;
// - the page shows none of it, without a reload (nor in its inputs: the
//   editor lets her document go), and still shows the others' (the same
//   search now lists Bob's documents);
// - the log holds her events as redacted records (offset, ts, type) only;
// - every view equals a recomputation from the redacted log: the test's own
//   for `documents` and `stats`, each view's audit, and a fresh docsearch
//   started on a copy of the log, key by key for all three views;
// - other subjects' documents, hits and idempotency keys are untouched;
// - after a restart (on main, the compaction at open), no file holds them.
// The scan right after forget is asserted last, so that the others report
// first; it needs the online compaction (docs/storage.md, "Erasure").
import { execFile } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import {
  DocsearchServer, check, checkEqual, launchBrowser, loadChromium, onCleanup, run,
  saveScreenshot, tempDir,
} from './lib.mjs';

const [binary, deriveTool] = process.argv.slice(2);
if (!binary || !deriveTool) {
  console.error('usage: node forget.test.mjs <docsearch binary> <derive binary>');
  process.exit(2);
}
const chromium = await loadChromium();
const exec = promisify(execFile);

// Alice's unique strings; `r` keeps runs apart. Words are lower-case so that
// the search view (which lower-cases) stores them as written here.
const r = Math.random().toString(36).slice(2, 8).replace(/[^a-z]/g, 'q');
const subject = `ålice-${r}@example.org`;
const keyMark = `ålicekey${r}`;               // in every id of hers
const titleWord = `ålicetitle${r}`;           // in every title of hers
const titleQuoted = `"${titleWord}"`;         // as written in the titles: JSON escapes the quotes
const textWord = `alicetext${r}`;             // in every text of hers
const textRaw = `back\\slash ${textWord} “curly” ☃`;  // a backslash and non-ASCII around it
const idemMark = `aliceidem${r}`;             // idempotency keys of requests with her events
const needles = [subject, keyMark, titleWord, titleQuoted, textWord, textRaw, idemMark];

const totalEvents = 10000;
const examples = 6;          // docsearch's example documents, appended on an empty log
const pageDocId = `${keyMark}/from-the-page`;

let dataDir;
let server;
let browser;
let page;
const alice = new Set();     // offsets of her events
let aliceEvents = 0;
let bobIdem;                 // an idempotency key of a request without her events
let scanAfterForget;         // `derive verify-forgotten` right after forget returned
let receipt;
let liveViews;               // every view of the live server after forget, key by key

function aliceEvent(n) {
  const id = `${keyMark}/doc-${n % 997}`;
  if (n % 40 === 0) return { type: 'doc.delete', key: id, subject };
  return { type: 'doc.put', key: id, subject,
           data: { title: `Notes ${titleQuoted} marsupial №${n}`, text: `${textRaw} shared words ${n}` } };
}

function otherEvent(n) {
  const who = ['bob', 'carol', null][n % 3];
  const key = `${who ?? 'anon'}-doc-${n % 1500}`;
  if (n % 50 === 1) return { type: 'doc.delete', key, ...(who ? { subject: who } : {}) };
  return { type: 'doc.put', key, ...(who ? { subject: who } : {}),
           data: { title: `${who ?? 'anonymous'}'s notes ${n}`,
                   text: `shared words ${who}word ${n}${who === 'bob' && n % 7 === 0 ? ' marsupial' : ''}` } };
}

async function openPage(url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const p = await context.newPage();
  p.errors = [];
  p.on('pageerror', (e) => p.errors.push(e.message));
  await p.goto(url);
  await p.waitForSelector('#connection[data-state="open"]', { timeout: 10000 });
  await p.waitForSelector('#documents li[data-id="welcome"]', { timeout: 10000 });
  return p;
}

async function post(path, body, headers = {}) {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

// Appends `count` events, one in five Alice's, in requests of 500; every
// request holding one of hers has an idempotency key with her mark.
async function appendEvents(count) {
  let last = 0;
  for (let from = 0; from < count; from += 500) {
    const n = Math.min(500, count - from);
    const bobOnly = from === 0;  // the first request: nobody's but the others'
    const events = Array.from({ length: n }, (_, i) =>
      (!bobOnly && (from + i) % 5 === 0 ? aliceEvent(from + i) : otherEvent(from + i)));
    const key = bobOnly ? `others-${r}-${from}` : `${idemMark}-${from}`;
    const a = await post('/v1/events', events, { 'idempotency-key': key });
    checkEqual(a.status, 201, `append status: ${JSON.stringify(a.body)}`);
    events.forEach((e, i) => {
      if (e.subject === subject) alice.add(a.body.offsets[i]);
    });
    if (bobOnly) bobIdem = { key, events, offsets: a.body.offsets };
    last = a.body.offsets.at(-1);
  }
  return last;
}

async function allEvents(url) {
  const events = [];
  for (let from = 1; ;) {
    const page = await (await fetch(`${url}/v1/events?from=${from}&limit=10000`)).json();
    events.push(...page.events);
    if (!page.events.length || page.next > page.head) return events;
    from = page.next;
  }
}

async function viewState(url, view, after) {
  const state = new Map();
  for (let start = ''; ;) {
    const q = `limit=10000&after=${after}&timeout_ms=30000&start=${encodeURIComponent(start)}`;
    const response = await fetch(`${url}/v1/views/${view}?${q}`);
    checkEqual(response.status, 200, `GET /v1/views/${view}`);
    const page = await response.json();
    for (const { key, value } of page.items) state.set(key, value);
    if (page.next === null) return state;
    start = page.next;
  }
}

// docsearch's `documents` and `stats` recomputed here from the log (its README).
function recompute(events) {
  const documents = new Map();
  const totals = { documents: 0, puts: 0, deletes: 0 };
  for (const e of events) {
    if (e.redacted) continue;
    if (e.type === 'doc.put') {
      documents.set(e.key, { title: e.data.title, text: e.data.text, updated: e.offset });
      totals.puts++;
    } else if (e.type === 'doc.delete' && documents.delete(e.key)) {
      totals.deletes++;
    }
  }
  totals.documents = documents.size;
  return { documents, totals };
}

// `value` with every object's members in name order, to compare JSON values.
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
}

// `derive verify-forgotten --json`: {files, bytes, hits: [{file, offset, string, form}]}.
async function scan(dir = dataDir) {
  try {
    const { stdout } = await exec(deriveTool, ['--json', 'verify-forgotten', '--data', dir, ...needles]);
    return JSON.parse(stdout);
  } catch (e) {
    if (e.code !== 1) throw e;  // 1: found
    return JSON.parse(e.stdout);
  }
}

// Everything the page shows or holds in its document: text, markup and the
// values of its inputs (the editor, the search box).
const pageContent = () => page.evaluate(() => document.body.innerText + document.body.innerHTML +
  [...document.querySelectorAll('input, textarea')].map((e) => e.value).join('\n'));
const missing = (text) => needles.filter((n) => !text.includes(n.replace(/"/g, '')));

await run([
  ['Alice writes through her page, then 10,000 events in all while another page watches', async () => {
    dataDir = tempDir('derive-forget-test-');
    server = new DocsearchServer(binary, dataDir);
    const url = await server.start();
    browser = await launchBrowser(chromium);
    onCleanup(() => browser.close());
    const own = await openPage(url);  // her tab: the Author field names her
    await own.fill('#doc-author', subject);
    await own.fill('#doc-id', pageDocId);
    await own.fill('#doc-title', `From the page ${titleQuoted}`);
    await own.fill('#doc-text', textRaw);
    await own.click('#save');
    await own.waitForSelector('#form-message[data-kind="ok"]', { timeout: 10000 });
    const [saved] = (await allEvents(url)).filter((e) => e.key === pageDocId);
    checkEqual(saved.subject, subject, 'the page\'s Author field is the event\'s subject');
    alice.add(saved.offset);
    checkEqual(own.errors, [], 'uncaught errors in her page');
    await own.context().close();

    page = await openPage(url);  // someone else's page, open from now on
    await page.evaluate(() => { window.notReloaded = true; });

    const last = await appendEvents(totalEvents - examples - 1);
    checkEqual(last, totalEvents, 'events in the log');
    aliceEvents = alice.size;
    check(aliceEvents > 1500 && aliceEvents < totalEvents / 4, `Alice's events: ${aliceEvents}`);
    await server.json(`/v1/views/stats/totals?after=${last}`);
  }],

  ['the page lists her documents, her search hits and one of hers in its editor; the files hold her strings', async () => {
    await page.fill('#search', 'marsupial');  // in her titles and in some of Bob's texts
    await page.waitForFunction(
      (mark) => document.querySelectorAll(`#results li[data-id^="${mark}"]`).length >= 50,
      keyMark, { timeout: 10000 });
    await page.waitForFunction(
      (mark) => document.querySelectorAll(`#documents li[data-id^="${mark}"]`).length >= 50,
      keyMark, { timeout: 10000 });
    await page.locator(`#documents li[data-id^="${keyMark}"] .doc-main`).first().click();
    await page.waitForFunction((mark) => document.querySelector('#doc-id').value.startsWith(mark),
                               keyMark, { timeout: 10000 });
    const text = await pageContent();
    for (const s of [keyMark, titleWord, textWord]) check(text.includes(s), `the page shows ${s}`);
    await saveScreenshot(page, 'forget-before.png');
    const before = await scan();
    check(before.hits.length > 0, 'the byte scan finds her strings before forget (it can fail)');
    const found = new Set(before.hits.map((h) => h.string));
    for (const n of needles) check(found.has(n), `found before forget: ${n}`);
  }],

  ['forget returns a receipt; the byte scan runs at once', async () => {
    const others = (await viewState(server.url, 'documents', 0)).size;
    const f = await post(`/v1/subjects/${encodeURIComponent(subject)}/forget`);
    scanAfterForget = await scan();  // before anything else
    scanAfterForget.views = await scan(join(dataDir, 'views'));  // the views' share, for the report
    checkEqual(f.status, 200, `forget: ${JSON.stringify(f.body)}`);
    receipt = f.body;
    checkEqual(receipt.type, 'derive.erasure', 'receipt type');
    checkEqual(receipt.redacted, aliceEvents, 'events redacted');
    const offsets = receipt.offsets.flatMap(([a, b]) =>
      Array.from({ length: b - a + 1 }, (_, i) => a + i));
    checkEqual(offsets, [...alice].sort((a, b) => a - b), 'the receipt names exactly her offsets');
    checkEqual([...receipt.views].sort(), ['documents', 'search', 'stats'], 'views rebuilt');
    check(!needles.some((n) => JSON.stringify(receipt).includes(n)), 'the receipt holds none of her strings');
    check(others > 0, 'documents before forget');
  }],

  ['the page shows none of it without a reload, and still the others\'', async () => {
    // The same query now finds Bob's documents only; the editor let hers go.
    await page.waitForFunction((marks) => {
      const text = document.body.innerText + document.body.innerHTML +
        [...document.querySelectorAll('input, textarea')].map((e) => e.value).join('\n');
      return !marks.some((m) => text.includes(m)) &&
             document.querySelectorAll('#results li[data-id^="bob-doc-"]').length > 0;
    }, [keyMark, titleWord, textWord], { timeout: 15000 }).catch(async (e) => {
      const text = await pageContent();
      const held = needles.filter((n) => text.includes(n.replace(/"/g, '')));
      const inputs = await page.evaluate(() => [...document.querySelectorAll('input, textarea')]
        .map((i) => `#${i.id}=${JSON.stringify(i.value.slice(0, 60))}`));
      const results = await page.evaluate(() => ({
        meta: document.querySelector('#results-meta')?.textContent,
        hits: [...document.querySelectorAll('#results li')].map((li) => li.dataset.id).slice(0, 12),
      }));
      await saveScreenshot(page, 'forget-failed.png');
      const views = await (await fetch(`${server.url}/v1/views`)).json();
      const direct = await (await fetch(`${server.url}/v1/query/search/search?q=marsupial&limit=3`)).json();
      const postings = await (await fetch(`${server.url}/v1/views/search?prefix=marsupial/&limit=3`)).json();
      console.log('views:', JSON.stringify(views));
      console.log('direct query:', JSON.stringify(direct));
      console.log('postings:', JSON.stringify(postings));
      console.log('server log:\n' + server.output.split('\n')
        .filter((l) => /versions|eraser|serving|retired|rebuild|generation|WARN|ERROR/.test(l)).join('\n'));
      throw new Error(`${e.message}\n  still on the page: ${JSON.stringify(held)}` +
                      `\n  inputs: ${inputs.join(' ')}\n  results: ${JSON.stringify(results)}`);
    });
    checkEqual(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
    const text = await pageContent();
    checkEqual(missing(text), needles, 'no string of hers on the page');
    checkEqual(await page.locator('#editor-heading').textContent(), 'New document', 'the editor');
    check(await page.locator('#documents li[data-id^="bob-doc-"]').count() > 0, 'Bob\'s documents listed');
    check(await page.locator('#documents li[data-id^="carol-doc-"]').count() > 0, 'Carol\'s listed');
    await saveScreenshot(page, 'forget-after.png');
    checkEqual(page.errors, [], 'uncaught errors in the page');
  }],

  ['the log keeps only redacted records of hers; every view equals a recomputation', async () => {
    const events = await allEvents(server.url);
    checkEqual(events.length, totalEvents + 1, 'events and the receipt');
    for (const e of events) {
      const json = JSON.stringify(e);
      check(!needles.some((n) => json.includes(n)), `an event holds her string: ${json}`);
      checkEqual(e.redacted === true, alice.has(e.offset), `redacted iff hers: ${json}`);
    }
    checkEqual(events.at(-1).type, 'derive.erasure', 'the receipt is the last event');
    const expected = recompute(events);
    liveViews = {};
    for (const view of ['documents', 'search', 'stats'])
      liveViews[view] = await viewState(server.url, view, receipt.offset);
    checkEqual(canonical([...liveViews.documents].sort()), canonical([...expected.documents].sort()),
               'documents');
    checkEqual(canonical(liveViews.stats.get('totals')), canonical(expected.totals), 'stats');
    check(![...liveViews.search.keys()].some((k) => k.includes(keyMark) || k.includes(titleWord)),
          'search holds none of her words or ids');
    const counts = await page.evaluate(() => document.querySelector('#doc-count').textContent);
    checkEqual(Number(counts), expected.documents.size, 'the page\'s document count');
    for (const view of ['documents', 'search', 'stats']) {
      checkEqual((await post(`/v1/admin/views/${view}/audit`)).status, 202, `audit ${view}`);
      let audit = null;
      while (!audit) {
        const a = await server.json(`/v1/admin/views/${view}/audit`);
        audit = a.body.audit;
        if (!audit) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      check(audit.ok, `audit of ${view}: ${JSON.stringify(audit)}`);
      check(audit.offset >= receipt.offset, `audit of ${view} after the erasure`);
    }
  }],

  ['other subjects\' idempotency keys are untouched', async () => {
    const again = await post('/v1/events', bobIdem.events, { 'idempotency-key': bobIdem.key });
    checkEqual(again.status, 200, 'a retry of a request without her events is a replay');
    checkEqual(again.body.offsets, bobIdem.offsets, 'the replayed offsets');
  }],

  ['a fresh docsearch on a copy of the redacted log derives the same views', async () => {
    const head = receipt.offset;
    checkEqual(await server.stop(), 0, 'docsearch exit code after SIGTERM');
    const copy = tempDir('derive-forget-copy-');
    copyFileSync(join(dataDir, 'data.mdb'), join(copy, 'data.mdb'));
    const fresh = new DocsearchServer(binary, copy);
    const url = await fresh.start();
    for (const view of ['documents', 'search', 'stats']) {
      const state = await viewState(url, view, head);
      checkEqual(state.size, liveViews[view].size, `${view}: keys`);
      for (const [key, value] of state)
        checkEqual(liveViews[view].get(key), value, `${view}/${key}`);
    }
    checkEqual(await fresh.stop(), 0, 'the fresh docsearch exit code');
  }],

  ['after a restart no file under the data directory holds her strings', async () => {
    await server.start();  // the same data directory: compacted at open (docs/storage.md, "Erasure")
    const { hits, files } = await scan();
    check(files > 0, 'files scanned');
    checkEqual(hits.slice(0, 5), [], `her strings after a restart (${hits.length} hits)`);
    const totals = await server.json(`/v1/views/stats/totals?after=${receipt.offset}`);
    checkEqual(canonical(totals.body.value), canonical(liveViews.stats.get('totals')), 'stats after the restart');
    checkEqual(await server.stop(), 0, 'docsearch exit code');
  }],

  ['no file under the data directory held her strings when forget returned', async () => {
    const { files, bytes, hits, truncated } = scanAfterForget;
    check(files > 0 && bytes > 0, 'files scanned');
    const counts = {};  // "file: string (form)" -> hits
    for (const h of hits) {
      const what = `${h.file.slice(dataDir.length + 1)}: ${JSON.stringify(h.string)} (${h.form})`;
      counts[what] = (counts[what] ?? 0) + 1;
    }
    const first = hits.slice(0, 5).map((h) => `${h.file}:${h.offset}`);
    const views = scanAfterForget.views;
    checkEqual(counts, {}, `her strings in ${files} files (${bytes} bytes) right after forget ` +
                           `(${hits.length}${truncated ? '+' : ''} hits, the first at ${first.join(', ')}; ` +
                           `views/ alone: ${views.hits.length}${views.truncated ? '+' : ''} hits)`);
  }],
], { timeoutMs: 60000, overallMs: 180000 });
