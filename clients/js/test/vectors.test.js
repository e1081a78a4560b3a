// proto/vectors/v1.tsv against this client: every request re-encoded by the JS encoder from its
// decoded value is the vector's bytes; the same conversation made through Client's typed methods
// puts exactly those bytes on the wire (msgids 1, 2, ... on one connection) and a fresh daemon's
// replies equal the recorded ones — byte for byte where the vector has no volatile keys, as
// tests/integration/test_vectors.py checks them, else decoded with those keys removed.
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import { after, before, test } from "node:test";

import { Client, EigenwatchError, FrameReader, decode, encode, parseAddress } from "../index.js";
import { Connection } from "../lib/connection.js";
import { Daemon, dataPath } from "../support/harness.js";

const VECTORS = dataPath("EW_VECTORS", "../../proto/vectors/v1.tsv");

function load() {
  const out = [];
  for (const line of fs.readFileSync(VECTORS, "utf8").split("\n")) {
    if (line.startsWith("#") || !line.trim()) continue;
    const [name, req, resp, vol] = line.split("\t");
    out.push({
      name,
      req: Buffer.from(req, "hex"),
      resp: Buffer.from(resp, "hex"),
      volatile: (vol ?? "").split(",").filter(Boolean),
    });
  }
  return out;
}

function strip(o, keys) {
  if (Array.isArray(o)) return o.map((v) => strip(v, keys));
  if (o && typeof o === "object" && !ArrayBuffer.isView(o)) {
    const r = {};
    for (const [k, v] of Object.entries(o)) if (!keys.includes(k)) r[k] = strip(v, keys);
    return r;
  }
  return o;
}

const hex = (u) => Buffer.from(u).toString("hex");
const vectors = load();
const framing = (v) => v.name.startsWith("framing");

test("the vector file holds the conversation", () => {
  assert.ok(vectors.length >= 20, `${vectors.length} vectors in ${VECTORS}`);
});

test("every request re-encoded from its decoded value is the vector's bytes", () => {
  for (const v of vectors) {
    if (framing(v)) {
      assert.throws(() => decode(v.req), undefined, `${v.name}: the framing vector must not decode`);
      continue;
    }
    assert.equal(hex(encode(decode(v.req))), hex(v.req), `${v.name}: re-encoded bytes differ`);
  }
});

// The typed call that makes each vector's request, from its decoded params. Every vector of the
// file must have one (a new vector without it fails here, so the typed API keeps up).
const TYPED = {
  ping: (c) => c.ping(),
  create: (c, p) => c.create(p.stream, without(p, "stream")),
  ingest: (c, p, notify) => {
    const o = { ...without(p, "stream", "data", "dtype", "shape", "rows"), notify };
    if (p.rows) return c.ingest(p.stream, p.rows, o);
    if (p.dtype === "f32") {
      const f = new Float32Array(p.data.buffer.slice(p.data.byteOffset, p.data.byteOffset + p.data.byteLength));
      return c.ingest(p.stream, f, { ...o, shape: p.shape });
    }
    return c.ingest(p.stream, { data: p.data, dtype: p.dtype, shape: p.shape }, o);
  },
  query: (c, p) => c.query(p.stream, p.metrics, without(p, "stream", "metrics")),
  info: (c, p, _n, raw) => (Array.isArray(raw) && raw.length && (typeof raw[0] !== "object" || raw[0] === null)
    ? c.call("info", raw) : c.info(p.stream, without(p, "stream"))),
  list: (c, p) => c.list(p),
  reset: (c, p) => c.reset(p.stream, without(p, "stream")),
  drop: (c, p) => c.drop(p.stream, without(p, "stream")),
  metrics: (c) => c.metrics(),
  export: (c, p) => c.export(p.stream, without(p, "stream")),
  merge: (c, p) => c.merge(p.stream, p.state, without(p, "stream", "state")),
  snapshot: (c) => c.snapshot(),
  runs: (c) => c.runs(),
};

