// The booking page in Chromium: two pages (two users) click the same free
// seat at once. Exactly one gets it: the log decides, each page is shown its
// own request's outcome (client.outcome), and both pages end up showing the
// same holder; no seat stays pending.
//
//   node booking.test.mjs <path to the booking binary>
import {
  DocsearchServer as SampleServer, check, checkEqual, launchBrowser, loadChromium, onCleanup,
  run, saveScreenshot, tempDir,
} from './lib.mjs';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node booking.test.mjs <booking binary>');
  process.exit(2);
}

const chromium = await loadChromium();
let server;
let browser;
const pages = {};

async function openPage(url, user) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  await context.addInitScript((name) => localStorage.setItem('booking.me', name), user);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.errors = errors;
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'open',
                             null, { timeout: 10000 });
  return page;
}

const seat = (page, id) => page.locator(`#map button[data-seat="${id}"]`);

await run([
  ['two pages open the live seat map', async () => {
    server = new SampleServer(binary, tempDir('derive-booking-'));
    const url = await server.start();
    browser = await launchBrowser(chromium);
    onCleanup(() => browser.close());
    pages.ann = await openPage(url, 'ann');
    pages.bob = await openPage(url, 'bob');
    checkEqual(await pages.ann.locator('#map button.seat').count(), 200, 'seats on the map');
    await pages.bob.waitForFunction(
      () => document.getElementById('availability').textContent.startsWith('200 free'), null,
      { timeout: 10000 });
  }],

  ['both click C5 at once: one holder, each told its own outcome', async () => {
    // Both clicks at one moment of the shared clock (one browser process), so
    // that neither page can have seen the other's claim yet.
    const at = Date.now() + 500;
    await Promise.all(Object.values(pages).map((page) => page.evaluate((when) => {
      setTimeout(() => document.querySelector('#map button[data-seat="C5"]').click(),
                 when - Date.now());
    }, at)));
    for (const page of Object.values(pages)) {
      await page.waitForFunction(() => !document.querySelector('#map .pending') &&
                                       document.querySelectorAll('#messages li').length === 1,
                                 null, { timeout: 10000 });
    }
    const mine = {};
    const said = {};
    for (const [user, page] of Object.entries(pages)) {
      mine[user] = await seat(page, 'C5').evaluate((b) => b.classList.contains('mine'));
      said[user] = await page.locator('#messages li').first().textContent();
    }
    check(mine.ann !== mine.bob, `exactly one page holds C5 (ann ${mine.ann}, bob ${mine.bob})`);
    const winner = mine.ann ? 'ann' : 'bob';
    const loser = mine.ann ? 'bob' : 'ann';
    checkEqual(said[winner], 'C5: booked', `${winner}'s outcome`);
    checkEqual(said[loser], `C5: taken (by ${winner})`, `${loser}'s outcome`);
    await pages[loser].waitForFunction(
      () => document.querySelector('#map button[data-seat="C5"]').classList.contains('taken'),
      null, { timeout: 10000 });
    const { body } = await server.json('/v1/views/seats/C5');
    checkEqual(body.value.by, winner, 'the seats view');
    const log = await server.json('/v1/events?from=1');
    const outcomes = log.body.events.filter((e) => e.type === 'seat.outcome');
    checkEqual(outcomes.map((e) => e.data.result).sort(), ['granted', 'taken'], 'outcomes in the log');
    await saveScreenshot(pages[loser], 'booking-taken.png');
  }],

  ['the holder cancels: the seat is free on both pages', async () => {
    const winner = (await seat(pages.ann, 'C5').evaluate((b) => b.classList.contains('mine'))) ? 'ann' : 'bob';
    await seat(pages[winner], 'C5').click();
    for (const page of Object.values(pages)) {
      await page.waitForFunction(() => {
        const b = document.querySelector('#map button[data-seat="C5"]');
        return !b.classList.contains('taken') && !b.classList.contains('mine') &&
               !b.classList.contains('pending');
      }, null, { timeout: 10000 });
    }
    checkEqual(await pages[winner].locator('#messages li').first().textContent(), 'C5: cancelled',
               'the holder is told');
    for (const page of Object.values(pages)) checkEqual(page.errors, [], 'page errors');
  }],
]);
