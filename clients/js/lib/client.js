// Client: one async method per RPC method of proto/PROTOCOL.md over one connection that is
// opened on first use and again after it was lost (the notifications of `subscribe` are
// subscription.js's). Field names in options are the
// wire names (max_lag, end_step, step_timeout, ...), so PROTOCOL.md's tables read directly; each
// method sends its fields in the order the Python client does (clients/python/eigenwatch/
// client.py), so both clients put the same bytes on the wire.
import { Connection } from "./connection.js";
import { CONNECTION, EigenwatchError } from "./errors.js";
import { fanoutCall, fanoutNotify } from "./fanout.js";
import { parseAddresses, place } from "./placement.js";
import { MultiSubscription, Subscription } from "./subscription.js";
import { defaultAddress, encodeLabels, encodeRows, parseAddress } from "./wire.js";

// Methods that only produce an answer: asking again after a lost connection is harmless.
const ANSWER_ONLY = new Set(["ping", "query", "list", "info", "stats", "metrics", "runs", "history", "alerts"]);

// The fields of a method that names a stream, in the Python client's order: stream, then run
// (absent for the default run).
function streamFields(stream, opts) {
  if (typeof stream !== "string") throw new TypeError(`stream must be a string, not ${typeof stream}`);
  const p = { stream };
  if (opts && opts.run !== undefined && opts.run !== null) p.run = String(opts.run);
  return p;
}

function runField(opts) {
  return opts && opts.run !== undefined && opts.run !== null ? { run: String(opts.run) } : {};
}

function nameList(metrics) {
  return typeof metrics === "string" ? [metrics] : Array.from(metrics);
}

// The ingest fields after the rows, in the Python client's order.
function stepFields(p, opts) {
  for (const k of ["step", "rank", "world", "producer", "seq"]) {
    if (opts[k] !== undefined && opts[k] !== null) p[k] = opts[k];
  }
  if (opts.end_step) p.end_step = true;
  return p;
}

// The daemon addresses of a Client's options: opts.addresses ("a,b" or a list), else
// opts.address (one address as given; a comma list or a list: several), else
// $EIGENWATCH_ADDRESS (every entry), else tcp:127.0.0.1:7700. Each checked by parseAddress.
function clientAddresses(opts) {
  let addrs;
  if (opts.addresses !== undefined && opts.addresses !== null) {
    addrs = parseAddresses(opts.addresses);
  } else if (opts.address !== undefined && opts.address !== null) {
    const a = opts.address;
    if (typeof a === "string") addrs = a.includes(",") ? parseAddresses(a) : [a];
    else if (typeof a === "object" && typeof a[Symbol.iterator] === "function") addrs = parseAddresses(a);
    else addrs = [a]; // parseAddress says what is wrong with it
  } else {
    const env = parseAddresses(process.env.EIGENWATCH_ADDRESS ?? "");
    addrs = env.length > 1 ? env : [defaultAddress()];
  }
  if (addrs.length === 0) throw new TypeError("no daemon address given");
  for (const a of addrs) parseAddress(a); // a malformed address is the caller's mistake: say so now
  return addrs;
}

/**
 * A connection to eigenwatchd, opened on the first call.
 *
 * new Client({address, timeout}): address "unix:PATH" or "tcp:HOST:PORT" (default
 * $EIGENWATCH_ADDRESS, else tcp:127.0.0.1:7700); timeout: milliseconds to wait for each reply
 * (default 60000; 0: no limit), and for connecting. Throws TypeError for a malformed address.
 *
 * Several daemons (proto/PROTOCOL.md, "Many daemons"): `addresses` ("a,b,c" or a list), an
 * `address` with commas, or $EIGENWATCH_ADDRESS with commas makes a Client of them all, with one
 * connection each. A call that names one stream (create, ingest, query, info, reset, drop, flush,
 * export, merge, nullify, alertSet, and history/alerts of a stream) goes to the daemon
 * place(run, stream, addresses) gives it — where a Sender with the same list sent its rows; runs,
 * list, history of a run (or of `streams`: each from its daemon), alerts, snapshot, stats (by
 * address), drop of a run, ping and metrics go to every daemon and come back merged, and
 * subscribe() subscribes on every daemon (a MultiSubscription). A daemon that cannot be reached
 * makes the call reject with CONNECTION naming its address: never a partial answer.
 *
 * Every method returns a Promise. It rejects with EigenwatchError: the daemon's wire code
 * (NO_SUCH_STREAM, BAD_DTYPE, ...), CONNECTION when the daemon cannot be reached or the
 * connection ended before the reply, or TIMEOUT. After a lost connection (the daemon
 * restarted) the next call opens a new one; a call that only reads (ping, query, info, ...) and
 * whose connection dropped before its reply is sent once more on a new connection, other calls
 * reject with CONNECTION (the daemon may or may not have applied them). Calls may run
 * concurrently: they are pipelined on the one connection and matched to their replies by msgid.
 * An idle Client does not keep the process alive; close() ends its connection.
 */
