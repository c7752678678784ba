// Derive browser client: a plain ES module, no build step, no dependencies.
// The Derive server serves it at /client/derive.js.
//
//   import { connect } from '/client/derive.js';
//   const client = connect();                       // ws(s)://<this host>/v1/ws
//   const sub = client.subscribe('documents', { prefix: '' }, (state, info) => {
//     render([...state.values()]);                  // state: Map key -> value
//   });
//   const { offsets } = await client.append({ type: 'doc.put', key: 'a',
//                                            data: { title: 'A', text: '…' } });
//   const { value } = await client.get('documents', 'a', { after: offsets[0] });
//   sub.unsubscribe();
//
// What it does for you (protocol.md, "WebSocket"):
// - Keeps, per subscription, a local copy of the subscribed keys (a Map from
//   key to value) built from the snapshot and every change, and calls
//   onState(state, info) after each snapshot (once, when its last chunk has
//   arrived), resume and batch of changes. At each call the Map equals the
//   view's state, restricted to the subscribed keys, at info.offset.
// - Reconnects on its own with exponential backoff (with jitter) and resumes
//   every subscription with `from` = the last offset it applied; when the
//   server cannot resume (or the view went back, for example after a restore)
//   it sends a snapshot with reset: true, and the local state is replaced.
// - Queues get and append requests while disconnected and sends them again
//   after a reconnect; an append is resent with the same idempotency key, so it
//   takes effect exactly once even when the first answer was lost.
// - With a `token` option (a JWT, or a function returning one), sends the token
//   at each connect (as the WebSocket subprotocol "derive.token.<jwt>", since a
//   browser cannot set headers on a WebSocket) and on HTTP requests
//   (Authorization: Bearer), asks the function for a new token shortly before
//   the current one expires and sends it in an `auth` message, and when the
//   server ends subscriptions because a token expired, renews and resubscribes.
// - Given several server URLs (the nodes of a cluster, which all assign the
//   same offsets: README.md, "Cluster mode"), connects to the first and, when
//   a connection fails or ends, to the next one, resuming with `from` there.

const DEFAULT_MIN_DELAY_MS = 250;
const DEFAULT_MAX_DELAY_MS = 10000;
// A connection that stayed open this long resets the backoff.
const STABLE_CONNECTION_MS = 5000;
// Errors after which a request or subscription is sent again later.
const RETRYABLE_CODES = new Set(['unavailable']);
// A token is renewed this long before its `exp` (or halfway, for short ones).
const RENEW_BEFORE_MS = 30000;

// The `exp` of a JWT in milliseconds, read without verifying (the server
// verifies); null when the token has none or is not a JWT.
function tokenExpiryMs(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const payload = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
    return typeof payload.exp === 'number' ? payload.exp * 1000 : null;
  } catch (e) {
    return null;
  }
}

/**
 * An error reported by the server ({"code", "message"}) or by the client
 * ("closed" when the client was closed, "http_error" for an HTTP answer that
 * is not JSON).
 */
export class DeriveError extends Error {
  /**
   * @param {string} code snake_case error code, e.g. "invalid_event".
   * @param {string} message what went wrong.
   * @param {number} [status] the HTTP status, for HTTP requests.
   */
  constructor(code, message, status) {
    super(message || code);
    this.name = 'DeriveError';
    this.code = code;
    if (status !== undefined) this.status = status;
  }
}

/**
 * Returns a new random idempotency key (a UUID v4 string): from
 * crypto.randomUUID where available (secure contexts), else from
 * crypto.getRandomValues, else Math.random.
 * @returns {string}
 */
