// Sender: declared streams are created as asked before their first rows; every batch carries the
// producer and its seq; a full queue drops (false, counted) and the next batch reports the drops
// to the daemon (/metrics); close() ends the last step and marks the streams ended. With two
// daemons each (run, stream) goes to its place() owner, and a daemon that is down loses only its
// own streams' rows while the other's keep arriving.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client, Sender, place } from "../index.js";
import { Daemon, until } from "../support/harness.js";

let a;
let b;
before(async () => {
  [a, b] = await Promise.all([Daemon.start({ http: "127.0.0.1:0" }), Daemon.start()]);
});
after(async () => {
  await a.remove();
  await b.remove();
});

const rows = (n, d, v = 1) => Float32Array.from({ length: n * d }, (_, i) => v + Math.cos(i));

test("declare() creates the stream with its options before the first rows; batches carry producer and seq", async () => {
  const c = new Client({ address: a.unix });
  const s = new Sender({ address: a.unix, producer: "trainer-7" });
  try {
    s.declare("decl", { window: 16, eval: [{ metric: "trace" }] });
    for (let i = 0; i < 3; i++) assert.equal(s.send("decl", rows(5, 3, i), { dim: 3 }), true);
    assert.equal(await s.flush(5000), true);
    const info = await c.info("decl");
    assert.equal(info.count, 15);
    assert.equal(info.config.window, 16, "created as declared, not with the defaults");
    assert.equal(info.eval.given, true);
    assert.equal(info.steps.producers, 1, "the daemon remembers the producer's seq");
    // the same batch again under the same (producer, seq) is a duplicate: it was seq 3
    const r = await c.ingest("decl", rows(5, 3), { dim: 3, producer: "trainer-7", seq: 3 });
    assert.equal(r.duplicate, true);
    assert.equal(r.count, 15);
  } finally {
    await s.close();
    c.close();
  }
});

test("a full queue drops the batch (false, counted) and the next batch reports the drops", async () => {
  const c = new Client({ address: a.unix });
  const s = new Sender({ address: a.unix, maxQueueBytes: 4096 });
  try {
    assert.equal(s.send("q", rows(1000, 4), { dim: 4 }), false, "16 kB does not fit in 4 kB");
    assert.deepEqual([s.stats.droppedRows, s.stats.droppedBatches], [1000, 1]);
    assert.equal(s.send("q", rows(2, 4), { dim: 4 }), true);
    assert.equal(await s.flush(5000), true);
    assert.equal((await c.info("q")).count, 2);
    const text = await (await fetch(`${a.http}metrics`)).text();
    assert.match(text, /eigenwatch_sender_dropped_rows_total\{run="default",stream="q"\} 1000\b/);
    assert.match(text, /eigenwatch_sender_dropped_batches_total\{run="default",stream="q"\} 1\b/);
  } finally {
    await s.close();
    c.close();
  }
});

test("rows that cannot be encoded are refused (false, rejected), never thrown", () => {
  const s = new Sender({ address: a.unix });
  assert.equal(s.send("bad", new Float32Array(5), { dim: 2 }), false);
  assert.equal(s.send("bad", "not rows"), false);
  assert.equal(s.send("bad", null), false);
  assert.equal(s.stats.rejectedBatches, 3);
  assert.equal(s.stats.droppedBatches, 0);
  return s.close();
});

test("close() ends the last step and marks each stream ended; later sends are dropped", async () => {
  // 20 streams, each created by its first batch: close()'s markers must wait for those batches
  // (close() sends its markers as requests; an end_step notification right behind the creating
  // ingest waits for it too: the test below).
  const c = new Client({ address: a.unix });
  const s = new Sender({ address: a.unix });
  const names = Array.from({ length: 20 }, (_, i) => `steps.${i}`);
  for (const st of names) for (let step = 0; step < 3; step++) assert.equal(s.send(st, rows(4, 2), { dim: 2, step }), true);
  assert.equal(await s.close(5000), true);
  for (const st of names) {
    const info = await c.info(st);
    assert.equal(info.count, 12, `${st}: the last step completed at close, not after step_timeout`);
    assert.equal(info.steps.last_step, 2);
    assert.equal(info.steps.ended, true);
  }
  assert.equal(s.send("steps.0", rows(1, 2), { dim: 2, step: 3 }), false);
  assert.equal(s.stats.droppedRows, 1);
  c.close();
});

