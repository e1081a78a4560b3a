// The encoding rules of lib/wire.js, without a daemon: what @msgpack/msgpack does with numbers,
// BigInt, Map and bytes once wrapped, how rows become ingest fields, how a byte stream is cut
// into messages, and how msgids wrap.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FrameReader, decode, encode, encodeNotification, encodeRequest, encodeRows, parseAddress, parseAddresses } from "../index.js";
import { Connection } from "../lib/connection.js";

const hex = (u) => Buffer.from(u).toString("hex");

test("integers take the smallest msgpack int, unsigned formats for non-negative ones", () => {
  const cases = [[0, "00"], [127, "7f"], [128, "cc80"], [255, "ccff"], [256, "cd0100"], [65536, "ce00010000"],
    [2 ** 32, "cf0000000100000000"], [-1, "ff"], [-32, "e0"], [-33, "d0df"], [-129, "d1ff7f"],
    [-32769, "d2ffff7fff"], [-(2 ** 31) - 1, "d3ffffffff7fffffff"]];
  for (const [v, want] of cases) assert.equal(hex(encode(v)), want, `${v}`);
});

test("non-integral numbers are float64; an integral one (1.0 is 1 in JavaScript) is an int", () => {
  assert.equal(hex(encode(0.5)), "cb3fe0000000000000");
  assert.equal(hex(encode(1.0)), "01");
  assert.equal(hex(encode(NaN)).slice(0, 2), "cb");
  assert.equal(hex(encode(2 ** 60)), "cb43b0000000000000", "beyond 2^53 a Number is a float");
});

test("BigInt is the smallest int that holds it, up to 64 bits", () => {
  assert.equal(hex(encode(5n)), "05");
  assert.equal(hex(encode(2n ** 40n)), "cf0000010000000000");
  assert.equal(hex(encode(2n ** 64n - 1n)), "cfffffffffffffffff");
  assert.equal(hex(encode(-(2n ** 63n))), "d38000000000000000");
  assert.throws(() => encode(2n ** 64n), RangeError);
});

test("strings are str (str8 from 32 bytes), bytes are bin, Map keeps its key order", () => {
  assert.equal(hex(encode("a".repeat(31))).slice(0, 2), "bf");
  assert.equal(hex(encode("a".repeat(32))).slice(0, 4), "d920");
  assert.equal(hex(encode(new Uint8Array([1, 2]))), "c4020102");
  assert.equal(hex(encode(new Map([["b", 1], ["1", 2]]))), "82a16201a13102");
  assert.equal(hex(encode({ a: 1, skip: undefined })), "81a16101", "undefined fields are left out");
});

test("requests and notifications: params [] for none, [map] for fields, an array as it is", () => {
  assert.equal(hex(encodeRequest(1, "ping")), "940001a470696e6790");
  assert.equal(hex(encodeRequest(1, "list", {})), "940001a46c69737490");
  assert.equal(hex(encodeRequest(2, "info", { stream: "v" })), "940002a4696e666f9181a673747265616da176");
  assert.equal(hex(encodeRequest(18, "info", ["v"])), "940012a4696e666f91a176");
  assert.equal(hex(encodeNotification("ingest", { stream: "v" })), "9302a6696e676573749181a673747265616da176");
});

test("msgids go 1, 2, ... 0xffffffff and then 1 again, never 0", () => {
  const c = Object.create(Connection.prototype);
  c.msgid = 0;
  assert.equal(c.nextMsgid(), 1);
  c.msgid = 0xfffffffe;
  assert.equal(c.nextMsgid(), 0xffffffff);
  assert.equal(c.nextMsgid(), 1);
});

