// A Client of several daemons (proto/PROTOCOL.md, "Many daemons"), as the Python Client does it:
// three daemons on Unix sockets; a Client of the three creates 12 streams in two runs and each
// lands on its place() owner (each daemon's own list, read by a Client of that one, says so);
// list, runs, history, alerts (a rule on two streams on different daemons), stats, snapshot and
// drop of a run come back merged; subscribe() yields notifications from every daemon; with one
// daemon stopped, a fan-out read rejects with CONNECTION naming it while a stream on another
// daemon still answers. The merging rules themselves are also checked on made-up answers.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { CONNECTION, Client, EigenwatchError, MultiSubscription, Subscription, place } from "../index.js";
import { fanoutCall, mergeAlerts, mergeRuns } from "../lib/fanout.js";
import { Daemon, until } from "../support/harness.js";

const D = 4;
const RUNS = ["ra", "rb"];
const STEPS = 3; // stream k of a run gets steps k .. k + STEPS - 1

let daemons = [];
let addrs;
let client; // of the three
let single; // address → a Client of that one
// run → its 6 streams, two on each daemon (names picked so, whatever the temp paths hash to)
const streams = {};

before(async () => {
  daemons = await Promise.all([0, 1, 2].map(() => Daemon.start({ config: "snapshot_interval = 0\n" })));
  addrs = daemons.map((d) => d.unix);
  client = new Client({ addresses: addrs, timeout: 10000 });
  single = new Map(addrs.map((a) => [a, new Client({ address: a, timeout: 10000 })]));
  for (const run of RUNS) {
    const per = new Map(addrs.map((a) => [a, 0]));
    streams[run] = [];
    for (let i = 0; streams[run].length < 6; i++) {
      const name = `layer.${i}`;
      const owner = place(run, name, addrs);
      if (per.get(owner) < 2) {
        per.set(owner, per.get(owner) + 1);
        streams[run].push(name);
      }
    }
  }
});

after(async () => {
  client?.close();
  for (const c of single?.values() ?? []) c.close();
  await Promise.all(daemons.map((d) => d.remove()));
});

const batch = (step, k) => Float32Array.from({ length: 8 * D }, (_, i) => Math.sin(i * 1.3 + step + k) * (1 + (i % D)));
const owner = (run, stream) => place(run, stream, addrs);
const byRunStream = (x, y) => (x.run < y.run ? -1 : x.run > y.run ? 1 : x.stream < y.stream ? -1 : x.stream > y.stream ? 1 : 0);

test("addresses: a comma list, a list, or $EIGENWATCH_ADDRESS with commas make a Client of several; one stays one", () => {
  const three = "unix:/tmp/a.sock, unix:/tmp/b.sock,,unix:/tmp/a.sock,unix:/tmp/c.sock";
  assert.deepEqual(new Client({ address: three }).addresses, ["unix:/tmp/a.sock", "unix:/tmp/b.sock", "unix:/tmp/c.sock"]);
  assert.deepEqual(new Client({ addresses: ["unix:/tmp/a.sock", "unix:/tmp/b.sock"] }).addresses, ["unix:/tmp/a.sock", "unix:/tmp/b.sock"]);
  const c = new Client({ address: three });
  assert.equal(c.address, "unix:/tmp/a.sock,unix:/tmp/b.sock,unix:/tmp/c.sock");
  assert.equal(c.daemonOf("s", { run: "r" }), place("r", "s", c.addresses));
  assert.equal(c.daemonOf("s"), place("default", "s", c.addresses));
  const one = new Client({ address: "unix:/tmp/a.sock" });
  assert.deepEqual([one.address, one.addresses, one.daemonOf("s"), one.reconnects], ["unix:/tmp/a.sock", ["unix:/tmp/a.sock"], "unix:/tmp/a.sock", 0]);
  assert.equal(c.reconnects, 0);
  assert.throws(() => new Client({ address: "unix:/tmp/a.sock,http://x" }), TypeError);
  assert.throws(() => new Client({ addresses: " , " }), TypeError);
  const saved = process.env.EIGENWATCH_ADDRESS;
  try {
    process.env.EIGENWATCH_ADDRESS = "unix:/tmp/a.sock , unix:/tmp/b.sock";
    assert.deepEqual(new Client().addresses, ["unix:/tmp/a.sock", "unix:/tmp/b.sock"]);
    process.env.EIGENWATCH_ADDRESS = " unix:/tmp/a.sock ";
    assert.deepEqual(new Client().addresses, ["unix:/tmp/a.sock"]);
  } finally {
    if (saved === undefined) delete process.env.EIGENWATCH_ADDRESS;
    else process.env.EIGENWATCH_ADDRESS = saved;
  }
  for (const x of [c, one]) x.close();
});

