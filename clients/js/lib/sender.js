// Sender: the fail-open path for training loops.
//
// send() encodes the batch as an ingest notification, appends it to a bounded in-memory queue
// and returns: it never throws and never waits for the daemon. A pump on the event loop writes
// the queue to the daemon's socket (as fast as the socket takes it), then sends a `ping`: its
// reply means every ingest written before it is taken — applied, or staged for its step
// (PROTOCOL.md, "Ordering") — and only then are those batches counted sent and their bytes
// released. So the queue bound,
// maxQueueBytes, covers what is queued and what is written but not yet confirmed.
//
// Fail-open: when the daemon is down (a connection could not be made, or was lost) send()
// drops the batch at once — returns false and counts droppedRows/droppedBatches — until a
// reconnect, retried with backoff (50 ms doubling to 2 s), succeeds. So does a batch that would
// take the queue past maxQueueBytes. Batches written but not confirmed when a connection broke
// are written again, as they were, on the next connection: each carries this Sender's
// `producer` and a `seq` increasing per (run, stream), so the daemon skips those it had applied
// (exactly once; PROTOCOL.md, "Exactly once"). Batches queued before the first connection is
// made, or left unconfirmed by a lost one, stay queued (within the bound) until a connection is
// up; close() counts what is still there as dropped. Each batch also reports the stream's drops
// so far (dropped_rows, dropped_batches), which /metrics exports.
//
// Several daemons: with addresses [a, b, ...] the Sender keeps one connection, queue, backoff
// and fail-open state per daemon and sends each (run, stream) to its place() owner, so a daemon
// that is down loses only its own streams' rows while it is down.
//
// declare(stream, opts) asks that a stream be created with create's options before its first
// rows on each connection (dim from the rows); the create is a request whose refusal (e.g.
// STREAM_EXISTS) is reported to onError and in stats.lastError, and the rows are sent anyway.
// close() ends the last step of every (run, stream, rank) sent with a step (end_step), marks
// every stream it sent to ended (flush {end: true}) — both as requests, whose refusals go to
// onError — flushes, and closes the connections.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

import { Connection } from "./connection.js";
import { DEFAULT_RUN, parseAddresses, place } from "./placement.js";
import { defaultAddress, encode, encodeRows, parseAddress } from "./wire.js";

const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 2000;
const OVERHEAD_BYTES = 256; // what a batch costs besides its data (fields, entry) in the bound

/** A name for one Sender (≤ 64 bytes): host, process and a random part. */
export function producerId() {
  return `${hostname().slice(0, 32)}:${process.pid}:${randomBytes(6).toString("hex")}`;
}

function emptyStats() {
  return {
    sentBatches: 0, // batches confirmed applied (or skipped as duplicates) by the daemon
    sentRows: 0,
    droppedBatches: 0, // refused by send() (queue full, daemon down, closed) or left at close()
    droppedRows: 0,
    rejectedBatches: 0, // rows send() could not encode (a shape that does not fit, ...)
    rejectedRows: 0,
    queuedBatches: 0, // queued or written and not yet confirmed
    queuedBytes: 0,
    reconnects: 0, // connections made after a lost one
    connectFailures: 0,
    lastError: null,
  };
}

// One daemon: its connection, queue and fail-open state.
class Link {
  constructor(sender, address) {
    this.sender = sender;
    this.address = address;
    this.state = "connecting"; // connecting | up | down | closed
    this.conn = null;
    this.queue = []; // batches not yet written, oldest first
    this.unconfirmed = []; // written on this connection, not yet confirmed by a ping
    this.heldBytes = 0; // queue + unconfirmed, what maxQueueBytes bounds
    this.pinging = false;
    this.created = new Set(); // declared streams created on this connection
    this.backoff = BACKOFF_MIN_MS;
    this.timer = null;
    this.everConnected = false;
    this.scheduled = false;
    this.draining = false; // waiting for the socket's 'drain'
    this.stats = emptyStats();
    this._connect();
  }