export class Client {
  constructor(opts = {}) {
    this.addresses = clientAddresses(opts);
    this.address = this.addresses.join(","); // one address: as it was given
    this.timeout = opts.timeout ?? 60000;
    this.maxMessageBytes = opts.maxMessageBytes ?? 1 << 30;
    this._conn = null;
    this._connecting = null;
    this._opened = 0;
    this._closed = false;
    this._members = null; // several daemons: address → a Client of that one
    if (this.addresses.length === 1) {
      this.reconnects = 0; // connections opened after the first
      return;
    }
    this._members = new Map(this.addresses.map((a) => [a, new Client({
      address: a, timeout: this.timeout, maxMessageBytes: this.maxMessageBytes,
    })]));
    Object.defineProperty(this, "reconnects", { // every daemon's, summed
      enumerable: true,
      get: () => [...this._members.values()].reduce((n, m) => n + m.reconnects, 0),
    });
  }

  /** The address of the daemon that holds (opts.run, stream): place()'s owner, or the one daemon. */
  daemonOf(stream, opts = {}) {
    if (typeof stream !== "string") throw new TypeError(`stream must be a string, not ${typeof stream}`);
    return this.addresses.length === 1 ? this.addresses[0] : place(opts.run, stream, this.addresses);
  }

  /** The open connection, or a new one (rejects with CONNECTION when none can be had). */
  _connection() {
    if (this._closed) return Promise.reject(new EigenwatchError(CONNECTION, "the client is closed"));
    if (this._conn && !this._conn.closed) return Promise.resolve(this._conn);
    if (!this._connecting) {
      this._connecting = Connection.open(this.address, {
        timeoutMs: this.timeout || 60000,
        maxMessageBytes: this.maxMessageBytes,
      }).then((conn) => {
        this._connecting = null;
        if (this._closed) {
          conn.close();
          throw new EigenwatchError(CONNECTION, "the client is closed");
        }
        if (this._opened++ > 0) this.reconnects++;
        if (this._conn) conn.msgid = this._conn.msgid; // msgids go on increasing across connections
        this._conn = conn;
        return conn;
      }, (err) => {
        this._connecting = null;
        throw err;
      });
    }
    return this._connecting;
  }

  /**
   * Sends a request and resolves to its result (the escape hatch under every method below).
   * params: an object of wire fields (sent as [params]; none or {} as []), or an array sent as
   * the params array itself. opts.timeout: milliseconds for this reply instead of the client's.
   * Rejects as the class doc says. With several daemons: on the daemon of the stream the params
   * name, or on all of them, merged (see the class doc).
   */
  async call(method, params, opts = {}) {
    if (this._members) {
      if (this._closed) throw new EigenwatchError(CONNECTION, "the client is closed");
      const o = { timeout: opts.timeout ?? this.timeout, sizeHint: opts.sizeHint };
      return fanoutCall(this._members, this.addresses, method, params, o);
    }
    const harmless = ANSWER_ONLY.has(method) || (params && params.producer !== undefined && params.seq !== undefined);
    const timeoutMs = opts.timeout ?? this.timeout;
    for (let attempt = 0; ; attempt++) {
      const conn = await this._connection();
      try {
        return await conn.request(method, params, { timeoutMs, method, sizeHint: opts.sizeHint });
      } catch (err) {
        if (err instanceof EigenwatchError && err.code === CONNECTION && attempt === 0 && harmless && !this._closed) {
          continue; // the daemon went away before answering: ask its successor once
        }
        throw err;
      }
    }
  }