test("12 streams in two runs: each is created on its place() owner, and list/runs/history merge every daemon's", async () => {
  const sub = client.subscribe({ run: "ra" });
  assert.ok(sub instanceof MultiSubscription);
  assert.deepEqual(sub.subscriptions.map((s) => s.address), addrs);
  const ids = await sub.ready;
  assert.equal(ids.length, 3);

  for (const run of RUNS) {
    for (const s of streams[run]) {
      const r = await client.create(s, { run, dim: D, eval: [{ metric: "trace" }, { metric: "erank" }] });
      assert.equal(r.created, true);
      assert.equal(client.daemonOf(s, { run }), owner(run, s));
    }
  }
  // a rule on two streams on different daemons (set before the rows: it fires on the first point)
  const [ruleA, ruleB] = [streams.ra[0], streams.ra.find((s) => owner("ra", s) !== owner("ra", streams.ra[0]))];
  for (const s of [ruleA, ruleB]) {
    assert.deepEqual(await client.alertSet(s, [{ name: "pos", metric: "trace", when: "above", value: 0 }], { run: "ra" }), { stream: s, rules: 1 });
  }
  const pending = [];
  for (const run of RUNS) {
    streams[run].forEach((s, k) => {
      pending.push((async () => {
        for (let step = k; step < k + STEPS; step++) {
          const r = await client.ingest(s, batch(step, k), { run, dim: D, step, end_step: true });
          assert.equal(r.accepted, 8);
        }
      })());
    });
  }
  await Promise.all(pending);

  // each daemon holds exactly the streams placed on it
  for (const [a, c] of single) {
    const mine = (await c.list()).map((x) => `${x.run}/${x.stream}`).sort();
    const want = RUNS.flatMap((run) => streams[run].filter((s) => owner(run, s) === a).map((s) => `${run}/${s}`)).sort();
    assert.deepEqual(mine, want, `the streams of ${a}`);
    assert.equal(mine.length, 4);
  }

  // list: every stream, sorted by run then stream
  const all = await client.list();
  assert.equal(all.length, 12);
  assert.deepEqual(all.map((x) => `${x.run}/${x.stream}`), [...all].sort(byRunStream).map((x) => `${x.run}/${x.stream}`));
  assert.deepEqual(all.map((x) => `${x.run}/${x.stream}`), RUNS.flatMap((run) => [...streams[run]].sort().map((s) => `${run}/${s}`)));
  assert.deepEqual((await client.list({ run: "rb" })).map((x) => x.stream), [...streams.rb].sort());
  assert.ok(all.every((x) => x.count === 8 * STEPS));
  // a stream's reads go to its owner
  for (const run of RUNS) {
    for (const s of streams[run]) {
      assert.equal((await client.info(s, { run })).count, 8 * STEPS);
      const q = await client.query(s, "trace", { run });
      assert.equal(q.count, 8 * STEPS);
    }
  }

  // every step evaluated everywhere
  await until(async () => {
    for (const [, c] of single) {
      for (const x of await c.list()) {
        const i = await c.info(x.stream, { run: x.run });
        if (i.eval.busy || i.eval.evaluations + i.eval.coalesced < STEPS) return false;
      }
    }
    return true;
  }, 10000, "every step evaluated");

  // runs: a run's streams are the union, first_step the smallest, last_step / last_activity the largest
  const runs = await client.runs();
  assert.deepEqual(runs.map((r) => r.run), RUNS);
  const each = await Promise.all([...single.values()].map((c) => c.runs()));
  for (const r of runs) {
    assert.deepEqual(r.streams, [...streams[r.run]].sort());
    assert.equal(r.first_step, 0);
    assert.equal(r.last_step, 5 + STEPS - 1);
    const theirs = each.flatMap((rs) => rs.filter((x) => x.run === r.run));
    assert.equal(theirs.length, 3, "every daemon holds a part of each run");
    assert.equal(r.last_activity, Math.max(...theirs.map((x) => x.last_activity)));
    assert.equal(r.first_step, Math.min(...theirs.map((x) => x.first_step)));
    assert.ok(theirs.some((x) => x.first_step > 0) && theirs.some((x) => x.last_step < r.last_step), "the daemons' steps differ");
  }

  // history of a run: every daemon's series, sorted by run, stream, metric
  const h = await client.history({ run: "ra" });
  const keys = h.map((s) => `${s.run}/${s.stream}/${s.metric}`);
  assert.deepEqual(keys, [...streams.ra].sort().flatMap((s) => [`ra/${s}/erank`, `ra/${s}/trace`]));
  for (const s of h) {
    const k = streams.ra.indexOf(s.stream);
    assert.ok(s.step.length >= 1 && s.step.at(-1) === k + STEPS - 1, `${s.stream} ${s.metric} ends at its last step`);
  }
  // history of named streams: each group from its owner; of one stream: from its owner
  const named = [streams.rb[0], streams.rb.find((s) => owner("rb", s) !== owner("rb", streams.rb[0])), streams.rb[5]];
  const hn = await client.history({ run: "rb", streams: named, metrics: "trace" });
  assert.deepEqual(new Set(hn.map((s) => s.stream)), new Set(named));
  assert.ok(hn.every((s) => s.metric === "trace" && s.run === "rb"));
  const h1 = await client.history({ run: "rb", stream: streams.rb[3] });
  assert.deepEqual(h1.map((s) => s.stream), [streams.rb[3], streams.rb[3]]);

  // alerts: the rules of both streams sorted by run, stream, rule; events by time
  const al = await client.alerts({ run: "ra", events: 10 });
  const want = [ruleA, ruleB].sort();
  assert.deepEqual(al.alerts.map((x) => `${x.run}/${x.stream}/${x.rule}`), want.map((s) => `ra/${s}/pos`));
  assert.ok(al.alerts.every((x) => x.state === "firing"));
  assert.deepEqual(new Set(al.events.map((e) => e.stream)), new Set([ruleA, ruleB]), "events from both daemons");
  for (let i = 1; i < al.events.length; i++) assert.ok(al.events[i].time >= al.events[i - 1].time, "events by time");
  const last = await client.alerts({ run: "ra", events: 1 });
  assert.deepEqual(last.events, [al.events.at(-1)], "the last one asked for");
  assert.equal((await client.alerts({ run: "ra" })).events, undefined);
  const one = await client.alerts({ run: "ra", stream: ruleB });
  assert.deepEqual(one.alerts.map((x) => x.stream), [ruleB]);
  assert.equal((await client.alerts({ run: "rb" })).alerts.length, 0);

  // the subscription on run ra: metrics from all six streams (three daemons), alerts of both
  const seen = new Set();
  const alerted = new Set();
  const endAt = Date.now() + 5000;
  while ((seen.size < 6 || alerted.size < 2) && Date.now() < endAt) {
    const n = await sub.poll(endAt - Date.now());
    if (!n) break;
    assert.equal(n.run, "ra");
    if (n.kind === "metrics") seen.add(n.stream);
    else alerted.add(n.stream);
  }
  assert.deepEqual([...seen].sort(), [...streams.ra].sort());
  assert.equal(new Set([...seen].map((s) => owner("ra", s))).size, 3, "notifications from every daemon");
  assert.deepEqual([...alerted].sort(), want);
  sub.close();
  assert.ok(sub.closed && sub.subscriptions.every((s) => s.closed), "closing it closes every daemon's");
  assert.equal(await sub.poll(), null);
});

