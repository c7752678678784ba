// Type declarations for derive.js, the Derive browser client (an ES module
// served at /client/derive.js). See the JSDoc in derive.js for behaviour.

/** An event as a client sends it (protocol.md, "Events"). */
export interface EventInput {
  type: string;
  key?: string;
  data?: unknown;
  subject?: string;
}

/** One change of a subscribed key; value null means deleted. */
export interface Change {
  offset: number;
  key: string;
  value: unknown;
}

/** What onState is told about the message it follows. */
export interface StateInfo {
  type: 'snapshot' | 'resumed' | 'changes';
  /** The view offset the state now reflects. */
  offset: number;
  /** For a snapshot: the server could not resume, the state was replaced. */
  reset?: boolean;
  /** For changes: the changes just applied, in offset order. */
  changes?: Change[];
}

export type StateCallback = (state: Map<string, unknown>, info: StateInfo) => void;

export type Filter = { key: string; prefix?: never } | { prefix: string; key?: never };

export interface Subscription {
  /** The subscription's id on the wire ("s1", ...). */
  readonly id: string;
  readonly view: string;
  /** The local state (one Map, updated in place). */
  readonly state: Map<string, unknown>;
  /** The offset of the last applied message; null before the first snapshot. */
  readonly offset: number | null;
  /** Stops the subscription; nothing more is delivered for it. */
  unsubscribe(): void;
}

export interface ConnectOptions {
  /** First reconnect delay (default 250 ms); doubled per attempt, with jitter. */
  minDelayMs?: number;
  /** Largest reconnect delay (default 10000 ms). */
  maxDelayMs?: number;
  /**
   * "connecting", "open" or "closed" (detail: {attempt, delayMs} before a
   * retry; {final: true} after close()).
   */
  onStatus?: (
    status: 'connecting' | 'open' | 'closed',
    detail: { attempt?: number; delayMs?: number; final?: boolean },
  ) => void;
  /** Errors that belong to no request, and failed subscriptions without onError. */
  onError?: (error: DeriveError) => void;
  /** The WebSocket class to use (default: globalThis.WebSocket). */
  WebSocket?: typeof WebSocket;
  /**
   * A JWT for a server with authentication, or a function returning one
   * (called at each connect and shortly before the current token expires).
   * Sent as the WebSocket subprotocol "derive.token.<jwt>" at connect, in an
   * `auth` message to renew, and as `Authorization: Bearer` on HTTP requests.
   */
  token?: string | (() => string | Promise<string>);
}

export interface GetResult {
  key: string;
  /** null when the key has no value. */
  value: unknown;
  offset: number;
}

export interface AppendResult {
  offsets: number[];
  /** An earlier request with the same idempotency key had appended the events. */
  replayed: boolean;
  idempotencyKey: string;
}

export interface ViewInfo {
  name: string;
  version: number;
  offset: number;
  lag: number;
  status: 'running' | 'catching_up' | 'rebuilding' | 'failed' | 'stopped';
  error?: string;
}

export declare class DeriveError extends Error {
  constructor(code: string, message: string, status?: number);
  /** snake_case code: a protocol error code, "closed" or "http_error". */
  readonly code: string;
  /** The HTTP status, for HTTP requests. */
  readonly status?: number;
}

export declare class DeriveClient {
  /** The WebSocket URL. */
  readonly url: string;
  /** The server's HTTP base, e.g. "http://127.0.0.1:8080". */
  readonly httpBase: string;
  readonly connected: boolean;
  subscribe(
    view: string,
    filter?: Filter,
    onState?: StateCallback,
    options?: { onError?: (error: DeriveError) => void },
  ): Subscription;
  get(view: string, key: string, options?: { after?: number; timeoutMs?: number }): Promise<GetResult>;
  append(events: EventInput | EventInput[], options?: { idempotencyKey?: string }): Promise<AppendResult>;
  query(
    view: string,
    name: string,
    params?: Record<string, string | number>,
    options?: { after?: number; timeoutMs?: number; signal?: AbortSignal },
  ): Promise<{ offset: number; [member: string]: unknown }>;
  views(): Promise<{ views: ViewInfo[] }>;
  close(): void;
}

/** Opens a client (default URL: the page's origin) and starts connecting. */
export declare function connect(url?: string, options?: ConnectOptions): DeriveClient;

/** A new random idempotency key (a UUID v4). */
export declare function newIdempotencyKey(): string;