test("an end_step notification right after the ingest notification that creates its stream takes effect", async () => {
  const c = new Client({ address: a.unix });
  try {
    let lost = 0;
    for (let i = 0; i < 20; i++) {
      const st = `marker.${i}`;
      await c.ingest(st, rows(4, 2), { dim: 2, step: 0, notify: true });
      await c.notify("ingest", { stream: st, step: 0, end_step: true });
      if ((await c.query(st, "trace")).count !== 4) lost++;
    }
    assert.equal(lost, 0, `${lost} of 20 end_step notifications had no effect`);
  } finally {
    c.close();
  }
});

test("two daemons: each stream goes to its place() owner; one down loses only its own streams' rows", async () => {
  const addrs = [a.tcp, b.tcp];
  const ca = new Client({ address: a.tcp });
  const cb = new Client({ address: b.tcp });
  const s = new Sender({ addresses: `${a.tcp}, ${b.tcp}` });
  const streams = Array.from({ length: 16 }, (_, i) => `multi.${i}`);
  const onB = streams.filter((st) => place("exp", st, addrs) === b.tcp);
  const onA = streams.filter((st) => !onB.includes(st));
  assert.ok(onA.length > 0 && onB.length > 0, "both daemons own some of the streams");
  try {
    for (const st of streams) assert.equal(s.send(st, rows(2, 3), { dim: 3, run: "exp" }), true);
    assert.equal(await s.flush(5000), true);
    const names = async (c) => (await c.list({ run: "exp" })).map((x) => x.stream).sort();
    assert.deepEqual(await names(ca), [...onA].sort());
    assert.deepEqual(await names(cb), [...onB].sort());
    for (const st of streams) assert.equal(s.ownerOf(st, { run: "exp" }), place("exp", st, addrs));

    await b.stop();
    await until(() => s.stats.daemons[b.tcp].state === "down", 5000, "the sender to see b go");
    for (const st of streams) assert.equal(s.send(st, rows(2, 3), { dim: 3, run: "exp" }), onA.includes(st), st);
    assert.equal(await s.flush(5000), true, "a's streams are all confirmed; b holds nothing");
    const st = s.stats;
    assert.deepEqual([st.daemons[b.tcp].droppedBatches, st.daemons[b.tcp].droppedRows], [onB.length, 2 * onB.length]);
    assert.equal(st.daemons[a.tcp].droppedBatches, 0);
    assert.equal(st.daemons[a.tcp].state, "up");
    for (const x of await ca.list({ run: "exp" })) assert.equal(x.count, 4, x.stream);
  } finally {
    await s.close(500);
    ca.close();
    cb.close();
  }
});

test("more than the socket takes at once: the pump waits for the socket to drain and loses nothing", async () => {
  const c = new Client({ address: a.tcp });
  const s = new Sender({ address: a.tcp });
  try {
    const big = rows(256, 64); // 64 kB a batch
    let queued = 0;
    for (let i = 0; i < 200; i++) queued += s.send("bulk", big, { dim: 64 }) ? 1 : 0;
    assert.equal(queued, 200);
    assert.ok(s.stats.queuedBytes > 12e6, "12.8 MB held until confirmed");
    assert.equal(await s.flush(20000), true);
    assert.deepEqual([s.stats.sentBatches, s.stats.sentRows, s.stats.queuedBytes], [200, 51200, 0]);
    assert.equal((await c.info("bulk")).count, 51200);
  } finally {
    await s.close();
    c.close();
  }
});