  _connect() {
    this.timer = null;
    if (this.state === "closed") return;
    Connection.open(this.address, { timeoutMs: this.sender.connectTimeoutMs }).then((conn) => {
      if (this.state === "closed") {
        conn.close();
        return;
      }
      this.conn = conn;
      conn.onClose = (err) => this._lost(conn, err);
      if (this.everConnected) this.stats.reconnects++;
      this.everConnected = true;
      this.state = "up";
      this.backoff = BACKOFF_MIN_MS;
      this.schedule();
    }, (err) => {
      if (this.state === "closed") return;
      this.stats.connectFailures++;
      this.stats.lastError = err.message;
      this.state = "down";
      this._retry();
    });
  }

  _retry() {
    if (this.state === "closed" || this.timer) return;
    this.timer = setTimeout(() => this._connect(), this.backoff);
    this.timer.unref();
    this.backoff = Math.min(BACKOFF_MAX_MS, this.backoff * 2);
  }

  // The connection ended: what it did not confirm goes back to the head of the queue.
  _lost(conn, err) {
    if (conn !== this.conn) return;
    this.conn = null;
    this.created.clear(); // a new connection may reach a daemon that lost the stream
    this.pinging = false;
    this.draining = false;
    if (this.unconfirmed.length) {
      this.queue = this.unconfirmed.concat(this.queue);
      this.unconfirmed = [];
    }
    if (this.state === "closed") return;
    this.stats.lastError = err ? err.message : "connection lost";
    this.state = "down";
    this._retry();
    this.sender._progress();
  }

  /** Queues an encoded batch; false when down, closed or full (the caller counts the drop). */
  offer(batch) {
    if (this.state === "down" || this.state === "closed" ||
        this.heldBytes + batch.bytes > this.sender.maxQueueBytes) {
      return false;
    }
    this.queue.push(batch);
    this.heldBytes += batch.bytes;
    this.schedule();
    return true;
  }

  /** Runs the pump soon (once per turn of the event loop, however many batches came). */
  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  pump() {
    const conn = this.conn;
    if (this.state !== "up" || !conn || conn.closed) return;
    while (this.queue.length && !conn.needsDrain) {
      const b = this.queue.shift();
      if (b.dim !== undefined) this._ensureCreated(conn, b);
      if (b.frame) conn.write(b.frame);
      else this._marker(conn, b);
      this.unconfirmed.push(b);
    }
    if (this.queue.length && conn.needsDrain && !this.draining) {
      this.draining = true;
      conn.socket.once("drain", () => {
        this.draining = false;
        this.pump();
      });
    }
    if (this.unconfirmed.length && !this.pinging) this._ping(conn);
    conn.hold = this.queue.length > 0 || this.unconfirmed.length > 0;
    conn.updateRef();
  }

  // A declared stream's create, before its first rows on this connection.
  _ensureCreated(conn, b) {
    const opts = this.sender.declared.get(b.key);
    if (opts === undefined || this.created.has(b.key)) return;
    this.created.add(b.key);
    const p = { stream: b.stream };
    if (b.run !== undefined) p.run = b.run;
    p.dim = b.dim;
    for (const [k, v] of Object.entries(opts)) if (k !== "run" && k !== "dim" && v !== undefined) p[k] = v;
    conn.request("create", p, { method: "create" }).catch((err) => {
      if (err.code === "CONNECTION") return; // the next connection creates it again
      this.stats.lastError = `create ${b.stream}: ${err.code}: ${err.message}`;
      this.sender._report(err, { address: this.address, stream: b.stream, run: b.run, what: "create" });
    });
  }

  // An end of step or of a run, as a request: the daemon refuses an end_step notification
  // (silently, NO_SUCH_STREAM) while the ingest that creates its stream is still being applied
  // (daemon/cmd/ingest.c: a marker for a provisional stream), where a request waits for it.
  _marker(conn, b) {
    conn.request(b.method, b.params, { method: b.method }).catch((err) => {
      if (err.code === "CONNECTION") return; // written again on the next connection
      this.stats.lastError = `${b.method} ${b.stream}: ${err.code}: ${err.message}`;
      this.sender._report(err, { address: this.address, stream: b.stream, run: b.run, what: b.method });
    });
  }

