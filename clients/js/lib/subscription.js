// Subscription: the notifications of `subscribe` on a connection of their own, as an async
// iterator; MultiSubscription: one per daemon of a Client of several, merged into one iterator.
import { Connection } from "./connection.js";
import { namingAddress } from "./fanout.js";

/**
 * The notifications of one `subscribe`, as an async iterator: each value is
 * {kind: "metrics", run, stream, step, time, rows, ranks, partial, skipped, metrics} or
 * {kind: "alert", run, stream, rule, state, step, value, message} — one per notification, in the
 * order the daemon sent them. It has its own connection, opened at once; `ready` resolves to the
 * subscription id once the daemon took it (rejects with its EigenwatchError, e.g.
 * UNKNOWN_METRIC, or CONNECTION). If the connection is lost afterwards it reconnects and
 * subscribes again (what was evaluated meanwhile is in `history`; `reconnects` counts them).
 * close() / return() end it: a waiting next() then resolves {done: true}. While more than
 * `maxQueued` (default 10000) notifications wait unread, it stops reading the socket, and the
 * daemon, past its conn_out_cap, disconnects it (it then reconnects).
 */
export class Subscription {
  constructor(address, params, opts = {}) {
    this.address = address;
    this.params = params;
    this.timeout = opts.timeout ?? 60000;
    this.maxMessageBytes = opts.maxMessageBytes ?? 1 << 30;
    this.maxQueued = opts.maxQueued ?? 10000;
    this.id = null;
    this.reconnects = 0;
    this.closed = false;
    this._queue = [];
    this._waiters = []; // {resolve, reject, timer}
    this._conn = null;
    this._error = null; // a failure of the first subscribe: every next() rejects with it
    this._paused = false;
    this._sink = opts._sink ?? null; // a MultiSubscription's: it takes the notifications instead
    this.ready = this._open();
    this.ready.catch((err) => {
      this._error = err;
      this._wake();
    });
  }

  async _open() {
    const conn = await Connection.open(this.address, { timeoutMs: this.timeout || 60000, maxMessageBytes: this.maxMessageBytes });
    if (this.closed) {
      conn.close();
      return this.id;
    }
    this._conn = conn;
    conn.onNotification = (method, params) => this._notification(method, params);
    conn.onClose = () => this._lost(conn);
    conn.hold = this._waiting();
    conn.updateRef();
    try {
      const r = await conn.request("subscribe", this.params, { timeoutMs: this.timeout, method: "subscribe" });
      this.id = r.subscription;
    } catch (err) {
      conn.onClose = null;
      conn.close();
      throw err;
    }
    return this.id;
  }

  _notification(method, params) {
    if ((method !== "metrics" && method !== "alert") || !Array.isArray(params) || !params.length) return;
    const payload = params[0];
    if (!payload || typeof payload !== "object") return;
    const item = { ...payload, kind: method };
    if (this._sink) {
      this._sink.push(item);
      return;
    }
    const w = this._waiters.shift();
    if (w) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(item);
      this._holdUpdate();
      return;
    }
    this._queue.push(item);
    if (this._queue.length > this.maxQueued) this._pauseReading();
  }

  // Someone waits for a notification: the connection then keeps the process alive.
  _waiting() {
    return this._sink ? this._sink.waiting() : this._waiters.length > 0;
  }

  _pauseReading() {
    if (this._conn && !this._paused) {
      this._paused = true;
      this._conn.socket.pause();
    }
  }

  _resumeReading() {
    if (this._paused && this._conn) {
      this._paused = false;
      this._conn.socket.resume();
    }
  }

  // The connection ended while the subscription was live: subscribe again on a new one.
  _lost(conn) {
    if (this.closed || conn !== this._conn) return;
    this._conn = null;
    this._paused = false;
    const retry = (delay) => {
      if (this.closed) return;
      const t = setTimeout(() => {
        this._open().then(() => {
          this.reconnects++;
        }, () => retry(Math.min(2000, delay * 2)));
      }, delay);
      if (!this._waiting()) t.unref();
    };
    retry(200);
  }

  _wake() {
    if (!this.closed && this._error === null) return;
    for (const w of this._waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      if (this._error && !this.closed) w.reject(this._error);
      else w.resolve(null);
    }
  }

  _holdUpdate() {
    if (this._conn) {
      this._conn.hold = this._waiting();
      this._conn.updateRef();
    }
  }

  /**
   * The next notification, or null after `timeoutMs` (undefined: wait as long as it takes) or
   * once closed. Rejects with the error of a subscribe that failed.
   */
  poll(timeoutMs) {
    if (this._queue.length) {
      const item = this._queue.shift();
      if (this._queue.length <= this.maxQueued / 2) this._resumeReading();
      return Promise.resolve(item);
    }
    if (this._error && !this.closed) return Promise.reject(this._error);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: null };
      if (timeoutMs !== undefined && timeoutMs !== null) {
        w.timer = setTimeout(() => {
          const i = this._waiters.indexOf(w);
          if (i >= 0) this._waiters.splice(i, 1);
          this._holdUpdate();
          resolve(null);
        }, timeoutMs);
      }
      this._waiters.push(w);
      this._holdUpdate();
    });
  }

  /** The async iterator protocol: {value: notification, done: false}, or {done: true} once closed. */
  async next() {
    const item = await this.poll();
    return item === null ? { value: undefined, done: true } : { value: item, done: false };
  }

  /** Ends the subscription (the iterator protocol's return, called by `break` in for await). */
  async return() {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** Closes its connection (the daemon ends the subscription with it); waiting next() calls end. */
  close() {
    if (this.closed) return;
    this.closed = true;
    if (this._conn) {
      this._conn.onClose = null;
      this._conn.close();
      this._conn = null;
    }
    this._queue.length = 0;
    this._wake();
  }
}