  /**
   * Sends a notification [2, method, params] (no reply; the daemon only counts its errors).
   * Resolves once the bytes are handed to the socket; rejects with CONNECTION when the daemon
   * cannot be reached. With several daemons: to the daemon of the stream the params name, else
   * to every daemon.
   */
  async notify(method, params, opts = {}) {
    if (this._members) {
      if (this._closed) throw new EigenwatchError(CONNECTION, "the client is closed");
      return fanoutNotify(this._members, this.addresses, method, params, opts);
    }
    const conn = await this._connection();
    conn.notify(method, params, opts.sizeHint);
  }

  /** Closes the connection (every daemon's); calls in flight reject with CONNECTION, later calls too. */
  close() {
    this._closed = true;
    if (this._conn) this._conn.close();
    for (const m of this._members?.values() ?? []) m.close();
  }

  // ---- the methods ----

  /** Liveness: resolves to {version, protocol: 1, pong: true} (several daemons: all asked, the first's). */
  async ping() {
    return this.call("ping");
  }

  /**
   * Creates a stream (idempotent for the same configuration). opts: run, dim, and any other
   * field of create by its wire name (window, eval, rules, world, step_timeout, recent,
   * window_steps, kind, ...). Resolves to {stream, created, config}.
   */
  async create(stream, opts = {}) {
    const p = streamFields(stream, opts);
    if (opts.dim !== undefined) p.dim = opts.dim;
    for (const [k, v] of Object.entries(opts)) if (k !== "run" && k !== "dim" && v !== undefined) p[k] = v;
    return this.call("create", p);
  }

  /**
   * Adds rows to a stream (created with the defaults and the rows' d when absent). rows: a
   * Float32Array or Float64Array (dtype f32/f64, sent as bin), {bf16: Uint16Array} or
   * {f16: Uint16Array} (raw 16-bit words), {data, dtype, shape} (sent as given), or an array of
   * arrays of numbers (the rows form). opts.shape [n, d] or opts.dim d gives the row width (else
   * one row); opts.run, step, rank, world, end_step, producer, seq as PROTOCOL.md's ingest;
   * opts.labels: one integer in [0, 2^32) per row (Uint32Array or array). With opts.notify the
   * rows go as a notification and the promise resolves to undefined once they are written;
   * otherwise to {stream, accepted, count} (+ step, late, duplicate). Rejects with
   * TypeError/RangeError, before sending anything, for rows that do not fit their shape.
   */
  async ingest(stream, rows, opts = {}) {
    const { fields, rows: n } = encodeRows(rows, opts);
    const p = { ...streamFields(stream, opts), ...fields };
    if (opts.labels !== undefined && opts.labels !== null) {
      const lab = encodeLabels(opts.labels);
      if (lab.length !== 4 * n) throw new RangeError(`${lab.length / 4} labels for ${n} rows`);
      p.labels = lab;
    }
    stepFields(p, opts);
    const sizeHint = (fields.data ? fields.data.length : 0) + (p.labels ? p.labels.length : 0);
    if (opts.notify) {
      await this.notify("ingest", p, { sizeHint });
      return undefined;
    }
    return this.call("ingest", p, { sizeHint });
  }

  /**
   * Paired rows into a paired stream (create it with kind "paired", dims [dx, dy]): x and y as
   * ingest's rows (opts.xdim / opts.ydim give their widths when they are flat typed arrays),
   * row i of x with row i of y. Other opts as ingest's. Resolves as ingest.
   */
  async ingestPairs(stream, x, y, opts = {}) {
    const fx = encodeRows(x, { dim: opts.xdim }).fields;
    const fy = encodeRows(y, { dim: opts.ydim }).fields;
    const p = { ...streamFields(stream, opts), x: fx, y: fy };
    stepFields(p, opts);
    return this.call("ingest", p, { sizeHint: (fx.data?.length ?? 0) + (fy.data?.length ?? 0) });
  }