test("typed arrays become bin rows of their dtype; shape from shape, dim, or one row", () => {
  const f = new Float32Array([1, 2, 3, 4, 5, 6]);
  let r = encodeRows(f, { dim: 3 });
  assert.deepEqual(r.fields.shape, [2, 3]);
  assert.equal(r.fields.dtype, "f32");
  assert.equal(r.rows, 2);
  assert.equal(hex(r.fields.data), hex(new Uint8Array(f.buffer)));
  assert.deepEqual(encodeRows(new Float64Array(4)).fields.shape, [1, 4]);
  assert.equal(encodeRows(new Float64Array(4), { shape: [2, 2] }).fields.dtype, "f64");
  assert.equal(encodeRows(new Int32Array([1, 2]), { dim: 2 }).fields.dtype, "f64", "other numbers are widened to f64");
  r = encodeRows({ bf16: new Uint16Array([0x3f80, 0x4000]), shape: [1, 2] });
  assert.equal(r.fields.dtype, "bf16");
  assert.equal(hex(r.fields.data), "803f0040", "bf16 words little-endian, as they are");
  assert.deepEqual(encodeRows([[1, 0], [0, 2]]).fields, { rows: [[1, 0], [0, 2]] });
  const sub = new Float32Array([9, 9, 1, 2]).subarray(2);
  assert.equal(hex(encodeRows(sub).fields.data), hex(new Uint8Array(new Float32Array([1, 2]).buffer)), "a view sends only its own bytes");
  assert.throws(() => encodeRows(f, { dim: 4 }), RangeError);
  assert.throws(() => encodeRows(f, { shape: [3, 3] }), RangeError);
  assert.throws(() => encodeRows("nope"), TypeError);
});

test("FrameReader cuts back-to-back messages out of chunks of any size", () => {
  const small = [[1, 1, null, { state: new Uint8Array(300), x: [1.5, "s".repeat(300)] }], [2, "metrics", [{ a: 1 }]],
    [1, 2, { code: "X", message: "y" }, null], [1, 3, null, new Array(40).fill(7)]];
  const large = [...small, [1, 4, null, { state: new Uint8Array(70000) }], [1, 5, null, new Array(70000).fill(0.5)]];
  for (const [msgs, sizes] of [[small, [1, 2, 3, 7]], [large, [4096, 65536, 1 << 20]]]) {
    const bytes = Buffer.concat(msgs.map((m) => encode(m)));
    for (const size of sizes) {
      const fr = new FrameReader();
      const got = [];
      for (let i = 0; i < bytes.length; i += size) got.push(...fr.push(bytes.subarray(i, i + size)));
      assert.equal(got.length, msgs.length, `chunks of ${size}`);
      assert.deepEqual(got.map((g) => decode(g)), msgs.map((m) => decode(encode(m))));
      assert.equal(fr.pending, 0);
    }
  }
  assert.throws(() => new FrameReader().push(Buffer.from("940001c1", "hex")), /0xc1/);
  assert.throws(() => new FrameReader(100).push(encode([1, 1, null, new Uint8Array(200)])), /over 100 bytes/);
});

test("addresses: unix:PATH and tcp:HOST:PORT (IPv6 in brackets); anything else is a TypeError", () => {
  assert.deepEqual(parseAddress("unix:/run/x.sock"), { kind: "unix", path: "/run/x.sock" });
  assert.deepEqual(parseAddress("tcp:127.0.0.1:7700"), { kind: "tcp", host: "127.0.0.1", port: 7700 });
  assert.deepEqual(parseAddress("tcp:[::1]:7700"), { kind: "tcp", host: "::1", port: 7700 });
  for (const bad of ["tcp:1.2.3.4", "tcp::80", "http://x", "unix:", "tcp:h:99999"]) assert.throws(() => parseAddress(bad), TypeError, bad);
  assert.deepEqual(parseAddresses("a, b"), ["a", "b"]);
});

test("index.d.ts declares every export of index.js", async () => {
  const fs = await import("node:fs");
  const mod = await import("../index.js");
  const dts = fs.readFileSync(new URL("../index.d.ts", import.meta.url), "utf8");
  const declared = new Set([...dts.matchAll(/^export (?:const|function|class|type|interface) (\w+)/gm)].map((m) => m[1]));
  for (const name of Object.keys(mod)) assert.ok(declared.has(name), `${name} is not in index.d.ts`);
});

test("the default address is $EIGENWATCH_ADDRESS (its first entry), else tcp:127.0.0.1:7700", async () => {
  const { defaultAddress } = await import("../index.js");
  const saved = process.env.EIGENWATCH_ADDRESS;
  try {
    delete process.env.EIGENWATCH_ADDRESS;
    assert.equal(defaultAddress(), "tcp:127.0.0.1:7700");
    process.env.EIGENWATCH_ADDRESS = " unix:/run/a.sock , tcp:10.0.0.2:7700";
    assert.equal(defaultAddress(), "unix:/run/a.sock");
  } finally {
    if (saved === undefined) delete process.env.EIGENWATCH_ADDRESS;
    else process.env.EIGENWATCH_ADDRESS = saved;
  }
});
