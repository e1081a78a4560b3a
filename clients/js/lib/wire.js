// The bytes on the wire (proto/PROTOCOL.md, "Messages" and "Vectors"): addresses, the msgpack
// encoding of requests and notifications, the framing of the daemon's messages out of a byte
// stream, and rows as ingest fields. Knows nothing of sockets or of what a method means.
//
// Encoding follows what the vectors (proto/vectors/v1.tsv) were made with, Python's
// msgpack.packb(use_bin_type=True): map keys in insertion order, strings as str, Uint8Array (any
// ArrayBufferView) as bin, integers as the smallest msgpack int (unsigned formats for >= 0),
// other numbers as float64. JavaScript cannot tell 1.0 from 1: an integral number is sent as an
// integer, which the daemon takes wherever a number is expected (PROTOCOL.md, "Numbers").
// BigInt is sent as the smallest int that holds it (as Python does for its ints); a Map is sent
// as a map in its own key order (a plain object puts integer-like keys such as "1" first).
import { Decoder, Encoder } from "@msgpack/msgpack";

/** The daemon's default TCP listener (loopback only). */
export const DEFAULT_TCP = "tcp:127.0.0.1:7700";

/** True on little-endian hosts: typed arrays are then already the wire's byte order. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

/**
 * The address a client uses when none is given: $EIGENWATCH_ADDRESS (its first entry when it
 * lists several, comma-separated), else tcp:127.0.0.1:7700.
 */
export function defaultAddress() {
  const env = process.env.EIGENWATCH_ADDRESS;
  if (env) {
    const first = env.split(",").map((s) => s.trim()).find((s) => s);
    if (first) return first;
  }
  return DEFAULT_TCP;
}

/**
 * Parses "unix:PATH" or "tcp:HOST:PORT" (HOST numeric IPv4, a name, or [IPv6]) into
 * {kind: "unix", path} or {kind: "tcp", host, port}. Throws TypeError for anything else.
 */
export function parseAddress(address) {
  if (typeof address !== "string") throw new TypeError(`address must be a string, not ${typeof address}`);
  if (address.startsWith("unix:")) {
    const path = address.slice(5);
    if (!path) throw new TypeError(`bad address '${address}': want unix:PATH`);
    return { kind: "unix", path };
  }
  if (address.startsWith("tcp:")) {
    const rest = address.slice(4);
    const colon = rest.lastIndexOf(":");
    let host = colon < 0 ? "" : rest.slice(0, colon);
    const port = colon < 0 ? "" : rest.slice(colon + 1);
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    if (!host || !/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) {
      throw new TypeError(`bad address '${address}': want tcp:HOST:PORT`);
    }
    return { kind: "tcp", host, port: Number(port) };
  }
  throw new TypeError(`bad address '${address}': want unix:PATH or tcp:HOST:PORT`);
}

// @msgpack/msgpack's Encoder with two additions it lacks (pinned version: package-lock.json):
// BigInt as the smallest integer format (its own useBigInt64 writes every BigInt in 8 bytes and
// turns safe Numbers >= 2^32 into floats), and Map as a map in its key order (it would encode a
// Map as an empty map).
class WireEncoder extends Encoder {
  doEncode(object, depth) {
    if (typeof object === "bigint") {
      if (object >= BigInt(Number.MIN_SAFE_INTEGER) && object <= BigInt(Number.MAX_SAFE_INTEGER)) {
        this.encodeNumber(Number(object));
      } else if (object >= 0n && object <= U64_MAX) {
        this.writeU8(0xcf);
        this.writeBigUint64(object);
      } else if (object < 0n && object >= I64_MIN) {
        this.writeU8(0xd3);
        this.writeBigInt64(object);
      } else {
        throw new RangeError(`integer ${object} does not fit in 64 bits`);
      }
      return;
    }
    if (object instanceof Map) {
      const entries = [...object.entries()].filter(([, v]) => v !== undefined);
      const n = entries.length;
      if (n < 16) this.writeU8(0x80 + n);
      else if (n < 0x10000) {
        this.writeU8(0xde);
        this.writeU16(n);
      } else {
        this.writeU8(0xdf);
        this.writeU32(n);
      }
      for (const [k, v] of entries) {
        if (typeof k !== "string") throw new TypeError(`map keys must be strings, not ${typeof k}`);
        this.encodeString(k);
        this.doEncode(v, depth + 1);
      }
      return;
    }
    super.doEncode(object, depth);
  }
}

