// Types of every export of index.js (the eigenwatch JavaScript client). Option and result field
// names are the wire names of proto/PROTOCOL.md; results may carry fields added later in protocol
// version 1 (a client must ignore keys it does not know), hence the index signatures.

// ---- errors ----

/** The client's own codes (every other code is the daemon's wire code). */
export const CONNECTION: "CONNECTION";
export const TIMEOUT: "TIMEOUT";

/** A wire error code of PROTOCOL.md's table, or the client's CONNECTION / TIMEOUT. */
export type ErrorCode =
  | "BAD_REQUEST" | "UNKNOWN_METHOD" | "NO_SUCH_STREAM" | "DIM_MISMATCH" | "BAD_DTYPE"
  | "NON_FINITE" | "OUT_OF_RANGE" | "TOO_LARGE" | "STREAM_EXISTS" | "UNKNOWN_METRIC" | "BAD_PARAM"
  | "DEGENERATE" | "NO_WINDOW" | "LIMIT" | "NO_MEMORY" | "AUTH" | "INTERNAL" | "BAD_STATE"
  | "IO_ERROR" | "CONNECTION" | "TIMEOUT" | (string & {});

/** What the daemon refused (code = its wire code, message = its sentence), or CONNECTION / TIMEOUT. */
export class EigenwatchError extends Error {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown });
  readonly name: "EigenwatchError";
  code: ErrorCode;
  /** The error of a reply's error field ({code, message}). */
  static fromWire(err: unknown): EigenwatchError;
}

// ---- rows ----

/** Rows of a batch: see encodeRows. */
export type Rows =
  | Float32Array
  | Float64Array
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array
  | number[]
  | { bf16: Uint16Array; shape?: [number, number] }
  | { f16: Uint16Array; shape?: [number, number] }
  | { data: ArrayBufferView; dtype: string; shape: [number, number] }
  | ArrayLike<number>[];

/** The row width: shape [n, d], or dim d (n = values / d); neither: one row. */
export interface ShapeOptions {
  shape?: [number, number];
  dim?: number;
}

/** Ingest's row fields: the bin form or the rows form. */
export type RowFields =
  | { data: Uint8Array; dtype: string; shape: [number, number] }
  | { rows: number[][] };

// ---- the wire ----

export const DEFAULT_TCP: "tcp:127.0.0.1:7700";
/** $EIGENWATCH_ADDRESS (its first entry), else tcp:127.0.0.1:7700. */
export function defaultAddress(): string;
/** "unix:PATH" or "tcp:HOST:PORT"; throws TypeError for anything else. */
export function parseAddress(address: string):
  | { kind: "unix"; path: string }
  | { kind: "tcp"; host: string; port: number };
/** msgpack of a value as the vectors expect it (lib/wire.js says the rules); fields undefined are left out. */
export function encode(value: unknown, sizeHint?: number): Uint8Array;
/** One whole msgpack value; bin as Uint8Array, 64-bit integers as numbers. */
export function decode(bytes: Uint8Array): unknown;
/** [0, msgid, method, params]: params undefined/{} → [], an object → [it], an array as it is. */
export function encodeRequest(msgid: number, method: string, params?: object | unknown[], sizeHint?: number): Uint8Array;
/** [2, method, params], params as encodeRequest's. */
export function encodeNotification(method: string, params?: object | unknown[], sizeHint?: number): Uint8Array;
/** Ingest's row fields for `rows` and how many rows they hold; throws TypeError/RangeError. */
export function encodeRows(rows: Rows, opts?: ShapeOptions): { fields: RowFields; rows: number };

/** Cuts a byte stream into whole msgpack messages (copies); throws on 0xc1 or a message over the cap. */
export class FrameReader {
  constructor(maxMessageBytes?: number);
  push(chunk: Uint8Array): Uint8Array[];
  readonly pending: number;
}

// ---- results ----