/**
 * The notifications of one `subscribe` on every daemon of a Client of several (client.subscribe()
 * makes it), as one async iterator: a Subscription per daemon (`subscriptions`, in address
 * order), each on its own connection and re-subscribing by itself after a lost connection; their
 * notifications come out in the order they arrived, whichever daemon sent them. `ready` resolves
 * to the ids (in address order) once every daemon took it, or rejects with the first refusal
 * (a daemon that cannot be reached: CONNECTION naming its address) — then every subscription is
 * closed and next()/poll() reject with that error once the notifications already queued are
 * read. poll(ms), next(), return(), close() and maxQueued (default 10000, over all daemons) are
 * as Subscription's; close() / return() close every daemon's subscription.
 */
export class MultiSubscription {
  constructor(addresses, params, opts = {}) {
    this.addresses = [...addresses];
    this.address = this.addresses.join(",");
    this.params = params;
    this.maxQueued = opts.maxQueued ?? 10000;
    this.closed = false;
    this._queue = [];
    this._waiters = []; // {resolve, reject, timer}
    this._error = null;
    this._paused = false;
    const sink = { waiting: () => this._waiters.length > 0, push: (item) => this._push(item) };
    const o = { timeout: opts.timeout, maxMessageBytes: opts.maxMessageBytes, _sink: sink };
    this.subscriptions = this.addresses.map((a) => new Subscription(a, { ...params }, o));
    this.ready = Promise.all(this.subscriptions.map((s) => s.ready.catch((err) => {
      throw namingAddress(s.address, err);
    })));
    this.ready.catch((err) => {
      this._error = err;
      for (const s of this.subscriptions) s.close();
      this._wake();
    });
  }

  /** Each daemon's subscription id (null until it took it), in address order. */
  get id() {
    return this.subscriptions.map((s) => s.id);
  }

  /** Re-subscriptions after lost connections, over every daemon. */
  get reconnects() {
    return this.subscriptions.reduce((n, s) => n + s.reconnects, 0);
  }

  _push(item) {
    if (this.closed) return;
    const w = this._waiters.shift();
    if (w) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(item);
      this._holdUpdate();
      return;
    }
    this._queue.push(item);
    if (this._queue.length > this.maxQueued) { // (a subscription that reconnected reads again)
      this._paused = true;
      for (const s of this.subscriptions) s._pauseReading();
    }
  }

  _holdUpdate() {
    for (const s of this.subscriptions) s._holdUpdate();
  }

  _wake() {
    if (!this.closed && this._error === null) return;
    for (const w of this._waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      if (this._error && !this.closed) w.reject(this._error);
      else w.resolve(null);
    }
  }

  /**
   * The next notification from any daemon, or null after `timeoutMs` (undefined: wait as long
   * as it takes) or once closed. Rejects with the error of a subscribe that failed.
   */
  poll(timeoutMs) {
    if (this._queue.length) {
      const item = this._queue.shift();
      if (this._paused && this._queue.length <= this.maxQueued / 2) {
        this._paused = false;
        for (const s of this.subscriptions) s._resumeReading();
      }
      return Promise.resolve(item);
    }
    if (this._error && !this.closed) return Promise.reject(this._error);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: null };
      if (timeoutMs !== undefined && timeoutMs !== null) {
        w.timer = setTimeout(() => {
          const i = this._waiters.indexOf(w);
          if (i >= 0) this._waiters.splice(i, 1);
          this._holdUpdate();
          resolve(null);
        }, timeoutMs);
      }
      this._waiters.push(w);
      this._holdUpdate();
    });
  }

  /** The async iterator protocol: {value: notification, done: false}, or {done: true} once closed. */
  async next() {
    const item = await this.poll();
    return item === null ? { value: undefined, done: true } : { value: item, done: false };
  }

  /** Ends every daemon's subscription (the iterator protocol's return, called by `break`). */
  async return() {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** Closes every daemon's subscription; waiting next() calls end. */
  close() {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.subscriptions) s.close();
    this._queue.length = 0;
    this._wake();
  }
}
