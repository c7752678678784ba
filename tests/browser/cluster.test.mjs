// Cluster mode in Chromium: three docsearch nodes on a 3-server NATS
// JetStream cluster (real nats-server processes). A page served by node B,
// its client given the URLs of B and C, sees a document added on node A; when
// node B is killed, the client fails over to C, resumes its subscription
// there (same offsets on every node) and keeps seeing A's writes.
//
//   node cluster.test.mjs <path to the docsearch binary>
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import {
  DocsearchServer, check, checkEqual, here, launchBrowser, loadChromium, onCleanup, run, skip,
  sleep, tempDir,
} from './lib.mjs';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node cluster.test.mjs <docsearch binary>');
  process.exit(2);
}
const natsServer = '/usr/sbin/nats-server';
if (!existsSync(natsServer)) {
  await skip('no nats-server (install the nats-server package)');
}
const pages = join(here, 'pages');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Three nats-servers in one JetStream cluster; resolves with their client URLs.
async function startNats(dir) {
  const ports = [];
  for (let i = 0; i < 6; i++) ports.push(await freePort());
  const routes = [3, 4, 5].map((j) => `nats-route://127.0.0.1:${ports[j]}`).join(', ');
  const urls = [];
  for (let i = 0; i < 3; i++) {
    const conf = join(dir, `n${i + 1}.conf`);
    writeFileSync(conf, `server_name: n${i + 1}\nlisten: 127.0.0.1:${ports[i]}\n` +
      `jetstream { store_dir: "${join(dir, `n${i + 1}`)}" }\n` +
      `cluster { name: browser, listen: 127.0.0.1:${ports[3 + i]}, routes: [${routes}] }\n`);
    const child = spawn(natsServer, ['-c', conf], { stdio: 'ignore' });
    onCleanup(() => child.kill('SIGKILL'));
    urls.push(`nats://127.0.0.1:${ports[i]}`);
  }
  return urls;
}

const chromium = await loadChromium();
const nodes = [];
let page;
let sawAt;

async function appendOn(node, key, title) {
  const r = await node.json('/v1/events', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'doc.put', key, data: { title, text: `text of ${key}` } }),
  });
  checkEqual(r.status, 201, `append ${key} on node ${node.port}`);
  return r.body.offset;
}

await run([
  ['three nodes start on one stream', async () => {
    const dir = tempDir('derive-cluster-browser-');
    const urls = (await startNats(dir)).join(',');
    for (const name of ['a', 'b', 'c']) {
      const node = new DocsearchServer(binary, join(dir, name), 0,
        ['--www', pages, '--nats', urls, '--stream', 'docsearch', '--replicas', '3']);
      await node.start();
      nodes.push(node);
    }
    for (const node of nodes) {
      const h = await node.json('/v1/health');
      checkEqual(h.body.cluster.ready, true, `node ${node.port} is ready`);
    }
  }],

  ['a page on node B sees a document added on node A', async () => {
    const [a, b, c] = nodes;
    const browser = await launchBrowser(chromium);
    onCleanup(() => browser.close());
    page = await browser.newPage();
    await page.goto(`${b.url}/client_test.html`);
    await page.waitForFunction(() => window.ready === true);
    await page.evaluate(async ([bUrl, cUrl]) => {
      window.statuses = [];
      window.c = derive.connect([bUrl, cUrl], {
        minDelayMs: 100, maxDelayMs: 500, onStatus: (s) => statuses.push(s),
      });
      window.log = [];
      window.sub = c.subscribe('documents', { prefix: 'cl-' }, (state, info) =>
        log.push({ type: info.type, offset: info.offset, keys: [...state.keys()].sort(), at: Date.now() }));
      await waitFor(() => log.length > 0, 'the first snapshot');
    }, [b.url, c.url]);
    const before = Date.now();
    await appendOn(a, 'cl-1', 'One');
    await page.waitForFunction(() => sub.state.has('cl-1'), null, { timeout: 10000 });
    sawAt = Date.now() - before;
    console.log(`     node B's page saw node A's document after ${sawAt} ms`);
    check(sawAt < 1000, `seen within a second (took ${sawAt} ms)`);
  }],

  ['when node B dies the client fails over to node C and resumes', async () => {
    const [a, b, c] = nodes;
    const offsetBefore = await page.evaluate(() => sub.offset);
    b.kill();
    await appendOn(a, 'cl-2', 'Two');
    await page.waitForFunction(() => sub.state.has('cl-2'), null, { timeout: 15000 });
    const r = await page.evaluate(() => ({
      url: c.url, keys: [...sub.state.keys()].sort(), types: log.map((e) => e.type),
    }));
    checkEqual(r.url, `${c.url.replace('http:', 'ws:')}/v1/ws`, 'connected to node C');
    checkEqual(r.keys, ['cl-1', 'cl-2'], 'both documents');
    check(r.types.includes('resumed'), `resumed on node C from offset ${offsetBefore} (${r.types})`);
    await appendOn(c, 'cl-3', 'Three');
    await page.waitForFunction(() => sub.state.has('cl-3'), null, { timeout: 10000 });
  }],
], { timeoutMs: 90000, overallMs: 240000 });
