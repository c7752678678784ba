// End to end: two browser windows on the docsearch page see each other's
// changes live, without reloading.
//
//   node docsearch_e2e.test.mjs <path to the docsearch binary>
//
// Window A adds a document containing a rare word while window B's search box
// holds that word: B shows the hit. A edits its title: B's hit follows. A
// deletes it: B's hit disappears. Screenshots go to artifacts/.
import {
  DocsearchServer, check, checkEqual, launchBrowser, loadChromium, onCleanup, run,
  saveScreenshot, tempDir,
} from './lib.mjs';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node docsearch_e2e.test.mjs <docsearch binary>');
  process.exit(2);
}

const chromium = await loadChromium();
const rare = `quokka${Math.random().toString(36).slice(2, 8).replace(/[^a-z]/g, 'x')}`;
const id = `e2e-${rare}`;
let server;
let browser;
let a;
let b;

async function openWindow(url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.errors = errors;
  await page.goto(url);
  await page.waitForSelector('#connection[data-state="open"]', { timeout: 10000 });
  return page;
}

const hit = (page, docId) => page.locator(`#results li[data-id="${docId}"]`);

await run([
  ['the page starts live with the example documents', async () => {
    server = new DocsearchServer(binary, tempDir('derive-docsearch-e2e-'));
    const url = await server.start();
    browser = await launchBrowser(chromium);
    onCleanup(() => browser.close());
    a = await openWindow(url);
    b = await openWindow(url);
    await a.waitForSelector('#documents li[data-id="welcome"]', { timeout: 10000 });
    // Each window renders when its own subscription's snapshot arrives.
    await b.waitForSelector('#documents li[data-id="welcome"]', { timeout: 10000 });
    const count = await b.locator('#documents li[data-id]').count();
    check(count >= 5, `window B lists the example documents (got ${count})`);
    await b.waitForSelector('#view-status .view', { timeout: 10000 });
  }],

  ['a search in window B has no hit for a word no document contains', async () => {
    await b.fill('#search', rare);
    await b.waitForSelector('#results-empty:not([hidden])', { timeout: 10000 });
    checkEqual(await b.locator('#results li').count(), 0, 'hits before the document exists');
  }],

  ['a document added in window A appears in window B\'s results without reload', async () => {
    await a.fill('#doc-id', id);
    await a.fill('#doc-title', `Field notes on the ${rare}`);
    await a.fill('#doc-text', `A small marsupial. The ${rare} smiles for photographs.`);
    const started = Date.now();
    await a.click('#save');
    await a.waitForSelector('#form-message[data-kind="ok"]', { timeout: 10000 });
    await hit(b, id).waitFor({ timeout: 10000 });
    console.log(`     window B showed the hit ${Date.now() - started} ms after the click`);
    checkEqual(await hit(b, id).locator('.hit-title').textContent(),
               `Field notes on the ${rare}`, 'the hit title');
    await b.waitForSelector(`#documents li[data-id="${id}"]`, { timeout: 10000 });
    await saveScreenshot(b, 'docsearch-window-b-hit.png');
  }],

  ['an edit in window A updates the hit in window B', async () => {
    await a.fill('#doc-title', `Revised notes on the ${rare}`);
    await a.click('#save');
    await b.waitForFunction(
      ([sel, text]) => document.querySelector(sel)?.textContent === text,
      [`#results li[data-id="${id}"] .hit-title`, `Revised notes on the ${rare}`],
      { timeout: 10000 });
  }],

  ['a delete in window A removes the hit from window B', async () => {
    await a.locator(`#documents li[data-id="${id}"] button[data-action="delete"]`).click();
    await hit(b, id).waitFor({ state: 'detached', timeout: 10000 });
    await b.waitForSelector('#results-empty:not([hidden])', { timeout: 10000 });
    check(await b.locator(`#documents li[data-id="${id}"]`).count() === 0,
          'window B no longer lists the document');
    await b.waitForFunction(() => /\b1 delete\b/.test(document.querySelector('#totals')?.textContent),
                            null, { timeout: 10000 });
    await saveScreenshot(a, 'docsearch-window-a.png');
    await saveScreenshot(b, 'docsearch-window-b-after-delete.png');
  }],

  ['invalid input is refused with the server\'s message', async () => {
    const { status, body } = await server.json('/v1/events', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'doc.put', key: 'x', data: { title: 7, text: '' } }),
    });
    checkEqual(status, 400, 'status of a doc.put with a numeric title');
    checkEqual(body.error.code, 'invalid_event', 'error code');
    check(/title/.test(body.error.message), `the message names the field: ${body.error.message}`);
  }],

  ['no script errors in either window', async () => {
    checkEqual(a.errors, [], 'window A errors');
    checkEqual(b.errors, [], 'window B errors');
    checkEqual(await server.stop(), 0, 'docsearch exit code after SIGTERM');
  }],
]);
