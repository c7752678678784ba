// Over TLS: docsearch serves https and wss on one port with a certificate
// made at test time (the openssl command); Chromium loads the page over https,
// subscribes over wss and sees a document appended from outside, live.
// Plain http on the port is refused, and SIGHUP loads a new certificate.
//
//   node tls.test.mjs <path to the docsearch binary>
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import {
  DocsearchServer, check, checkEqual, launchBrowser, loadChromium, onCleanup, run, skip,
  saveScreenshot, sleep, tempDir,
} from './lib.mjs';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node tls.test.mjs <docsearch binary>');
  process.exit(2);
}

const dir = tempDir('derive-docsearch-tls-');
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');

// A self-signed certificate for 127.0.0.1 and localhost, subject CN `name`.
function makeCertificate(name) {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'pipe' });
}

try {
  makeCertificate('first');
} catch (e) {
  await skip(`cannot make a certificate with openssl (install the openssl package): ${e.message}`);
}

const chromium = await loadChromium();
const rare = `wombat${Math.random().toString(36).slice(2, 8).replace(/[^a-z]/g, 'x')}`;
const id = `tls-${rare}`;
let server;
let browser;
let page;

// One request; resolves { status, body }. `ca`: the certificate to trust.
function send(requestFn, url, { method = 'GET', body, ca } = {}) {
  return new Promise((resolve, reject) => {
    const headers = body ? { 'Content-Type': 'application/json',
                             'Content-Length': Buffer.byteLength(body) } : {};
    const req = requestFn(url, { method, headers, ca }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

// The CN of the certificate the server presents to a new connection.
function presentedName(port) {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const name = socket.getPeerCertificate().subject.CN;
      socket.end();
      resolve(name);
    });
    socket.on('error', reject);
  });
}

await run([
  ['the page loads over https and goes live over wss', async () => {
    server = new DocsearchServer(binary, tempDir('derive-docsearch-tls-data-'), 0,
                                 ['--tls-cert', cert, '--tls-key', key]);
    const url = await server.start();
    check(url.startsWith('https://127.0.0.1:'), `docsearch prints an https URL: ${url}`);
    browser = await launchBrowser(chromium);
    onCleanup(() => browser.close());
    // The certificate is made here, so the browser is told to accept it.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    page = await context.newPage();
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e.message));
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(url);
    await page.waitForSelector('#connection[data-state="open"]', { timeout: 10000 });
    await page.waitForSelector('#documents li[data-id="welcome"]', { timeout: 10000 });
    check(sockets.some((u) => u.startsWith('wss://127.0.0.1:')), `the page uses wss: ${sockets}`);
  }],

  ['a document appended from outside over https appears live', async () => {
    const body = JSON.stringify({ type: 'doc.put', key: id,
                                  data: { title: `Notes on the ${rare}`, text: `The ${rare} digs.` } });
    const res = await send(httpsRequest, `${server.url}/v1/events`,
                           { method: 'POST', body, ca: readFileSync(cert) });
    checkEqual(res.status, 201, 'status of the append over https (certificate trusted)');
    await page.waitForSelector(`#documents li[data-id="${id}"]`, { timeout: 10000 });
    await saveScreenshot(page, 'docsearch-tls.png');
  }],

  ['plain http on the TLS port is refused with tls_required', async () => {
    const res = await send(httpRequest, `http://127.0.0.1:${server.port}/v1/health`);
    checkEqual(res.status, 400, 'status');
    checkEqual(res.body.error.code, 'tls_required', 'error code');
  }],

  ['SIGHUP loads a new certificate; a bad one keeps the old', async () => {
    checkEqual(await presentedName(server.port), 'first', 'the certificate at start');
    makeCertificate('second');
    server.child.kill('SIGHUP');
    let name = '';
    for (let i = 0; i < 50 && name !== 'second'; i++) {
      await sleep(100);
      name = await presentedName(server.port);
    }
    checkEqual(name, 'second', 'the certificate after SIGHUP');
    execFileSync('sh', ['-c', `echo broken > '${cert}'`]);
    server.child.kill('SIGHUP');
    for (let i = 0; i < 50 && !/TLS reload failed/.test(server.output); i++) await sleep(100);
    check(/TLS reload failed/.test(server.output), `docsearch reports the failed reload:\n${server.output}`);
    checkEqual(await presentedName(server.port), 'second', 'the certificate after a bad reload');
  }],

  ['no script errors; a clean stop', async () => {
    checkEqual(page.errors, [], 'page errors');
    checkEqual(await server.stop(), 0, 'docsearch exit code after SIGTERM');
  }],
]);