export interface PingResult { version: string; protocol: number; pong: boolean; [key: string]: unknown }
export interface CreateResult { stream: string; created: boolean; config: Record<string, unknown>; [key: string]: unknown }
export interface IngestResult {
  stream: string;
  accepted: number;
  count: number;
  step?: number;
  late?: boolean;
  duplicate?: boolean;
  [key: string]: unknown;
}
export interface QueryResult {
  stream: string;
  count: number;
  dim: number;
  as_of: number;
  elapsed_ms: number;
  cached: boolean;
  /** name → a number, or a list of numbers (topk, spectrum, ...); estimates add `{name}_error`. */
  metrics: Record<string, number | number[] | number[][]>;
  [key: string]: unknown;
}
export interface StreamSummary {
  stream: string;
  run: string;
  dim: number;
  count: number;
  memory_bytes: number;
  last_ingest: number | null;
  [key: string]: unknown;
}
export interface StreamInfo extends StreamSummary {
  config: Record<string, unknown>;
  queued_jobs: number;
  steps: Record<string, unknown>;
  eval: Record<string, unknown>;
  solve_estimate_s: number;
}
export interface RunInfo {
  run: string;
  streams: string[];
  first_step?: number;
  last_step?: number;
  last_activity: number | null;
  [key: string]: unknown;
}
/** One (run, stream, series) of `history`, one entry per point in every array. */
export interface Series {
  run: string;
  stream: string;
  metric: string;
  step: Float64Array;
  time: Float64Array;
  /** Float64Array for scalar metrics; one Float64Array per point for list metrics. */
  value: Float64Array | Float64Array[];
  partial: boolean[];
  rows: Float64Array;
  ranks: Float64Array;
  lag_s: Float64Array;
  skipped: Float64Array;
  /** Estimated metrics only: the error bar, NaN where a point has none. */
  error?: Float64Array;
  /** Sketched streams only: the certified [lo, hi], NaN where a point has none. */
  bracket?: [number, number][];
}
/** A `history` series as the daemon sends it, made numeric. */
export function seriesOf(d: Record<string, unknown>): Series;

export interface MetricsNotification {
  kind: "metrics";
  run: string;
  stream: string;
  step: number;
  time: number;
  rows: number;
  ranks: number;
  partial: boolean;
  skipped: number;
  metrics: Record<string, number | number[]>;
  [key: string]: unknown;
}
export interface AlertNotification {
  kind: "alert";
  run: string;
  stream: string;
  rule: string;
  state: "firing" | "resolved";
  step: number | null;
  value: number | null;
  message: string;
  [key: string]: unknown;
}
export type Notification = MetricsNotification | AlertNotification;

// ---- options ----

export interface RunOption { run?: string }
export interface CreateOptions extends RunOption {
  dim?: number;
  window?: number;
  window_mode?: "auto" | "eager" | "lazy";
  normalize?: "none" | "l2";
  decay?: number;
  world?: number;
  step_timeout?: number;
  recent?: boolean;
  window_steps?: number;
  kind?: "matrix" | "tokens" | "stats" | "paired";
  eval?: Record<string, unknown>[];
  rules?: Record<string, unknown>[];
  /** Any other field of create, by its wire name. */
  [field: string]: unknown;
}
export interface StepOptions extends RunOption {
  step?: number;
  rank?: number;
  world?: number;
  end_step?: boolean;
  producer?: string;
  seq?: number;
}
export interface IngestOptions extends StepOptions, ShapeOptions {
  /** One label in [0, 2^32) per row. */
  labels?: Uint32Array | number[];
  /** Send as a notification: resolves to undefined once written. */
  notify?: boolean;
}
export interface QueryOptions extends RunOption {
  method?: "auto" | "slq" | "exact";
  params?: Record<string, number | boolean | string>;
  center?: boolean;
  source?: "all" | "window" | "window_cn" | "step";
  fresh?: boolean;
  max_lag?: number;
  /** Milliseconds to wait for this reply. */
  timeout?: number;
}
export interface HistoryOptions extends RunOption {
  stream?: string;
  streams?: string[];
  metrics?: string | string[];
  from_step?: number;
  to_step?: number;
  max_points?: number;
  agg?: "last" | "mean" | "min" | "max";
  timeout?: number;
}
export interface SubscribeOptions extends RunOption {
  /** A stream name or a `*` glob; default every stream. */
  stream?: string;
  metrics?: string | string[];
}
export interface ClientOptions {
  /**
   * "unix:PATH" or "tcp:HOST:PORT"; a comma list (or a list) is several daemons. Default
   * $EIGENWATCH_ADDRESS (with commas: several), else tcp:127.0.0.1:7700.
   */
  address?: string | Iterable<string>;
  /** Several daemons ("a,b,c" or a list): each stream's calls go to its place() owner, the rest to all, merged. */
  addresses?: string | Iterable<string>;
  /** Milliseconds to wait for each reply and for connecting (default 60000; 0: no limit). */
  timeout?: number;
  /** The largest message accepted from the daemon (default 1 GiB). */
  maxMessageBytes?: number;
}