test("subscribe: one iterator over every daemon; break closes them all", async () => {
  const sub = client.subscribe({ run: "rb", metrics: "trace" });
  await sub.ready;
  const targets = [streams.rb[0], streams.rb.find((s) => owner("rb", s) !== owner("rb", streams.rb[0]))];
  let step = 100;
  for (const s of targets) await client.ingest(s, batch(step, 0), { run: "rb", dim: D, step: step++, end_step: true });
  const got = new Set();
  for await (const n of sub) {
    assert.equal(n.kind, "metrics");
    assert.deepEqual(Object.keys(n.metrics), ["trace"]);
    got.add(n.stream);
    if (got.size === 2) break;
  }
  assert.deepEqual([...got].sort(), [...targets].sort());
  assert.ok(sub.closed && sub.subscriptions.every((s) => s.closed));
});

test("stats by address; snapshot sums streams and bytes; drop of a run on every daemon", async () => {
  const stats = await client.stats();
  assert.deepEqual(Object.keys(stats), addrs);
  for (const a of addrs) assert.equal(stats[a].streams, 4, `${a} holds four streams`);
  const ping = await client.ping();
  assert.equal(ping.pong, true);
  assert.ok((await client.metrics()).some((m) => m.name === "erank"));

  const first = await client.snapshot();
  assert.equal(first.streams, 12, "every changed stream, over the three daemons");
  assert.ok(first.bytes > 0 && typeof first.seconds === "number");
  // one changed stream on each daemon: 3 written
  const onEach = addrs.map((a) => streams.ra.find((s) => owner("ra", s) === a));
  for (const s of onEach) await client.ingest(s, batch(50, 1), { run: "ra", dim: D });
  const snap = await client.snapshot();
  assert.equal(snap.streams, 3);
  assert.ok(snap.bytes > 0);

  // a run held by one daemon: the others answer NO_SUCH_STREAM and count 0
  await client.create("solo", { run: "rc", dim: D });
  const rc = (await client.runs()).find((r) => r.run === "rc");
  assert.deepEqual([rc.streams, rc.last_activity, rc.first_step], [["solo"], null, undefined]);
  assert.deepEqual(await client.drop(undefined, { run: "rc" }), { run: "rc", dropped: true, streams: 1 });
  // a run no daemon holds: NO_SUCH_STREAM
  await assert.rejects(client.drop(undefined, { run: "nowhere" }), { code: "NO_SUCH_STREAM" });
  // a run over the three
  assert.deepEqual(await client.drop(undefined, { run: "rb" }), { run: "rb", dropped: true, streams: 6 });
  assert.deepEqual((await client.runs()).map((r) => r.run), ["ra"]);
  assert.equal((await client.list()).length, 6);
  for (const [, c] of single) assert.deepEqual((await c.list({ run: "rb" })), []);
  // a stream's drop goes to its owner
  const gone = streams.ra[5];
  assert.deepEqual(await client.drop(gone, { run: "ra" }), { stream: gone, dropped: true });
  await assert.rejects(single.get(owner("ra", gone)).info(gone, { run: "ra" }), { code: "NO_SUCH_STREAM" });
  streams.ra.pop();
});