  /**
   * Computes metrics of a stream. metrics: a name or a list of names. opts: run, method
   * ("auto" | "slq" | "exact"), params (metric parameters), center, source, fresh, max_lag,
   * timeout (ms for this reply; a fresh exact solve at large d takes info().solve_estimate_s).
   * Resolves to {stream, count, dim, as_of, elapsed_ms, cached, metrics: {name: value}}.
   */
  async query(stream, metrics, opts = {}) {
    const p = { ...streamFields(stream, opts), metrics: nameList(metrics) };
    if (opts.method !== undefined) p.method = opts.method;
    if (opts.params && Object.keys(opts.params).length) p.params = opts.params;
    if (opts.center !== undefined && opts.center !== null) p.center = Boolean(opts.center);
    if (opts.source !== undefined) p.source = opts.source;
    if (opts.fresh) p.fresh = true;
    if (opts.max_lag !== undefined && opts.max_lag !== null) p.max_lag = opts.max_lag;
    return this.call("query", p, { timeout: opts.timeout });
  }

  /**
   * Every stream, or opts.run's: resolves to [{stream, run, dim, count, memory_bytes,
   * last_ingest}] (several daemons: all of theirs, sorted by run, then stream).
   */
  async list(opts = {}) {
    return (await this.call("list", runField(opts))).streams;
  }

  /** One stream with its configuration, steps and eval state (PROTOCOL.md, info). */
  async info(stream, opts = {}) {
    return this.call("info", streamFields(stream, opts));
  }

  /** Forgets a stream's rows, keeps its configuration: resolves to {stream, count: 0}. */
  async reset(stream, opts = {}) {
    return this.call("reset", streamFields(stream, opts));
  }

  /**
   * Deletes a stream (its snapshot and history too); with stream undefined and opts.run, every
   * stream of that run. Resolves to {stream, dropped} or {run, dropped, streams}. Several
   * daemons: a run is dropped on each (streams summed; one without it counts 0, and
   * NO_SUCH_STREAM only when none had it).
   */
  async drop(stream, opts = {}) {
    if (stream === undefined || stream === null) {
      if (opts.run === undefined || opts.run === null) throw new TypeError("drop needs a stream, or a run to drop whole");
      return this.call("drop", { run: String(opts.run) });
    }
    return this.call("drop", streamFields(stream, opts));
  }

  /** The daemon's counters (PROTOCOL.md, stats); several daemons: {address: its counters}. */
  async stats() {
    return this.call("stats");
  }

  /**
   * The metric table: resolves to [{name, kind, sources, cost, doc, params, sketch, streams}]
   * (several daemons: all asked, the first's).
   */
  async metrics() {
    return (await this.call("metrics")).metrics;
  }

  /**
   * The runs: resolves to [{run, streams, first_step?, last_step?, last_activity}]. Several
   * daemons: a run's streams are the union, first_step the smallest, last_step and
   * last_activity the largest.
   */
  async runs() {
    return (await this.call("runs")).runs;
  }

  /**
   * Completes every pending step of a stream now; opts.end: also mark the stream ended.
   * Resolves to {stream, completed, ended?}.
   */
  async flush(stream, opts = {}) {
    const p = streamFields(stream, opts);
    if (opts.end) p.end = true;
    return this.call("flush", p);
  }

  /**
   * Writes every changed stream's snapshot; resolves to {streams, bytes, seconds} when durable
   * (several daemons: streams and bytes summed, the longest seconds).
   */
  async snapshot() {
    return this.call("snapshot");
  }

  /** A stream's whole saved state (docs/STATE.md): resolves to a Uint8Array. */
  async export(stream, opts = {}) {
    return (await this.call("export", streamFields(stream, opts))).state;
  }

  /**
   * Folds an exported state (Uint8Array) into `stream` (created from it when absent).
   * Resolves to {stream, merged, count, created}.
   */
  async merge(stream, state, opts = {}) {
    if (!ArrayBuffer.isView(state)) throw new TypeError("state must be bytes (a Uint8Array)");
    const bytes = new Uint8Array(state.buffer, state.byteOffset, state.byteLength);
    if (typeof stream !== "string") throw new TypeError("stream must be a string");
    const p = { stream, state: bytes, ...runField(opts) };
    return this.call("merge", p, { sizeHint: bytes.length });
  }