  // A ping after the written batches: its reply confirms them all.
  _ping(conn) {
    this.pinging = true;
    const upto = this.unconfirmed.length;
    const first = this.unconfirmed[0];
    conn.request("ping", undefined, { method: "ping" }).then(() => {
      if (conn !== this.conn) return;
      this.pinging = false;
      // unconfirmed only grows at its end while this connection lives: the first `upto` are ours
      if (this.unconfirmed[0] === first) {
        for (const b of this.unconfirmed.splice(0, upto)) {
          this.heldBytes -= b.bytes;
          if (b.rows !== null) {
            this.stats.sentBatches++;
            this.stats.sentRows += b.rows;
          }
        }
      }
      this.pump();
      this.sender._progress();
    }, () => {
      // the connection ended: _lost() puts the batches back
    });
  }

  idle() {
    return this.queue.length === 0 && this.unconfirmed.length === 0;
  }

  snapshot() {
    const s = { ...this.stats, state: this.state };
    s.queuedBatches = this.queue.length + this.unconfirmed.length;
    s.queuedBytes = this.heldBytes;
    return s;
  }

  close() {
    this.state = "closed";
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const left = this.queue.concat(this.unconfirmed);
    this.queue = [];
    this.unconfirmed = [];
    this.heldBytes = 0;
    if (this.conn) {
      const c = this.conn;
      this.conn = null;
      c.close();
    }
    return left;
  }
}

/**
 * A fail-open, non-blocking sender of rows for training loops (the file comment says how).
 *
 * new Sender({address | addresses, maxQueueBytes, producer, connectTimeoutMs, onError}):
 * address: one daemon; addresses: several ("a,b,c" or an array; parseAddresses' rules), each
 * (run, stream) going to its place() owner; neither: $EIGENWATCH_ADDRESS (which may list
 * several), else tcp:127.0.0.1:7700. maxQueueBytes (default 64 MiB) bounds each daemon's queued
 * and unconfirmed bytes. producer (≤ 64 bytes; default host:pid:random) names this sender for
 * exactly-once. onError(err, {address, stream, run, what}) hears the daemon's refusals of what
 * is sent as a request: declared creates and close()'s end markers ("create", "ingest", "flush").
 * Throws TypeError for a malformed address or producer (the only time it throws).
 */
export class Sender {
  constructor(opts = {}) {
    let addrs;
    if (opts.addresses !== undefined) addrs = parseAddresses(opts.addresses);
    else if (opts.address !== undefined) addrs = parseAddresses([opts.address]);
    else addrs = parseAddresses(process.env.EIGENWATCH_ADDRESS || defaultAddress());
    if (addrs.length === 0) throw new TypeError("a Sender needs at least one daemon address");
    for (const a of addrs) parseAddress(a);
    this.addresses = addrs;
    this.maxQueueBytes = opts.maxQueueBytes ?? 64 * 1024 * 1024;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 1000;
    this.producer = opts.producer ?? producerId();
    if (typeof this.producer !== "string" || Buffer.byteLength(this.producer) > 64 || !this.producer) {
      throw new TypeError("producer must be a string of 1 to 64 bytes");
    }
    this.onError = opts.onError ?? null;
    this.declared = new Map(); // key -> create's options
    this.closed = false;
    this._links = new Map(addrs.map((a) => [a, new Link(this, a)]));
    this._owner = new Map(); // key -> Link (place() once per (run, stream))
    this._seq = new Map(); // key -> last seq
    this._drops = new Map(); // key -> [rows, batches] dropped so far, reported with the next batch
    this._lastStep = new Map(); // key \0 rank -> {stream, run, step, rank, world}
    this._sentTo = new Map(); // key -> {stream, run, rank}: close() marks them ended
    this._own = emptyStats(); // what send() counted before a batch reached a link
    this._waiters = new Set(); // flush() calls waiting for the queues to empty
  }