function without(o, ...keys) {
  const r = {};
  for (const [k, v] of Object.entries(o)) if (!keys.includes(k)) r[k] = v;
  return r;
}

let daemon;
before(async () => {
  daemon = await Daemon.start();
});
after(async () => {
  await daemon.remove();
});

test("the typed methods put the vectors' bytes on the wire and the daemon answers as recorded", async () => {
  // Record what every Connection writes and what it reads, frame by frame.
  const written = [];
  const read = [];
  const write = Connection.prototype.write;
  const push = FrameReader.prototype.push;
  Connection.prototype.write = function (bytes) {
    written.push(Buffer.from(bytes));
    return write.call(this, bytes);
  };
  FrameReader.prototype.push = function (chunk) {
    const frames = push.call(this, chunk);
    read.push(...frames);
    return frames;
  };
  const c = new Client({ address: daemon.unix, timeout: 20000 });
  try {
    for (const v of vectors.filter((x) => !framing(x))) {
      const msg = decode(v.req);
      const isNote = msg[0] === 2;
      const method = isNote ? msg[1] : msg[2];
      const raw = isNote ? msg[2] : msg[3];
      const p = Array.isArray(raw) && raw[0] && typeof raw[0] === "object" ? raw[0] : {};
      written.length = 0;
      read.length = 0;
      let result;
      let error;
      const fn = TYPED[method] ?? ((cl) => cl.call(method, raw));
      try {
        result = await fn(c, p, isNote, raw);
      } catch (err) {
        error = err;
      }
      assert.deepEqual(written.map(hex), [hex(v.req)], `${v.name}: the client's bytes differ`);
      if (isNote) {
        assert.equal(v.resp.length, 0, `${v.name}: a notification has no reply`);
        assert.equal(error, undefined);
        continue;
      }
      assert.equal(read.length, 1, `${v.name}: one reply`);
      const got = decode(read[0]);
      const want = decode(v.resp);
      if (v.volatile.length === 0) {
        assert.equal(hex(read[0]), hex(v.resp), `${v.name}: reply bytes differ`);
      } else {
        assert.deepEqual(strip(got, v.volatile), strip(want, v.volatile), `${v.name}: reply differs`);
        const keys = flatKeys(got);
        for (const k of v.volatile) assert.ok(keys.has(k), `${v.name}: the volatile key ${k} is missing`);
      }
      // The typed method's answer is the reply's: its result, or its error as EigenwatchError.
      if (want[2] !== null) {
        assert.ok(error instanceof EigenwatchError, `${v.name}: expected an EigenwatchError, got ${error}`);
        assert.equal(error.code, want[2].code);
        assert.equal(error.message, want[2].message);
      } else {
        assert.equal(error, undefined, `${v.name}: ${error}`);
        assert.ok(result !== undefined);
      }
    }
  } finally {
    Connection.prototype.write = write;
    FrameReader.prototype.push = push;
    c.close();
  }
});

// Every map key anywhere in a decoded message.
function flatKeys(o, acc = new Set()) {
  if (Array.isArray(o)) for (const v of o) flatKeys(v, acc);
  else if (o && typeof o === "object" && !ArrayBuffer.isView(o)) {
    for (const [k, v] of Object.entries(o)) {
      acc.add(k);
      flatKeys(v, acc);
    }
  }
  return acc;
}

test("a framing error is answered with msgid 0 and the connection is closed", async () => {
  for (const v of vectors.filter(framing)) {
    const where = parseAddress(daemon.unix);
    const sock = net.createConnection({ path: where.path });
    const reader = new FrameReader();
    const frames = [];
    const closed = new Promise((resolve) => {
      sock.on("data", (d) => frames.push(...reader.push(d)));
      sock.on("close", resolve);
      sock.on("error", () => {});
    });
    sock.write(v.req);
    await closed;
    assert.equal(frames.length, 1, `${v.name}: one reply, then the close`);
    assert.deepEqual(decode(frames[0]), decode(v.resp), `${v.name}: reply differs`);
  }
});