/**
 * Encodes one value as msgpack (the rules at the top of this file). `sizeHint`: the bytes it is
 * expected to take (sizes the buffer once for large bins). Returns a new Uint8Array; throws
 * TypeError/RangeError for a value msgpack cannot carry (a function, a symbol, a BigInt
 * beyond 64 bits). Fields whose value is undefined are left out.
 */
export function encode(value, sizeHint = 0) {
  const enc = new WireEncoder({ ignoreUndefined: true, initialBufferSize: Math.max(256, sizeHint + 256) });
  return enc.encodeSharedRef(value);
}

/**
 * The params array of a message: undefined, null or an object without keys → [] (as the Python
 * client sends for no fields); an object or Map → [it]; an array is sent as it is (a raw escape
 * hatch: the daemon answers anything but [] or [{...}] with BAD_REQUEST).
 */
export function paramsArray(params) {
  if (params === undefined || params === null) return [];
  if (Array.isArray(params)) return params;
  if (params instanceof Map) return params.size ? [params] : [];
  if (typeof params === "object") {
    for (const k in params) if (params[k] !== undefined) return [params];
    return [];
  }
  throw new TypeError(`params must be an object, not ${typeof params}`);
}

/** The bytes of the request [0, msgid, method, params] (params as paramsArray gives them). */
export function encodeRequest(msgid, method, params, sizeHint = 0) {
  return encode([0, msgid >>> 0, method, paramsArray(params)], sizeHint);
}

/** The bytes of the notification [2, method, params] (params as paramsArray gives them). */
export function encodeNotification(method, params, sizeHint = 0) {
  return encode([2, method, paramsArray(params)], sizeHint);
}

const decoder = new Decoder();

/**
 * Decodes one whole msgpack value (bin as Uint8Array views into `bytes`, 64-bit integers as
 * Numbers: exact up to 2^53). Throws on malformed or trailing bytes.
 */
export function decode(bytes) {
  return decoder.decode(bytes);
}

/**
 * Cuts a byte stream into whole msgpack messages without decoding them: the daemon's messages
 * come back to back with no length prefix. push() takes the next chunk and returns the messages
 * it completed, each a Uint8Array of its own (a copy). The skim resumes where it stopped, so a
 * large message arriving in many chunks costs one pass. A message over `maxMessageBytes` or the
 * byte 0xc1 throws (the caller ends the connection).
 */
export class FrameReader {
  constructor(maxMessageBytes = 1 << 30) {
    this.max = maxMessageBytes;
    this.buf = new Uint8Array(1 << 16);
    this.start = 0; // the current message's first byte
    this.end = 0; // bytes held
    this.scan = 0; // where the skim of the current message stopped
    this.left = 1; // values still to skim in the current message
  }

  push(chunk) {
    this._append(chunk);
    const out = [];
    for (;;) {
      const at = this._skim();
      if (at < 0) break;
      out.push(this.buf.slice(this.start, at));
      this.start = this.scan = at;
      this.left = 1;
    }
    if (this.start === this.end) this.start = this.end = this.scan = 0;
    return out;
  }

  /** Bytes held that are not yet a whole message. */
  get pending() {
    return this.end - this.start;
  }

