// subscribe: one `metrics` notification per evaluation. A stream evaluated at every step gets N
// steps (rows with `step` and `end_step`, so each completes at once); the subscription yields
// exactly N metrics notifications, steps 0..N-1 in order, and the daemon counts N evaluations.
// When steps come faster than they are evaluated, the daemon coalesces: still one notification
// per evaluation, each counting the steps it replaced in `skipped`. Alerts arrive as kind
// "alert"; closing ends the iterator.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client } from "../index.js";
import { Daemon, until } from "../support/harness.js";

let daemon;
let client;
before(async () => {
  daemon = await Daemon.start();
  client = new Client({ address: daemon.unix });
});
after(async () => {
  client.close();
  await daemon.remove();
});

const D = 4;
const batch = (step, scale = 1) => Float32Array.from({ length: 8 * D }, (_, i) => scale * Math.sin(i * 1.3 + step));

test("one metrics notification per evaluated step, steps in order, and nothing more", async () => {
  const N = 8;
  await client.create("sub", { dim: D, eval: [{ metric: "trace" }, { metric: "erank" }] });
  const sub = client.subscribe({ stream: "sub" });
  assert.ok(Number.isInteger(await sub.ready));
  const seen = [];
  for (let step = 0; step < N; step++) {
    await client.ingest("sub", batch(step), { dim: D, step, end_step: true });
    const n = await sub.poll(5000);
    assert.ok(n, `a notification for step ${step}`);
    seen.push(n);
  }
  assert.equal(await sub.poll(300), null, "no notification beyond the evaluations");
  assert.deepEqual(seen.map((n) => n.kind), Array(N).fill("metrics"));
  assert.deepEqual(seen.map((n) => n.step), [...Array(N).keys()]);
  for (const n of seen) {
    assert.equal(n.stream, "sub");
    assert.equal(n.run, "default");
    assert.equal(n.rows, 8);
    assert.equal(n.skipped, 0);
    assert.equal(typeof n.metrics.trace, "number");
    assert.equal(typeof n.metrics.erank, "number");
  }
  assert.equal((await client.info("sub")).eval.evaluations, N);
  sub.close();
  assert.equal(await sub.poll(), null, "a closed subscription yields nothing");
});

test("a burst of steps: notifications = evaluations, increasing steps, 1 + skipped covering every step", async () => {
  const N = 40;
  await client.create("burst", { dim: D, eval: [{ metric: "trace" }] });
  const sub = client.subscribe({ stream: "burst", metrics: "trace" });
  await sub.ready;
  for (let step = 0; step < N; step++) await client.ingest("burst", batch(step), { dim: D, step, end_step: true, notify: true });
  const info = await until(async () => {
    const i = await client.info("burst");
    return i.eval.evaluations + i.eval.coalesced === N && !i.eval.busy && i;
  }, 10000, "every step evaluated or coalesced");
  const seen = [];
  for (;;) {
    const n = await sub.poll(seen.length < info.eval.evaluations ? 5000 : 300);
    if (!n) break;
    seen.push(n);
  }
  sub.close();
  assert.equal(seen.length, info.eval.evaluations, "exactly one notification per evaluation");
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].step > seen[i - 1].step, "steps increase");
  assert.equal(seen.reduce((a, n) => a + 1 + n.skipped, 0), N, "each step evaluated or counted skipped");
  assert.equal(seen.at(-1).step, N - 1);
});

test("alert changes arrive as kind alert; for await ... break closes the subscription", async () => {
  await client.create("alarm", {
    dim: D,
    eval: [{ metric: "trace" }],
    rules: [{ name: "big", metric: "trace", when: "above", value: 100 }],
  });
  const sub = client.subscribe({ stream: "alarm" });
  await sub.ready;
  for (let step = 0; step < 3; step++) {
    await client.ingest("alarm", batch(step, step === 2 ? 1000 : 1), { dim: D, step, end_step: true });
  }
  const kinds = [];
  let alert = null;
  for await (const n of sub) {
    kinds.push(`${n.kind}:${n.step}`);
    if (n.kind === "alert") alert = n;
    if (kinds.length === 4) break;
  }
  assert.equal(sub.closed, true, "break called return(), which closed it");
  assert.deepEqual(kinds.filter((k) => k.startsWith("metrics")), ["metrics:0", "metrics:1", "metrics:2"]);
  assert.ok(alert, "an alert notification");
  assert.deepEqual([alert.rule, alert.state, alert.step, alert.stream], ["big", "firing", 2, "alarm"]);
  assert.match(alert.message, /alarm/);
});

test("a subscription the daemon refuses rejects ready and next() with its code", async () => {
  const sub = client.subscribe({ stream: "sub", metrics: "no_such_series" });
  await assert.rejects(sub.ready, { code: "UNKNOWN_METRIC" });
  await assert.rejects(sub.next(), { code: "UNKNOWN_METRIC" });
  sub.close();
});