// ---- Client ----

/**
 * A connection to eigenwatchd, opened on first use and again after it was lost. Given several
 * addresses, one connection per daemon: calls naming a stream go to place(run, stream,
 * addresses); runs, list, history and alerts without a stream, snapshot, stats (keyed by
 * address), drop of a run, ping and metrics go to every daemon, merged; subscribe() subscribes
 * on each. An unreachable daemon rejects such a call with CONNECTION naming its address.
 */
export class Client {
  constructor(opts?: ClientOptions);
  /** The address; several daemons: their addresses joined by commas. */
  readonly address: string;
  /** Every daemon's address (one entry for one daemon). */
  readonly addresses: string[];
  timeout: number;
  /** Connections opened after the first (several daemons: summed, read-only). */
  reconnects: number;
  /** The address of the daemon that holds (opts.run, stream). */
  daemonOf(stream: string, opts?: RunOption): string;
  /** A request by method name; params an object of wire fields or a raw params array. */
  call(method: string, params?: object | unknown[], opts?: { timeout?: number; sizeHint?: number }): Promise<any>;
  notify(method: string, params?: object | unknown[], opts?: { sizeHint?: number }): Promise<void>;
  close(): void;

  ping(): Promise<PingResult>;
  create(stream: string, opts?: CreateOptions): Promise<CreateResult>;
  ingest(stream: string, rows: Rows, opts: IngestOptions & { notify: true }): Promise<undefined>;
  ingest(stream: string, rows: Rows, opts?: IngestOptions): Promise<IngestResult>;
  ingestPairs(stream: string, x: Rows, y: Rows, opts?: StepOptions & { xdim?: number; ydim?: number }): Promise<IngestResult>;
  query(stream: string, metrics: string | string[], opts?: QueryOptions): Promise<QueryResult>;
  list(opts?: RunOption): Promise<StreamSummary[]>;
  info(stream: string, opts?: RunOption): Promise<StreamInfo>;
  reset(stream: string, opts?: RunOption): Promise<{ stream: string; count: number; [key: string]: unknown }>;
  drop(stream: string | undefined | null, opts?: RunOption): Promise<{ dropped: boolean; stream?: string; run?: string; streams?: number; [key: string]: unknown }>;
  /** The daemon's counters; several daemons: {address: its counters}. */
  stats(): Promise<Record<string, any>>;
  metrics(): Promise<Record<string, any>[]>;
  runs(): Promise<RunInfo[]>;
  flush(stream: string, opts?: RunOption & { end?: boolean }): Promise<{ stream: string; completed: number; ended?: boolean; [key: string]: unknown }>;
  snapshot(): Promise<{ streams: number; bytes: number; seconds: number; [key: string]: unknown }>;
  export(stream: string, opts?: RunOption): Promise<Uint8Array>;
  merge(stream: string, state: ArrayBufferView, opts?: RunOption): Promise<{ stream: string; merged: number; count: number; created: boolean; [key: string]: unknown }>;
  history(opts?: HistoryOptions): Promise<Series[]>;
  alertSet(stream: string, rules: Iterable<Record<string, unknown>>, opts?: RunOption): Promise<{ stream: string; rules: number; [key: string]: unknown }>;
  alerts(opts?: RunOption & { stream?: string; events?: number }): Promise<{ alerts: Record<string, any>[]; events?: Record<string, any>[]; [key: string]: unknown }>;
  nullify(stream: string, x: Rows, y: Rows, opts?: RunOption & { xdim?: number; ydim?: number }): Promise<{ y: Float64Array; shape: [number, number] }>;
  /** One daemon: a Subscription; several: a MultiSubscription over all of them. */
  subscribe(opts?: SubscribeOptions): Subscription | MultiSubscription;
}

/** The notifications of one subscribe, on a connection of its own; an async iterator. */
export class Subscription implements AsyncIterableIterator<Notification> {
  constructor(address: string, params: Record<string, unknown>, opts?: { timeout?: number; maxMessageBytes?: number; maxQueued?: number });
  readonly address: string;
  /** The subscription id once the daemon took it. */
  id: number | null;
  /** Resolves to the id; rejects with the daemon's EigenwatchError or CONNECTION. */
  readonly ready: Promise<number>;
  reconnects: number;
  closed: boolean;
  /** The next notification, or null after timeoutMs or once closed. */
  poll(timeoutMs?: number): Promise<Notification | null>;
  next(): Promise<IteratorResult<Notification, undefined>>;
  return(): Promise<IteratorResult<Notification, undefined>>;
  [Symbol.asyncIterator](): Subscription;
  close(): void;
}

