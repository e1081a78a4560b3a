// One msgpack-RPC connection to a daemon: connect, write requests and notifications, match the
// replies to their requests by msgid, hand notifications to a callback, and fail every request in
// flight when the connection ends. No reconnecting and no retrying here: Client, Subscription and
// Sender each decide that for themselves.
import net from "node:net";

import { CONNECTION, EigenwatchError, TIMEOUT } from "./errors.js";
import { FrameReader, decode, encodeNotification, encodeRequest, parseAddress } from "./wire.js";

/**
 * A connected socket with its pending requests. Made by Connection.open(); not reused after it
 * closes (closed becomes true, onClose is called once, every pending request is rejected).
 * The socket keeps the process alive only while a request is pending or `hold` is set.
 */
export class Connection {
  constructor(socket, address, opts = {}) {
    this.socket = socket;
    this.address = address;
    this.msgid = opts.firstMsgid ?? 0; // the last msgid used; the next is msgid % 0xffffffff + 1
    this.pending = new Map(); // msgid -> {resolve, reject, timer}
    this.closed = false;
    this.onNotification = null; // (method, params) for [2, method, params] messages
    this.onClose = null; // (error) once, when the connection ends for any reason
    this.hold = false; // keep the process alive while idle (a waiting subscriber, a busy sender)
    this._reader = new FrameReader(opts.maxMessageBytes);
    this._error = null;
    socket.on("data", (chunk) => this._data(chunk));
    socket.on("error", (err) => {
      this._error = err;
    });
    socket.on("close", () => this._closed());
    this._ref();
  }

  /**
   * Opens a connection to `address` ("unix:PATH" or "tcp:HOST:PORT"). Resolves to a Connection,
   * or rejects with EigenwatchError code CONNECTION when the daemon cannot be reached within
   * `timeoutMs` (a TypeError for a malformed address).
   */
  static open(address, opts = {}) {
    const where = parseAddress(address);
    const timeoutMs = opts.timeoutMs || 10000;
    return new Promise((resolve, reject) => {
      const socket = where.kind === "unix"
        ? net.createConnection({ path: where.path })
        : net.createConnection({ host: where.host, port: where.port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new EigenwatchError(CONNECTION, `connecting to ${address} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const fail = (err) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new EigenwatchError(CONNECTION, `cannot connect to ${address}: ${err.message}`, { cause: err }));
      };
      socket.once("error", fail);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeListener("error", fail);
        if (where.kind === "tcp") socket.setKeepAlive(true, 10000);
        resolve(new Connection(socket, address, opts));
      });
    });
  }

  /** The next msgid: 1, 2, ... 0xffffffff, then 1 again (0 is what framing errors carry). */
  nextMsgid() {
    this.msgid = (this.msgid % 0xffffffff) + 1;
    return this.msgid;
  }

  /**
   * Sends [0, msgid, method, params] and resolves to the reply's result; rejects with the
   * reply's EigenwatchError, with code CONNECTION if the connection ends first, or TIMEOUT
   * after opts.timeoutMs (0 or undefined: no limit; the connection stays). opts.method names
   * the request in the TIMEOUT sentence; opts.sizeHint sizes the encoder for large bins.
   * Throws (rejects) TypeError/RangeError for params msgpack cannot carry.
   */
  request(method, params, opts = {}) {
    if (this.closed) {
      return Promise.reject(new EigenwatchError(CONNECTION, `the connection to ${this.address} is closed`));
    }
    let frame;
    const msgid = this.nextMsgid();
    try {
      frame = encodeRequest(msgid, method, params, opts.sizeHint);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, timer: null };
      if (opts.timeoutMs) {
        entry.timer = setTimeout(() => {
          this.pending.delete(msgid);
          this._ref();
          reject(new EigenwatchError(TIMEOUT, `no reply to ${opts.method ?? "the request"} within ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
        entry.timer.unref();
      }
      this.pending.set(msgid, entry);
      this._ref();
      this.write(frame);
    });
  }

  /** Sends [2, method, params] (no reply). Returns write()'s answer. */
  notify(method, params, sizeHint) {
    return this.write(encodeNotification(method, params, sizeHint));
  }

  /**
   * Hands bytes to the socket. Returns false when its buffer is past its high-water mark (wait
   * for needsDrain to clear: socket 'drain'); a write on a closed connection is dropped.
   */
  write(bytes) {
    if (this.closed) return false;
    return this.socket.write(bytes);
  }

  /** True while the socket's send buffer is over its high-water mark. */
  get needsDrain() {
    return this.socket.writableNeedDrain;
  }

  /** Bytes handed to the socket and not yet sent. */
  get unsentBytes() {
    return this.socket.writableLength;
  }

  /** Closes the connection now; pending requests reject with CONNECTION. */
  close() {
    if (!this.closed) this.socket.destroy();
  }

  /** Re-evaluates whether the socket keeps the process alive (after `hold` changes). */
  updateRef() {
    this._ref();
  }

  _ref() {
    if (this.closed) return;
    if (this.pending.size > 0 || this.hold) this.socket.ref();
    else this.socket.unref();
  }

  _data(chunk) {
    let frames;
    try {
      frames = this._reader.push(chunk);
    } catch (err) {
      this._fail(new EigenwatchError(CONNECTION, `${err.message}; closing the connection to ${this.address}`));
      return;
    }
    for (const frame of frames) {
      let msg;
      try {
        msg = decode(frame);
      } catch (err) {
        this._fail(new EigenwatchError(CONNECTION, `undecodable message from ${this.address}: ${err.message}`));
        return;
      }
      this._dispatch(msg);
      if (this.closed) return;
    }
  }

  _dispatch(msg) {
    if (!Array.isArray(msg)) {
      this._fail(new EigenwatchError(CONNECTION, `unexpected message from ${this.address}`));
      return;
    }
    if (msg[0] === 1 && msg.length === 4) {
      const entry = this.pending.get(msg[1]);
      if (entry === undefined) {
        if (msg[1] === 0 && msg[2] != null) {
          // A framing error: the daemon could not trust our msgid and closes the connection.
          this._fail(EigenwatchError.fromWire(msg[2]));
        }
        return; // the reply to a request that timed out
      }
      this.pending.delete(msg[1]);
      if (entry.timer) clearTimeout(entry.timer);
      this._ref();
      if (msg[2] != null) entry.reject(EigenwatchError.fromWire(msg[2]));
      else entry.resolve(msg[3]);
      return;
    }
    if (msg[0] === 2 && msg.length === 3) {
      if (this.onNotification) this.onNotification(msg[1], msg[2]);
    }
  }

  // Rejects everything pending with `err` and ends the connection.
  _fail(err) {
    this._rejectAll(err);
    this.socket.destroy();
  }

  _rejectAll(err) {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const e of pending) {
      if (e.timer) clearTimeout(e.timer);
      e.reject(err);
    }
  }

  _closed() {
    if (this.closed) return;
    this.closed = true;
    const why = this._error
      ? `the connection to ${this.address} failed: ${this._error.message}`
      : `the daemon at ${this.address} closed the connection`;
    const err = new EigenwatchError(CONNECTION, why, this._error ? { cause: this._error } : undefined);
    this._rejectAll(err);
    if (this.onClose) this.onClose(err);
  }
}