  _key(run, stream) {
    return `${run ?? DEFAULT_RUN}\0${stream}`;
  }

  _link(key, run, stream) {
    let link = this._owner.get(key);
    if (link === undefined) {
      link = this._links.get(place(run, stream, this.addresses));
      if (this._owner.size > 65536) this._owner.clear();
      this._owner.set(key, link);
    }
    return link;
  }

  _dropped(key, rows, link) {
    const s = link ? link.stats : this._own;
    s.droppedBatches++;
    s.droppedRows += rows;
    const d = this._drops.get(key);
    if (d) {
      d[0] += rows;
      d[1] += 1;
    } else {
      this._drops.set(key, [rows, 1]);
    }
  }

  /**
   * Queues rows for `stream` (ingest's rows: Float32Array, Float64Array, {bf16, shape}, ...;
   * opts.dim or opts.shape for the row width), optionally in opts.run at training opts.step from
   * opts.rank of opts.world. Returns true when queued, false when dropped (counted in stats):
   * the daemon owning the stream is down, its queue is full, the Sender is closed, or the rows
   * could not be encoded (counted rejected). Never throws, never waits; the rows are copied, so
   * the array may be reused at once.
   */
  send(stream, rows, opts = {}) {
    let key = null;
    let link = null;
    let n = 0;
    try {
      const run = opts.run ?? undefined;
      key = this._key(run, stream);
      link = this._link(key, run, stream);
      let enc;
      try {
        enc = encodeRows(rows, opts);
        if (!enc.fields.data) enc = encodeRows(Float64Array.from(enc.fields.rows.flat()), { dim: enc.fields.rows[0]?.length });
      } catch (err) {
        link.stats.rejectedBatches++;
        link.stats.lastError = `send ${stream}: ${err.message}`;
        return false;
      }
      n = enc.rows;
      const bytes = enc.fields.data.length + OVERHEAD_BYTES;
      if (this.closed || link.state === "down" || link.heldBytes + bytes > this.maxQueueBytes) {
        this._dropped(key, n, link);
        return false;
      }
      const p = { stream };
      if (run !== undefined) p.run = String(run);
      p.data = enc.fields.data;
      p.dtype = enc.fields.dtype;
      p.shape = enc.fields.shape;
      if (opts.step !== undefined && opts.step !== null) {
        p.step = opts.step;
        if (opts.rank !== undefined && opts.rank !== null) p.rank = opts.rank;
        if (opts.world !== undefined && opts.world !== null) p.world = opts.world;
      }
      const seq = (this._seq.get(key) ?? 0) + 1;
      p.producer = this.producer;
      p.seq = seq;
      const drops = this._drops.get(key);
      if (drops) {
        p.dropped_rows = drops[0];
        p.dropped_batches = drops[1];
      }
      const frame = encode([2, "ingest", [p]], enc.fields.data.length);
      const batch = { key, stream, run: p.run, dim: enc.fields.shape[1], frame, bytes: frame.length + OVERHEAD_BYTES, rows: n };
      if (!link.offer(batch)) {
        this._dropped(key, n, link);
        return false;
      }
      this._seq.set(key, seq);
      if (!this._sentTo.has(key)) this._sentTo.set(key, { stream, run: p.run });
      if (p.step !== undefined && p.rank !== undefined) this._sentTo.get(key).rank = p.rank;
      if (p.step !== undefined) {
        this._lastStep.set(`${key}\0${p.rank ?? 0}`, { stream, run: p.run, step: p.step, rank: p.rank, world: p.world });
      }
      return true;
    } catch (err) {
      // fail open, whatever happened
      try {
        (link ? link.stats : this._own).lastError = `send: ${err && err.message}`;
        if (key !== null) this._dropped(key, n, link);
      } catch {
        // nothing more to do
      }
      return false;
    }
  }

  /**
   * Asks that `stream` (in opts.run) be created with create's options (world, window_steps,
   * eval, rules, ...; dim comes from its rows) before its first rows on each connection. Never
   * throws, never waits.
   */
  declare(stream, opts = {}) {
    try {
      const o = { ...opts };
      const run = o.run ?? undefined;
      delete o.run;
      this.declared.set(this._key(run, stream), o);
    } catch {
      // fail open
    }
  }