  _append(chunk) {
    if (this.end + chunk.length > this.buf.length) {
      const held = this.end - this.start;
      const need = held + chunk.length;
      if (need <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const grown = new Uint8Array(Math.max(need, this.buf.length * 2));
        grown.set(this.buf.subarray(this.start, this.end));
        this.buf = grown;
      }
      this.scan -= this.start;
      this.start = 0;
      this.end = held;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  // The end of the current message, or -1 when it is not all here yet.
  _skim() {
    const b8 = this.buf;
    const end = this.end;
    let at = this.scan;
    while (this.left > 0) {
      if (at >= end) break;
      const b = b8[at];
      let h = 1; // header bytes
      let len = 0; // payload bytes
      let kids = 0; // values inside
      if (b <= 0x7f || b >= 0xe0) h = 1;
      else if (b <= 0x8f) kids = 2 * (b & 0x0f);
      else if (b <= 0x9f) kids = b & 0x0f;
      else if (b <= 0xbf) len = b & 0x1f;
      else {
        const sizes = HEADER[b - 0xc0];
        if (sizes === undefined) throw new Error(`malformed message from the daemon: byte 0x${b.toString(16)}`);
        h = sizes[0];
        if (at + h > end) break;
        const n = sizes[2] === 1 ? b8[at + sizes[1]]
          : sizes[2] === 2 ? (b8[at + sizes[1]] << 8) | b8[at + sizes[1] + 1]
            : sizes[2] === 4 ? ((b8[at + sizes[1]] << 24) >>> 0) + (b8[at + sizes[1] + 1] << 16) + (b8[at + sizes[1] + 2] << 8) + b8[at + sizes[1] + 3]
              : 0;
        if (sizes[3] === "len") len = n;
        else if (sizes[3] === "arr") kids = n;
        else if (sizes[3] === "map") kids = 2 * n;
      }
      at += h + len;
      this.left += kids - 1;
      if (at - this.start > this.max) {
        throw new Error(`a message from the daemon is over ${this.max} bytes`);
      }
    }
    this.scan = at;
    if (this.left > 0 || at > end) return -1;
    return at;
  }
}

// For each byte 0xc0..0xdf: [header bytes, offset of its count, count bytes, what it counts].
const HEADER = [
  [1, 0, 0], undefined, [1, 0, 0], [1, 0, 0], // nil, (never used), false, true
  [2, 1, 1, "len"], [3, 1, 2, "len"], [5, 1, 4, "len"], // bin 8/16/32
  [3, 1, 1, "len"], [4, 1, 2, "len"], [6, 1, 4, "len"], // ext 8/16/32 (+ type byte)
  [5, 0, 0], [9, 0, 0], // float 32/64
  [2, 0, 0], [3, 0, 0], [5, 0, 0], [9, 0, 0], // uint 8..64
  [2, 0, 0], [3, 0, 0], [5, 0, 0], [9, 0, 0], // int 8..64
  [3, 0, 0], [4, 0, 0], [6, 0, 0], [10, 0, 0], [18, 0, 0], // fixext 1..16
  [2, 1, 1, "len"], [3, 1, 2, "len"], [5, 1, 4, "len"], // str 8/16/32
  [3, 1, 2, "arr"], [5, 1, 4, "arr"], // array 16/32
  [3, 1, 2, "map"], [5, 1, 4, "map"], // map 16/32
];

// ---- rows ----

const DTYPES = new Map([[Float32Array, "f32"], [Float64Array, "f64"]]);

/** `ta`'s bytes in little-endian order: a view on little-endian hosts, else a swapped copy. */
export function littleEndianBytes(ta) {
  const u8 = new Uint8Array(ta.buffer, ta.byteOffset, ta.byteLength);
  const w = ta.BYTES_PER_ELEMENT;
  if (LITTLE_ENDIAN || w === 1) return u8;
  const out = new Uint8Array(u8.length);
  for (let i = 0; i < u8.length; i += w) for (let j = 0; j < w; j++) out[i + j] = u8[i + w - 1 - j];
  return out;
}

function isInt(x) {
  return Number.isSafeInteger(x) && x >= 0;
}

// [n, d] of `count` values: from shape, else dim, else one row of all of them.
function shapeFor(count, shape, dim) {
  if (shape !== undefined && shape !== null) {
    if (!Array.isArray(shape) || shape.length !== 2 || !isInt(shape[0]) || !isInt(shape[1])) {
      throw new TypeError("shape must be [n, d] (two non-negative integers)");
    }
    if (shape[0] * shape[1] !== count) {
      throw new RangeError(`shape [${shape}] needs ${shape[0] * shape[1]} values, the rows hold ${count}`);
    }
    return [shape[0], shape[1]];
  }
  if (dim !== undefined && dim !== null) {
    if (!isInt(dim) || dim < 1) throw new TypeError("dim must be a positive integer");
    if (count % dim !== 0) throw new RangeError(`${count} values are not whole rows of dim ${dim}`);
    return [count / dim, dim];
  }
  if (count === 0) throw new RangeError("no values: give dim or shape to send zero rows");
  return [1, count];
}

/**
 * The ingest fields of a batch of rows, and how many rows it holds: {fields, rows}.
 * rows is one of
 *   Float32Array / Float64Array        → {data, dtype: "f32"/"f64", shape: [n, d]}
 *   another numeric typed array, or a flat array of numbers → converted to f64
 *   {bf16: Uint16Array, shape?}        → dtype "bf16", the raw 16-bit words (no float round trip)
 *   {f16: Uint16Array, shape?}         → dtype "f16", the raw 16-bit words
 *   {data, dtype, shape}               → sent as given (data: bytes, already little-endian)
 *   an array of arrays of numbers      → {rows: [[...], ...]} (the rows form; ints stay ints)
 * The shape is the object's `shape`, else opts.shape, else opts.dim (n = values / d), else one
 * row. Throws TypeError/RangeError for anything else or a shape that does not fit.
 */
export function encodeRows(rows, opts = {}) {
  if (rows === null || rows === undefined) throw new TypeError("rows are required");
  if (ArrayBuffer.isView(rows) && !(rows instanceof DataView)) {
    let ta = rows;
    let dtype = DTYPES.get(ta.constructor);
    if (dtype === undefined) {
      if (ta instanceof BigInt64Array || ta instanceof BigUint64Array) ta = Float64Array.from(ta, Number);
      else ta = Float64Array.from(ta);
      dtype = "f64";
    }
    const shape = shapeFor(ta.length, opts.shape, opts.dim);
    return { fields: { data: littleEndianBytes(ta), dtype, shape }, rows: shape[0] };
  }
  if (Array.isArray(rows)) {
    if (rows.length > 0 && (Array.isArray(rows[0]) || ArrayBuffer.isView(rows[0]))) {
      const out = rows.map((r) => {
        if (!Array.isArray(r) && !ArrayBuffer.isView(r)) throw new TypeError("every row must be an array of numbers");
        return Array.from(r);
      });
      return { fields: { rows: out }, rows: out.length };
    }
    return encodeRows(Float64Array.from(rows), opts);
  }
  if (typeof rows === "object") {
    for (const dtype of ["bf16", "f16"]) {
      if (rows[dtype] !== undefined) {
        const words = rows[dtype];
        if (!(words instanceof Uint16Array)) throw new TypeError(`${dtype} rows must be a Uint16Array of raw words`);
        const shape = shapeFor(words.length, rows.shape ?? opts.shape, opts.dim);
        return { fields: { data: littleEndianBytes(words), dtype, shape }, rows: shape[0] };
      }
    }
    if (rows.data !== undefined) {
      if (!ArrayBuffer.isView(rows.data)) throw new TypeError("data must be bytes (a Uint8Array or typed array)");
      if (typeof rows.dtype !== "string") throw new TypeError("data needs a dtype string");
      const data = new Uint8Array(rows.data.buffer, rows.data.byteOffset, rows.data.byteLength);
      const shape = rows.shape ?? opts.shape;
      if (!Array.isArray(shape) || shape.length !== 2) throw new TypeError("data needs shape [n, d]");
      return { fields: { data, dtype: rows.dtype, shape: [shape[0], shape[1]] }, rows: Number(shape[0]) || 0 };
    }
  }
  throw new TypeError("rows must be a Float32Array, Float64Array, {bf16, shape}, {f16, shape}, {data, dtype, shape} or an array of rows");
}

/** `labels` (Uint32Array or integers in [0, 2^32)) as ingest's `labels` bin: u32 little-endian. */
export function encodeLabels(labels) {
  let u32 = labels;
  if (!(labels instanceof Uint32Array)) {
    u32 = new Uint32Array(labels.length);
    for (let i = 0; i < labels.length; i++) {
      const v = Number(labels[i]);
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError("labels must be integers in [0, 2^32)");
      u32[i] = v;
    }
  }
  return littleEndianBytes(u32);
}