test("a daemon that is down: fan-out reads reject with CONNECTION naming it; streams elsewhere still answer", async () => {
  const down = addrs[1];
  await daemons[1].stop();
  for (const call of [() => client.list(), () => client.runs(), () => client.stats(), () => client.history({ run: "ra" }), () => client.alerts()]) {
    const err = await call().then(() => null, (e) => e);
    assert.ok(err instanceof EigenwatchError, `rejects: ${err}`);
    assert.equal(err.code, CONNECTION);
    assert.ok(err.message.includes(down), `names ${down}: ${err.message}`);
  }
  const elsewhere = streams.ra.find((s) => owner("ra", s) !== down);
  assert.equal((await client.query(elsewhere, "trace", { run: "ra" })).count, 8 * STEPS + 8, "its rows, and the 8 of the snapshot test");
  const there = streams.ra.find((s) => owner("ra", s) === down);
  await assert.rejects(client.info(there, { run: "ra" }), (e) => e.code === CONNECTION && e.message.includes(down));
  const sub = client.subscribe({ run: "ra" });
  await assert.rejects(sub.ready, (e) => e.code === CONNECTION && e.message.includes(down));
  await assert.rejects(sub.poll(100), { code: CONNECTION });
  sub.close();
});

// ---- the merging rules, on made-up answers ----

function fake(answers) {
  const calls = [];
  const members = new Map(Object.entries(answers).map(([a, f]) => [a, {
    call: async (method, params) => {
      calls.push([a, method, params]);
      return f(method, params);
    },
    notify: async () => {},
  }]));
  return { members, calls, addrs: Object.keys(answers) };
}

