// Shared helpers of the browser tests: a tiny test runner, the docsearch
// server as a child process, and Chromium through playwright-core.
//
// Exit codes: 0 all passed, 1 a test failed, 77 skipped (Chromium or
// node_modules missing; ctest's SKIP_RETURN_CODE). Runs on Node 18 and 20.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const artifacts = join(here, 'artifacts');
export const chromiumPath = process.env.DERIVE_CHROMIUM || '/usr/bin/chromium';

export const SKIP = 77;

// Chromium flags for a quiet, headless, sandbox-free run in CI.
export const chromiumArgs = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

export function checkEqual(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`check failed: ${message}: got ${a}, expected ${e}`);
}

// Prints why the tests cannot run, undoes what was set up (temporary
// directories made at load time) and exits with SKIP.
export async function skip(why) {
  console.log(`SKIP: ${why}`);
  await cleanup();
  process.exit(SKIP);
}

// Loads playwright-core, or exits with SKIP when it or Chromium is missing.
export async function loadChromium() {
  if (!existsSync(chromiumPath)) {
    await skip(`no Chromium at ${chromiumPath} (install the chromium package)`);
  }
  try {
    const { chromium } = await import('playwright-core');
    return chromium;
  } catch (e) {
    await skip('playwright-core is not installed: run ' +
               '`PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci` in tests/browser');
  }
}

export async function launchBrowser(chromium) {
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs,
                           timeout: 60000 });
}

// Everything to undo at exit, newest first.
const cleanups = [];
export function onCleanup(fn) {
  cleanups.push(fn);
}
async function cleanup() {
  while (cleanups.length) {
    const fn = cleanups.pop();
    try {
      await fn();
    } catch (e) {
      console.error(`cleanup: ${e.message}`);
    }
  }
}

// ctest's timeout or Ctrl-C: stop the servers and the browser, delete the
// data directories.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    console.error(`interrupted by ${signal}: cleaning up`);
    await cleanup();
    process.exit(1);
  });
}

export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function saveScreenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, name);
  return page.screenshot({ path }).then(() => path);
}

// The docsearch binary (or another sample's: booking) as a child process on
// 127.0.0.1 (http, or https when extraArgs name a certificate).
export class DocsearchServer {
  constructor(binary, dataDir, port = 0, extraArgs = []) {
    this.binary = binary;
    this.extraArgs = extraArgs;
    this.dataDir = dataDir;
    this.port = port;
    this.child = null;
    this.output = '';
    this.url = null;
    onCleanup(() => this.kill());
  }

  // Starts the server; resolves once it printed its URL. Retries a few times
  // when a fixed port is still busy.
  async start() {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this._startOnce();
      } catch (e) {
        if (this.port === 0 || attempt >= 20 || !/cannot listen/.test(this.output)) throw e;
        await sleep(250);
      }
    }
  }

  _startOnce() {
    const args = ['--port', String(this.port), '--data', this.dataDir, '--relaxed', '--threads', '2',
                  ...this.extraArgs];
    const child = spawn(this.binary, args, { stdio: ['ignore', 'pipe', 'pipe'],
                                             env: { ...process.env, DERIVE_PORT: '', DERIVE_DATA: '' } });
    this.child = child;
    this.output = '';
    return new Promise((resolve, reject) => {
      let listening = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`docsearch did not print its URL in 30 s:\n${this.output}`));
      }, 30000);
      const onData = (chunk) => {
        if (this.child !== child) return;
        this.output += chunk.toString();
        const m = /Derive \w+ listening on (https?:\/\/127\.0\.0\.1:(\d+))/.exec(this.output);
        if (m && !listening) {
          listening = true;
          clearTimeout(timer);
          this.url = m[1];
          this.port = Number(m[2]);
          resolve(this.url);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (!listening) reject(new Error(`docsearch exited (${code ?? signal}) before listening:\n${this.output}`));
        if (this.child === child) this.child = null;
      });
    }).catch((e) => {
      this.child = null;
      throw e;
    });
  }

  // SIGTERM and wait for a clean exit (SIGKILL after 15 s). Resolves with the
  // exit code.
  stop() {
    const child = this.child;
    this.child = null;
    this.url = null;
    if (!child) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
      child.kill('SIGTERM');
    });
  }

  kill() {
    if (this.child) this.child.kill('SIGKILL');
    this.child = null;
  }

  async json(path, init) {
    const response = await fetch(`http://127.0.0.1:${this.port}${path}`, init);
    return { status: response.status, body: await response.json() };
  }
}

// Runs the tests in order, each with its own timeout, under an overall
// watchdog; prints one line per test and "N passed, N failed"; exits.
export async function run(tests, { timeoutMs = 60000, overallMs = 200000 } = {}) {
  const watchdog = setTimeout(async () => {
    console.error(`FAIL: the whole run took longer than ${overallMs / 1000} s`);
    await cleanup();
    process.exit(1);
  }, overallMs);
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of tests) {
    const started = Date.now();
    let timer;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs / 1000} s`)), timeoutMs);
        }),
      ]);
      passed++;
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.stack || e.message}`);
      break;  // later tests build on the state of earlier ones
    } finally {
      clearTimeout(timer);
    }
  }
  const skipped = tests.length - passed - failed;
  await cleanup();
  clearTimeout(watchdog);
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(failed ? 1 : 0);
}
