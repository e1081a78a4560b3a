// Typed arrays round-trip: rows sent as Float32Array, Float64Array and raw bf16 words reach the
// daemon as the values they hold. The check is `trace`: tr C = Σ‖x − x̄‖² / n (docs/METRICS.md:
// C = M2/W), computed here in f64 from the same values; the daemon sums in f64 too, so the two
// agree to rounding — the tolerance is 1e-10 relative. Then `export` of a stream merged into a
// second one gives the same count and the same trace.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client } from "../index.js";
import { Daemon } from "../support/harness.js";

const REL_TOL = 1e-10;

// A small deterministic generator (xorshift32), values in [-4, 4).
function rows(n, d, seed) {
  let s = seed >>> 0 || 1;
  const out = new Float64Array(n * d);
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 2 ** 32) * 8 - 4;
  }
  return out;
}

// tr C of rows (row-major, width d) in f64: the sum of squares of the centred rows over n.
function traceOf(values, d) {
  const n = values.length / d;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += values[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) ss += (values[i * d + j] - mean[j]) ** 2;
  return ss / n;
}

// bf16 words of f32 values (round to nearest even), and the values they stand for.
function toBf16(values) {
  const f = new Float32Array(values);
  const u = new Uint32Array(f.buffer);
  const words = new Uint16Array(f.length);
  const back = new Float32Array(f.length);
  const bu = new Uint32Array(back.buffer);
  for (let i = 0; i < f.length; i++) {
    words[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
    bu[i] = words[i] << 16;
  }
  return { words, values: Float64Array.from(back) };
}

function close(got, want, what) {
  assert.ok(Math.abs(got - want) <= REL_TOL * Math.abs(want), `${what}: daemon ${got}, JS ${want}`);
}

let daemon;
let client;
before(async () => {
  daemon = await Daemon.start();
  client = new Client({ address: daemon.tcp });
});
after(async () => {
  client.close();
  await daemon.remove();
});

const D = 6;
const BATCHES = [40, 1, 25]; // rows per ingest: several batches merge in the daemon

test("Float32Array rows: query trace equals the JS trace of the same f32 values", async () => {
  const sent = [];
  let count = 0;
  for (const [k, n] of BATCHES.entries()) {
    const f = new Float32Array(rows(n, D, 11 + k));
    const r = await client.ingest("f32", f, { dim: D });
    count += n;
    assert.deepEqual([r.accepted, r.count], [n, count]);
    sent.push(...f);
  }
  const q = await client.query("f32", ["trace"]);
  assert.equal(q.count, count);
  assert.equal(q.dim, D);
  close(q.metrics.trace, traceOf(Float64Array.from(sent), D), "f32 trace");
});

test("Float64Array rows, with shape, and a notification batch that a later query sees", async () => {
  const a = rows(30, D, 5);
  const b = rows(12, D, 6);
  await client.ingest("f64", a, { shape: [30, D] });
  await client.ingest("f64", b, { dim: D, notify: true });
  const q = await client.query("f64", "trace");
  assert.equal(q.count, 42);
  const all = new Float64Array(42 * D);
  all.set(a);
  all.set(b, a.length);
  close(q.metrics.trace, traceOf(all, D), "f64 trace");
});

test("bf16 words are sent raw (dtype bf16) and stand for their exact values", async () => {
  const { words, values } = toBf16(rows(50, D, 9));
  const r = await client.ingest("bf16", { bf16: words, shape: [50, D] });
  assert.equal(r.count, 50);
  const q = await client.query("bf16", "trace");
  close(q.metrics.trace, traceOf(values, D), "bf16 trace");
  // the rounding is real: the f32 values' trace differs from the bf16 values'
  assert.notEqual(traceOf(values, D), traceOf(Float64Array.from(new Float32Array(rows(50, D, 9))), D));
});

test("export's bytes merged into a second stream give the same count and trace", async () => {
  const state = await client.export("f32");
  assert.ok(state instanceof Uint8Array && state.length > 0);
  const src = await client.query("f32", "trace");
  const m = await client.merge("f32-copy", state);
  assert.equal(m.created, true);
  assert.equal(m.merged, src.count);
  assert.equal(m.count, src.count);
  const q = await client.query("f32-copy", "trace");
  assert.equal(q.count, src.count);
  close(q.metrics.trace, src.metrics.trace, "merged trace");
  // and into a stream in another run, through the run option
  const r = await client.merge("f32-copy", state, { run: "other" });
  assert.equal(r.count, src.count);
  assert.equal((await client.info("f32-copy", { run: "other" })).count, src.count);
});

test("the rows form (arrays of numbers) and labels travel as PROTOCOL.md says", async () => {
  const r = await client.ingest("rowsform", [[1, 0], [0, 2], [3, 1]]);
  assert.equal(r.count, 3);
  close((await client.query("rowsform", "trace")).metrics.trace, traceOf(Float64Array.from([1, 0, 0, 2, 3, 1]), 2), "rows trace");
  const lab = await client.ingest("labelled", new Float32Array(rows(8, 3, 2)), { dim: 3, labels: new Uint32Array([0, 1, 0, 1, 2, 2, 0, 1]) });
  assert.equal(lab.count, 8);
  await assert.rejects(client.ingest("labelled", new Float32Array(6), { dim: 3, labels: [1] }), RangeError);
});

test("history returns numeric arrays, one entry per evaluated step", async () => {
  await client.create("hist", { dim: D, eval: [{ metric: "trace" }] });
  for (let step = 0; step < 4; step++) {
    await client.ingest("hist", new Float32Array(rows(8, D, 100 + step)), { dim: D, step, end_step: true });
  }
  let series;
  for (let i = 0; i < 200; i++) {
    series = await client.history({ stream: "hist", metrics: "trace" });
    if (series.length && series[0].step.length === 4) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(series.length, 1);
  const s = series[0];
  assert.equal(s.metric, "trace");
  assert.ok(s.step instanceof Float64Array && s.value instanceof Float64Array && s.time instanceof Float64Array);
  assert.deepEqual([...s.step], [0, 1, 2, 3]);
  assert.deepEqual([...s.rows], [8, 8, 8, 8]);
  assert.ok(s.value.every((v) => Number.isFinite(v) && v > 0));
  assert.deepEqual(s.partial, [false, false, false, false]);
});