test("merging: runs, alerts, snapshot, stats, ping, drop, streams groups, errors", async () => {
  assert.deepEqual(mergeRuns([
    { runs: [{ run: "b", streams: ["y", "x"], last_activity: null }, { run: "a", streams: ["s"], first_step: 4, last_step: 9, last_activity: 5 }] },
    { runs: [{ run: "a", streams: ["r", "s"], first_step: 2, last_step: 7, last_activity: 8 }, { run: "b", streams: ["z"], last_activity: null }] },
  ]), { runs: [
    { run: "a", streams: ["r", "s"], last_activity: 8, first_step: 2, last_step: 9 },
    { run: "b", streams: ["x", "y", "z"], last_activity: null },
  ] });
  const ev = (t, s) => ({ time: t, stream: s });
  assert.deepEqual(mergeAlerts([
    { alerts: [{ run: "r", stream: "b", rule: "z" }], events: [ev(1, "b"), ev(5, "b")] },
    { alerts: [{ run: "r", stream: "b", rule: "a" }, { run: "q", stream: "c", rule: "a" }], events: [ev(3, "c")] },
  ], 2), { alerts: [{ run: "q", stream: "c", rule: "a" }, { run: "r", stream: "b", rule: "a" }, { run: "r", stream: "b", rule: "z" }], events: [ev(3, "c"), ev(5, "b")] });

  const { members, calls, addrs: as } = fake({
    "unix:/a": (m) => ({ snapshot: { streams: 2, bytes: 10, seconds: 0.5 }, ping: { pong: "a" }, drop: { run: "r", dropped: true, streams: 2 } })[m],
    "unix:/b": (m) => {
      if (m === "drop") throw new EigenwatchError("NO_SUCH_STREAM", "run 'r' has no streams");
      return ({ snapshot: { streams: 3, bytes: 5, seconds: 1.5 }, ping: { pong: "b" }, stats: { n: 2 } })[m];
    },
  });
  assert.deepEqual(await fanoutCall(members, as, "snapshot", undefined, {}), { streams: 5, bytes: 15, seconds: 1.5 });
  calls.length = 0;
  assert.deepEqual(await fanoutCall(members, as, "ping", undefined, {}), { pong: "a" });
  assert.deepEqual(calls.map((c) => c[0]), as, "every daemon asked");
  assert.deepEqual(await fanoutCall(members, as, "stats", undefined, {}), { "unix:/a": undefined, "unix:/b": { n: 2 } });
  assert.deepEqual(await fanoutCall(members, as, "drop", { run: "r" }, {}), { run: "r", dropped: true, streams: 2 });

  const g = fake({ "unix:/a": (m, p) => ({ series: p.streams.map((s) => ({ stream: s })) }), "unix:/b": (m, p) => ({ series: p.streams.map((s) => ({ stream: s })) }) });
  const names = ["s1", "s2", "s3", "s4", "s5"];
  const r = await fanoutCall(g.members, g.addrs, "history", { run: "r", streams: names, metrics: ["trace"] }, {});
  assert.deepEqual(new Set(r.series.map((s) => s.stream)), new Set(names));
  for (const [a, , p] of g.calls) {
    assert.ok(p.streams.every((s) => place("r", s, g.addrs) === a), "each group from its owner");
    assert.deepEqual(Object.keys(p), ["run", "streams", "metrics"], "fields kept in their order");
  }

  const dead = fake({ "unix:/a": () => ({ streams: [] }), "unix:/b": () => { throw new EigenwatchError(CONNECTION, "the client is closed"); } });
  await assert.rejects(fanoutCall(dead.members, dead.addrs, "list", {}, {}), (e) => e.code === CONNECTION && e.message.startsWith("unix:/b: "));
  const none = fake({ "unix:/a": () => { throw new EigenwatchError("NO_SUCH_STREAM", "a"); }, "unix:/b": () => { throw new EigenwatchError("NO_SUCH_STREAM", "b"); } });
  await assert.rejects(fanoutCall(none.members, none.addrs, "drop", { run: "x" }, {}), { code: "NO_SUCH_STREAM", message: "b" });
});

test("one address: a plain Subscription, and no fan-out", async () => {
  const c = new Client({ address: addrs[0] });
  const sub = c.subscribe({ run: "ra" });
  assert.ok(sub instanceof Subscription && !(sub instanceof MultiSubscription));
  await sub.ready;
  sub.close();
  c.close();
});