/** One subscribe on every daemon of a Client of several, as one async iterator. */
export class MultiSubscription implements AsyncIterableIterator<Notification> {
  constructor(addresses: string[], params: Record<string, unknown>, opts?: { timeout?: number; maxMessageBytes?: number; maxQueued?: number });
  readonly address: string;
  readonly addresses: string[];
  /** One Subscription per daemon, in address order. */
  readonly subscriptions: Subscription[];
  /** Each daemon's subscription id (null until taken), in address order. */
  readonly id: (number | null)[];
  /** Resolves to the ids once every daemon took it; rejects with the first refusal (CONNECTION names the address). */
  readonly ready: Promise<number[]>;
  /** Re-subscriptions over every daemon. */
  readonly reconnects: number;
  closed: boolean;
  /** The next notification from any daemon, or null after timeoutMs or once closed. */
  poll(timeoutMs?: number): Promise<Notification | null>;
  next(): Promise<IteratorResult<Notification, undefined>>;
  /** Closes every daemon's subscription. */
  return(): Promise<IteratorResult<Notification, undefined>>;
  [Symbol.asyncIterator](): MultiSubscription;
  close(): void;
}

// ---- Sender ----

export interface SenderCounters {
  sentBatches: number;
  sentRows: number;
  droppedBatches: number;
  droppedRows: number;
  rejectedBatches: number;
  rejectedRows: number;
  queuedBatches: number;
  queuedBytes: number;
  reconnects: number;
  connectFailures: number;
  lastError: string | null;
}
export interface SenderStats extends SenderCounters {
  /** Per daemon address, with its fail-open state. */
  daemons: Record<string, SenderCounters & { state: "connecting" | "up" | "down" | "closed" }>;
}
export interface SenderOptions {
  /** One daemon. */
  address?: string;
  /** Several daemons ("a,b,c" or a list): each (run, stream) goes to its place() owner. */
  addresses?: string | Iterable<string>;
  /** Bytes queued or unconfirmed per daemon before send() drops (default 64 MiB). */
  maxQueueBytes?: number;
  /** This sender's name for exactly-once (≤ 64 bytes; default host:pid:random). */
  producer?: string;
  /** Milliseconds to wait for a connection (default 1000). */
  connectTimeoutMs?: number;
  /** Hears the daemon's refusals of declared creates and of close()'s end markers. */
  onError?: (err: EigenwatchError, ctx: { address: string; stream: string; run?: string; what: string }) => void;
}
export interface SendOptions extends ShapeOptions, RunOption {
  step?: number;
  rank?: number;
  world?: number;
}

/** Fail-open, non-blocking sender for training loops. */
export class Sender {
  constructor(opts?: SenderOptions);
  readonly addresses: string[];
  readonly producer: string;
  maxQueueBytes: number;
  closed: boolean;
  /** true: queued; false: dropped (daemon down, queue full, closed) or rejected. Never throws. */
  send(stream: string, rows: Rows, opts?: SendOptions): boolean;
  /** Create the stream with these options (dim from its rows) before its first rows on each connection. */
  declare(stream: string, opts?: CreateOptions): void;
  readonly stats: SenderStats;
  /** The address that owns (run, stream). */
  ownerOf(stream: string, opts?: RunOption): string;
  /** true once everything queued is confirmed; false after timeoutMs (default 10000). */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Ends steps and runs, flushes up to timeoutMs (default 2000), closes; never rejects. */
  close(timeoutMs?: number): Promise<boolean>;
}
/** host:pid:random, at most 64 bytes. */
export function producerId(): string;

// ---- placement ----

export const DEFAULT_RUN: "default";
/** FNV-1a 64 of bytes (a string: its UTF-8 bytes). */
export function fnv1a64(bytes: Uint8Array | string): bigint;
/** FNV-1a-64(run ‖ 0x00 ‖ stream ‖ 0x00 ‖ address); run null/undefined is "default". */
export function score(run: string | null | undefined, stream: string, address: string): bigint;
/** "a,b,c" or a list: trimmed, empties and repeats dropped. */
export function parseAddresses(spec: string | Iterable<string>): string[];
/** The owner of (run, stream): the largest score, ties to the bytewise-smaller address. */
export function place(run: string | null | undefined, stream: string, addresses: string[] | string): string;