  /**
   * Evaluated points by step. opts: run, stream or streams, metrics (series names), from_step,
   * to_step, max_points, agg. Resolves to an array of Series, one per (stream, series) with
   * points, as the daemon orders them (see seriesOf). Several daemons: a stream's from its
   * daemon; `streams`, each group from its daemon; neither, every daemon's sorted by run,
   * stream, metric.
   */
  async history(opts = {}) {
    const p = { ...runField(opts) };
    for (const k of ["stream", "streams", "from_step", "to_step", "max_points", "agg"]) {
      if (opts[k] !== undefined && opts[k] !== null) p[k] = opts[k];
    }
    if (opts.metrics !== undefined && opts.metrics !== null) p.metrics = nameList(opts.metrics);
    return (await this.call("history", p, { timeout: opts.timeout })).series.map(seriesOf);
  }

  /** Replaces a stream's alert rules ([] removes them): resolves to {stream, rules}. */
  async alertSet(stream, rules, opts = {}) {
    if (typeof stream !== "string") throw new TypeError("stream must be a string");
    return this.call("alert_set", { stream, rules: Array.from(rules), ...runField(opts) });
  }

  /**
   * Alert rules and their states: opts.stream (one stream), opts.run, opts.events (also the last
   * that many alert events). Resolves to {alerts: [...], events?: [...]}. Several daemons
   * (without a stream): rules sorted by run, stream, rule; events by time, the last opts.events.
   */
  async alerts(opts = {}) {
    const p = { ...runField(opts) };
    if (opts.stream !== undefined && opts.stream !== null) p.stream = opts.stream;
    if (opts.events !== undefined && opts.events !== null) p.events = opts.events;
    return this.call("alerts", p);
  }

  /**
   * y less what a paired stream's pairs say x explains (y − x·A*): x, y as ingestPairs's.
   * Resolves to {y: Float64Array (row-major), shape: [n, dy]}.
   */
  async nullify(stream, x, y, opts = {}) {
    const fx = encodeRows(x, { dim: opts.xdim }).fields;
    const fy = encodeRows(y, { dim: opts.ydim }).fields;
    const r = (await this.call("nullify", { ...streamFields(stream, opts), x: fx, y: fy })).y;
    return { y: float64FromLE(r.data), shape: r.shape };
  }

  /**
   * Notifications of evaluations and alert changes of the streams matching opts.stream (a name
   * or a `*` glob; default all) in opts.run, optionally only opts.metrics (series names), on a
   * connection of its own. Returns a Subscription at once (its `ready` promise says when the
   * daemon took it); several daemons: a MultiSubscription, one subscription on each daemon.
   */
  subscribe(opts = {}) {
    const p = { ...runField(opts) };
    if (opts.stream !== undefined && opts.stream !== null) p.stream = opts.stream;
    if (opts.metrics !== undefined && opts.metrics !== null) p.metrics = nameList(opts.metrics);
    const o = { timeout: this.timeout, maxMessageBytes: this.maxMessageBytes };
    if (this._members) return new MultiSubscription(this.addresses, p, o);
    return new Subscription(this.address, p, o);
  }
}

/** f64 little-endian bytes as a Float64Array of their own. */
function float64FromLE(bytes) {
  const out = new Float64Array(bytes.length / 8);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);
  return out;
}

/**
 * One series of a `history` answer with numeric arrays, one entry per point: step, time,
 * rows, ranks, lag_s, skipped as Float64Array (integers exact up to 2^53); value a Float64Array
 * (or, for list metrics such as spectrum, an array of Float64Array); partial an array of
 * booleans; error a Float64Array with NaN where a point has none, and bracket an array of
 * [lo, hi] (NaN where none) — both only for estimated metrics, else undefined.
 */
export function seriesOf(d) {
  const f64 = (a) => Float64Array.from(a ?? [], (v) => (v === null || v === undefined ? NaN : Number(v)));
  const vals = d.value ?? [];
  const value = vals.length && Array.isArray(vals[0]) ? vals.map((v) => f64(v)) : f64(vals);
  const s = {
    run: d.run,
    stream: d.stream,
    metric: d.metric,
    step: f64(d.step),
    time: f64(d.time),
    value,
    partial: (d.partial ?? []).map(Boolean),
    rows: f64(d.rows),
    ranks: f64(d.ranks),
    lag_s: f64(d.lag_s),
    skipped: f64(d.skipped),
  };
  if (d.error !== undefined) s.error = f64(d.error);
  if (d.bracket !== undefined) s.bracket = d.bracket.map((b) => (b ? [Number(b[0]), Number(b[1])] : [NaN, NaN]));
  return s;
}

export { MultiSubscription, Subscription };