  /**
   * Counters: the sums over the daemons, and per daemon under `daemons[address]` with its
   * `state` ("connecting", "up", "down", "closed"). A fresh object each time.
   */
  get stats() {
    const total = { ...this._own };
    const daemons = {};
    for (const [a, link] of this._links) {
      const s = link.snapshot();
      daemons[a] = s;
      for (const k of Object.keys(total)) {
        if (typeof total[k] === "number") total[k] += s[k];
        else if (k === "lastError" && s.lastError) total.lastError = s.lastError;
      }
    }
    total.daemons = daemons;
    return total;
  }

  /** The address that owns (run, stream) for this Sender. */
  ownerOf(stream, opts = {}) {
    return place(opts.run ?? undefined, stream, this.addresses);
  }

  _idle() {
    for (const link of this._links.values()) if (!link.idle()) return false;
    return true;
  }

  // A batch was confirmed or a connection lost: wake flush() calls whose queues emptied.
  _progress() {
    if (this._waiters.size === 0 || !this._idle()) return;
    for (const w of this._waiters) w(true);
    this._waiters.clear();
  }

  _report(err, ctx) {
    if (this.onError) {
      try {
        this.onError(err, ctx);
      } catch {
        // the callback's own failure is not the Sender's
      }
    }
  }

  /**
   * Resolves to true once everything queued (on every daemon) has been confirmed by its daemon,
   * false if `timeoutMs` (default 10000) passed first, e.g. because a daemon holding queued
   * batches is down. Never rejects.
   */
  flush(timeoutMs = 10000) {
    if (this._idle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer = null;
      const done = (ok) => {
        if (timer) clearTimeout(timer);
        this._waiters.delete(done);
        resolve(ok);
      };
      timer = setTimeout(() => done(this._idle()), timeoutMs);
      this._waiters.add(done);
      for (const link of this._links.values()) link.schedule();
    });
  }

  // Queues a marker (an end of step, or a run's end) on its stream's daemon: no rows, no seq;
  // sent as a request (Link._marker says why).
  _marker(method, p, key) {
    const link = this._link(key, p.run, p.stream);
    link.offer({ key, stream: p.stream, run: p.run, dim: undefined, frame: null, method, params: p, bytes: OVERHEAD_BYTES, rows: null });
  }

  /**
   * Ends the last step of every (run, stream, rank) sent with a step (ingest end_step), marks
   * every stream it sent to ended (flush {end: true}), waits up to `timeoutMs` (default 2000)
   * for the daemons to confirm everything, then closes the connections; what is still queued is
   * dropped and counted. Resolves to flush()'s answer; never rejects. Later send()s return false.
   */
  async close(timeoutMs = 2000) {
    if (this.closed) return true;
    let ok = false;
    try {
      for (const [k, m] of this._lastStep) {
        const p = { stream: m.stream, step: m.step, end_step: true };
        if (m.run !== undefined) p.run = m.run;
        if (m.rank !== undefined) p.rank = m.rank;
        if (m.world !== undefined) p.world = m.world;
        this._marker("ingest", p, k.slice(0, k.lastIndexOf("\0")));
      }
      this._lastStep.clear();
      for (const [k, m] of this._sentTo) {
        const p = { stream: m.stream, end: true };
        if (m.run !== undefined) p.run = m.run;
        // stepped rows: only this rank's run is over; the other ranks' last steps complete as
        // they end them, never cut short by the first rank to close
        if (m.rank !== undefined) p.rank = m.rank;
        this._marker("flush", p, k);
      }
      this._sentTo.clear();
      ok = await this.flush(timeoutMs);
    } finally {
      this.closed = true;
      for (const link of this._links.values()) {
        for (const b of link.close()) if (b.rows !== null) this._dropped(b.key, b.rows, link);
      }
      this._progress();
    }
    return ok;
  }
}