export function newIdempotencyKey() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') {
    c.getRandomValues(bytes);
  } else {
    for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Opens a client and starts connecting (it never throws for network errors:
 * it keeps reconnecting until close()).
 *
 * @param {string | string[]} [url] the server: a WebSocket URL
 *   ("ws://host:port/v1/ws"), or an HTTP base ("http://host:port", "/v1/ws" is
 *   added). Default: the page's own origin. An array names several nodes of
 *   one cluster: the client moves to the next one when a connection ends.
 * @param {object} [options]
 * @param {number} [options.minDelayMs=250] first reconnect delay.
 * @param {number} [options.maxDelayMs=10000] largest reconnect delay.
 * @param {(status: string, detail: object) => void} [options.onStatus] called
 *   with "connecting", "open" or "closed" (detail: {attempt, delayMs} while
 *   waiting to reconnect, {final: true} after close()).
 * @param {(error: DeriveError) => void} [options.onError] called for errors
 *   that belong to no request (bad_message) and for a failed subscription that
 *   has no onError of its own.
 * @param {typeof WebSocket} [options.WebSocket] the WebSocket class (default:
 *   the global one).
 * @param {string | (() => string | Promise<string>)} [options.token] a JWT for
 *   servers with authentication (docs/security.md), or a function returning
 *   one: called at each connect and shortly before the current token expires.
 * @returns {DeriveClient}
 */
export function connect(url, options = {}) {
  const urls = Array.isArray(url) ? url.map(resolveUrl) : [resolveUrl(url)];
  if (urls.length === 0) throw new TypeError('connect() needs at least one URL');
  return new DeriveClient(urls, options);
}

function resolveUrl(url) {
  const loc = globalThis.location;
  if (url === undefined || url === null || url === '') {
    if (!loc) throw new TypeError('connect() needs a URL outside a browser page');
    url = loc.origin;
  }
  const u = new URL(url, loc ? loc.href : undefined);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/ws';
  return u.toString();
}

/**
 * A connection to a Derive server. Create it with connect().
 */
export class DeriveClient {
  constructor(urls, options) {
    this._urls = Array.isArray(urls) ? urls : [urls];
    this._useUrl(0);
    this._options = options;
    this._minDelay = options.minDelayMs ?? DEFAULT_MIN_DELAY_MS;
    this._maxDelay = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._ws = null;
    this._open = false;
    this._closed = false;
    this._attempt = 0;
    this._openedAt = 0;
    this._timer = null;
    this._seq = 0;
    this._subs = new Map();     // wire id -> subscription
    this._pending = new Map();  // wire id -> {message, resolve, reject}
    this._token = typeof options.token === 'string' ? options.token : null;
    this._renewTimer = null;
    this._connect();
  }

  // Makes the i-th server URL the current one (url, httpBase).
  _useUrl(i) {
    this._urlIndex = i;
    /** The WebSocket URL of the current server. */
    this.url = this._urls[i];
    const http = new URL(this.url);
    http.protocol = http.protocol === 'wss:' ? 'https:' : 'http:';
    http.pathname = http.pathname.replace(/\/v1\/ws$/, '') || '/';
    /** The HTTP base of the current server, e.g. "http://127.0.0.1:8080". */
    this.httpBase = http.origin + http.pathname.replace(/\/$/, '');
  }

  /** True while the WebSocket is open. */
  get connected() {
    return this._open;
  }

  /**
   * Subscribes to one key or to every key with a prefix of a view.
   *
   * @param {string} view the view's name.
   * @param {{key: string} | {prefix: string}} [filter={prefix: ''}] exactly
   *   one of key and prefix ("" is the whole view).
   * @param {(state: Map<string, any>, info: StateInfo) => void} onState called
   *   after each snapshot (when complete), resume and batch of changes, with
   *   the local state (one Map, updated in place: copy it to keep a version)
   *   and info = {type: "snapshot" | "resumed" | "changes", offset, reset?,
   *   changes?}.
   * @param {{onError?: (error: DeriveError) => void}} [options] onError is
   *   called when the server refuses the subscription (for example
   *   unknown_view); the subscription is then dropped.
   * @returns {Subscription} {id, view, state, offset, unsubscribe()}.
   */
  subscribe(view, filter = { prefix: '' }, onState = () => {}, options = {}) {
    const hasKey = filter && typeof filter.key === 'string';
    const hasPrefix = filter && typeof filter.prefix === 'string';
    if (hasKey === hasPrefix) {
      throw new TypeError('subscribe() needs exactly one of {key} or {prefix}');
    }
    const sub = {
      id: this._nextId('s'),
      view,
      key: hasKey ? filter.key : undefined,
      prefix: hasPrefix ? filter.prefix : undefined,
      onState,
      onError: options.onError,
      state: new Map(),
      offset: null,  // the offset of the last applied message; null: none yet
      chunk: null,   // a snapshot being received in several messages
    };
    this._subs.set(sub.id, sub);
    if (this._open) this._sendSubscribe(sub);
    const client = this;
    return {
      id: sub.id,
      view,
      get state() { return sub.state; },
      get offset() { return sub.offset; },
      unsubscribe() { client._unsubscribe(sub); },
    };
  }

  /**
   * Reads one key of a view. Queued while disconnected.
   *
   * @param {string} view
   * @param {string} key
   * @param {{after?: number, timeoutMs?: number}} [options] after: wait until
   *   the view has applied this offset (read-your-writes); timeoutMs: how long
   *   the server waits for it (default 5000) before failing with not_caught_up.
   * @returns {Promise<{key: string, value: any, offset: number}>} value is
   *   null when the key has no value.
   */
  get(view, key, options = {}) {
    const message = { op: 'get', view, key };
    if (options.after !== undefined) message.after = options.after;
    if (options.timeoutMs !== undefined) message.timeout_ms = options.timeoutMs;
    return this._request(message).then((m) => ({ key: m.key, value: m.value, offset: m.offset }));
  }

  /**
   * Appends events atomically, at consecutive offsets. Queued while
   * disconnected and resent after a reconnect with the same idempotency key,
   * so it takes effect once.
   *
   * @param {object | object[]} events one event ({type, key?, data?,
   *   subject?}) or an array of 1..1000.
   * @param {{idempotencyKey?: string}} [options] the key (1..128 visible ASCII
   *   characters); default: a new random one.
   * @returns {Promise<{offsets: number[], replayed: boolean,
   *   idempotencyKey: string}>} replayed: an earlier request with this key
   *   had already appended the events.
   */
  append(events, options = {}) {
    const list = Array.isArray(events) ? events : [events];
    const idempotencyKey = options.idempotencyKey ?? newIdempotencyKey();
    const message = { op: 'append', events: list, idempotency_key: idempotencyKey };
    return this._request(message).then((m) => ({
      offsets: m.offsets,
      replayed: m.replayed === true,
      idempotencyKey,
    }));
  }

  /**
   * Runs a view's named query over HTTP (GET /v1/query/{view}/{name}).
   *
   * @param {string} view
   * @param {string} name e.g. "search".
   * @param {Record<string, string | number>} [params] e.g. {q: "words"}.
   * @param {{after?: number, timeoutMs?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<object>} the query's answer; it always has "offset".
   */
  query(view, name, params = {}, options = {}) {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) search.set(k, String(v));
    if (options.after !== undefined) search.set('after', String(options.after));
    if (options.timeoutMs !== undefined) search.set('timeout_ms', String(options.timeoutMs));
    const path = `/v1/query/${encodeURIComponent(view)}/${encodeURIComponent(name)}`;
    return this._fetchJson(`${path}?${search}`, options.signal);
  }

  /**
   * Awaits the outcome of a request (docs/processors.md, "Request ids"):
   * subscribes to `key: requestId` on an outcomes view (one written from the
   * processor's outcome events, keyed by request id, like
   * derive::claim_outcomes_view) and resolves with the value as soon as it
   * exists, from the snapshot or a later change; then unsubscribes. Survives
   * reconnects like any subscription.
   *
   * @param {string} requestId the id the user action's events carry (and
   *   their idempotency key, so that a retried click appends once).
   * @param {{view?: string, timeoutMs?: number}} [options] view: the outcomes
   *   view (default "outcomes"); timeoutMs: reject with DeriveError("timeout")
   *   after this long (default: wait for as long as it takes).
   * @returns {Promise<object>} the outcome.
   */
  outcome(requestId, options = {}) {
    const view = options.view ?? 'outcomes';
    return new Promise((resolve, reject) => {
      let timer = null;
      let sub = null;
      const finish = (fn, value) => {
        if (timer) clearTimeout(timer);
        if (sub) sub.unsubscribe();
        sub = null;
        fn(value);
      };
      sub = this.subscribe(view, { key: requestId }, (state) => {
        if (sub && state.has(requestId)) finish(resolve, state.get(requestId));
      }, { onError: (e) => finish(reject, e) });
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => finish(reject, new DeriveError('timeout',
          `no outcome for request ${requestId} within ${options.timeoutMs} ms`)), options.timeoutMs);
      }
    });
  }

  /**
   * One user action, end to end: appends `events` with the request id as
   * idempotency key (a retried click, or a resend after a reconnect, appends
   * once) and awaits its outcome (outcome()).
   *
   * @param {string} requestId e.g. newIdempotencyKey(), made once per click.
   * @param {object | object[]} events
   * @param {{view?: string, timeoutMs?: number}} [options] for outcome().
   * @returns {{appended: Promise<object>, outcome: Promise<object>}}
   */
  request(requestId, events, options = {}) {
    const appended = this.append(events, { idempotencyKey: requestId });
    const outcome = appended.then(() => this.outcome(requestId, options));
    return { appended, outcome };
  }

  /**
   * Lists the views with their offsets, lag and status (GET /v1/views).
   * @returns {Promise<{views: Array<{name: string, version: number,
   *   offset: number, lag: number, status: string, error?: string}>}>}
   */
  views() {
    return this._fetchJson('/v1/views');
  }

  /**
   * Closes the connection for good: stops reconnecting, drops every
   * subscription and rejects pending requests with DeriveError("closed").
   */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    clearTimeout(this._renewTimer);
    this._timer = null;
    for (const p of this._pending.values()) {
      p.reject(new DeriveError('closed', 'the client was closed'));
    }
    this._pending.clear();
    this._subs.clear();
    if (this._ws) this._ws.close(1000, 'client closed');
    this._ws = null;
    this._setOpen(false);
    this._status('closed', { final: true });
  }

  // --- internals ---

  _nextId(prefix) {
    this._seq += 1;
    return `${prefix}${this._seq}`;
  }

  _status(status, detail = {}) {
    if (this._options.onStatus) {
      try {
        this._options.onStatus(status, detail);
      } catch (e) {
        console.error('derive: onStatus threw', e);
      }
    }
  }

  _reportError(error, handler) {
    const fn = handler ?? this._options.onError;
    if (fn) {
      try {
        fn(error);
      } catch (e) {
        console.error('derive: onError threw', e);
      }
    } else {
      console.warn(`derive: ${error.code}: ${error.message}`);
    }
  }

  // The token to send: from the provider when there is one (and the renewal
  // timer for it), else the string option; null without a token option.
  async _freshToken() {
    const t = this._options.token;
    if (typeof t !== 'function') return this._token;
    this._token = await t();
    this._scheduleRenewal();
    return this._token;
  }

  _scheduleRenewal() {
    clearTimeout(this._renewTimer);
    const exp = this._token ? tokenExpiryMs(this._token) : null;
    if (exp === null || this._closed) return;
    const left = exp - Date.now();
    const delay = Math.max(0, left > 2 * RENEW_BEFORE_MS ? left - RENEW_BEFORE_MS : left / 2);
    this._renewTimer = setTimeout(() => this._renew().catch(() => {}), delay);
  }

  // Gets a new token and sends it on the open connection (`auth`); one
  // renewal at a time.
  _renew() {
    if (!this._renewing) {
      this._renewing = this._renewOnce().finally(() => { this._renewing = null; });
    }
    return this._renewing;
  }

  async _renewOnce() {
    const token = await this._freshToken();
    if (!this._open || this._closed) return;
    const id = this._nextId('t');
    await new Promise((resolve, reject) => {
      this._pending.set(id, { message: { op: 'auth', token }, resolve, reject, once: true });
      this._send({ op: 'auth', id, token });
    });
  }

  _connect() {
    if (this._closed) return;
    this._timer = null;
    this._status('connecting', { attempt: this._attempt });
    if (!this._options.token) {
      this._openSocket(null);
      return;
    }
    this._freshToken().then(
      (token) => this._openSocket(token),
      (e) => {
        this._reportError(new DeriveError('token_error', `the token provider failed: ${e && e.message}`));
        this._scheduleReconnect();
      });
  }

  _openSocket(token) {
    if (this._closed) return;
    let ws;
    try {
      ws = token ? new this._WebSocket(this.url, ['derive.v1', `derive.token.${token}`])
                 : new this._WebSocket(this.url);
    } catch (e) {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      if (ws !== this._ws) return;
      this._openedAt = Date.now();
      this._setOpen(true);
      for (const sub of this._subs.values()) this._sendSubscribe(sub);
      for (const [id, p] of this._pending) {
        if (p.once) {
          // An auth for the previous connection: this one got the token at connect.
          this._pending.delete(id);
          p.resolve(null);
        } else {
          this._send({ ...p.message, id });
        }
      }
    };
    ws.onmessage = (event) => {
      if (ws !== this._ws) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      this._dispatch(message);
    };
    ws.onclose = () => {
      if (ws !== this._ws) return;
      this._ws = null;
      if (this._open && Date.now() - this._openedAt >= STABLE_CONNECTION_MS) this._attempt = 0;
      this._setOpen(false);
      for (const sub of this._subs.values()) sub.chunk = null;
      this._scheduleReconnect();
    };
    ws.onerror = () => {};  // a close event follows
  }

  _setOpen(open) {
    if (this._open === open) return;
    this._open = open;
    if (open) this._status('open');
  }

  _scheduleReconnect() {
    if (this._closed || this._timer) return;
    // Several nodes: the next one (subscriptions resume there with `from`).
    if (this._urls.length > 1) this._useUrl((this._urlIndex + 1) % this._urls.length);
    const base = Math.min(this._maxDelay, this._minDelay * 2 ** this._attempt);
    const delayMs = Math.round(base * (0.5 + Math.random() / 2));
    this._attempt = Math.min(this._attempt + 1, 30);
    this._status('closed', { attempt: this._attempt, delayMs });
    this._timer = setTimeout(() => this._connect(), delayMs);
  }

  _send(message) {
    if (!this._open || !this._ws) return false;
    try {
      this._ws.send(JSON.stringify(message));
      return true;
    } catch (e) {
      return false;  // the close event will follow
    }
  }

  _sendSubscribe(sub) {
    const message = { op: 'subscribe', id: sub.id, view: sub.view };
    if (sub.key !== undefined) message.key = sub.key;
    else message.prefix = sub.prefix;
    if (sub.offset !== null) message.from = sub.offset;
    sub.chunk = null;
    this._send(message);
  }

  _unsubscribe(sub) {
    if (!this._subs.delete(sub.id)) return;
    this._send({ op: 'unsubscribe', id: sub.id });
  }

  _request(message) {
    if (this._closed) return Promise.reject(new DeriveError('closed', 'the client was closed'));
    const id = this._nextId('r');
    return new Promise((resolve, reject) => {
      this._pending.set(id, { message, resolve, reject });
      this._send({ ...message, id });
    });
  }

  _dispatch(m) {
    const sub = typeof m.id === 'string' ? this._subs.get(m.id) : undefined;
    switch (m.op) {
      case 'snapshot':
        if (sub) this._onSnapshot(sub, m);
        break;
      case 'resumed':
        if (sub) {
          sub.offset = m.offset;
          this._notify(sub, { type: 'resumed', offset: m.offset });
        }
        break;
      case 'changes':
        if (sub) this._onChanges(sub, m);
        break;
      case 'appended':
      case 'value':
      case 'authenticated':
        this._settle(m.id, m);
        break;
      case 'error':
        this._onError(m, sub);
        break;
      default:
        break;  // unsubscribed, or an op this client does not know
    }
  }

  _onSnapshot(sub, m) {
    if (!sub.chunk || sub.chunk.offset !== m.offset) sub.chunk = { offset: m.offset, items: [] };
    for (const item of m.items || []) sub.chunk.items.push(item);
    if (m.more) return;
    const items = sub.chunk.items;
    sub.chunk = null;
    sub.state.clear();
    for (const item of items) sub.state.set(item.key, item.value);
    sub.offset = m.offset;
    this._notify(sub, { type: 'snapshot', offset: m.offset, reset: m.reset === true });
  }

  _onChanges(sub, m) {
    // Items at or below the applied offset are already in the state.
    const items = (m.items || []).filter((it) => sub.offset === null || it.offset > sub.offset);
    if (items.length === 0) return;
    for (const item of items) {
      if (item.value === null || item.value === undefined) sub.state.delete(item.key);
      else sub.state.set(item.key, item.value);
    }
    sub.offset = items[items.length - 1].offset;
    this._notify(sub, { type: 'changes', offset: sub.offset, changes: items });
  }

  _notify(sub, info) {
    try {
      sub.onState(sub.state, info);
    } catch (e) {
      console.error('derive: onState threw', e);
    }
  }

  _settle(id, m) {
    const p = this._pending.get(id);
    if (!p) return;
    this._pending.delete(id);
    p.resolve(m);
  }

  _onError(m, sub) {
    const error = new DeriveError(m.code, m.message);
    if (sub && m.code === 'token_expired' && typeof this._options.token === 'function') {
      // Renew, then resume from the last applied offset.
      this._renew().then(() => {
        if (this._subs.get(sub.id) === sub) this._sendSubscribe(sub);
      }, (e) => this._reportError(new DeriveError('token_error', String(e && e.message)), sub.onError));
      return;
    }
    if (sub) {
      if (RETRYABLE_CODES.has(m.code)) {
        setTimeout(() => {
          if (this._subs.get(sub.id) === sub) this._sendSubscribe(sub);
        }, this._minDelay);
        return;
      }
      this._subs.delete(sub.id);
      this._reportError(error, sub.onError);
      return;
    }
    const p = typeof m.id === 'string' ? this._pending.get(m.id) : undefined;
    if (!p) {
      this._reportError(error);
      return;
    }
    if (RETRYABLE_CODES.has(m.code)) {
      // Sent again after the reconnect that usually follows, or after a delay.
      setTimeout(() => {
        if (this._pending.get(m.id) === p) this._send({ ...p.message, id: m.id });
      }, Math.min(this._maxDelay, this._minDelay * 4));
      return;
    }
    this._pending.delete(m.id);
    p.reject(error);
  }

  async _fetchJson(path, signal) {
    const headers = { Accept: 'application/json' };
    const token = this._options.token ? (this._token ?? await this._freshToken()) : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(this.httpBase + path, { signal, headers });
    let body;
    try {
      body = await response.json();
    } catch (e) {
      throw new DeriveError('http_error', `HTTP ${response.status} without a JSON body`, response.status);
    }
    if (!response.ok) {
      const err = body && body.error ? body.error : { code: 'http_error', message: `HTTP ${response.status}` };
      throw new DeriveError(err.code, err.message, response.status);
    }
    return body;
  }
}
