// Reconnecting: the daemon is stopped (SIGTERM) and a new one started on the same addresses and
// state dir. The same Client's next call opens a new connection and succeeds, on TCP and on the
// Unix socket; the Sender drops what is sent while the daemon is down (returns false, counted)
// and resumes on its own, without throwing, with nothing counted twice.
import assert from "node:assert/strict";
import { after, test } from "node:test";

import { Client, Sender } from "../index.js";
import { Daemon, until } from "../support/harness.js";

const daemons = [];
after(async () => {
  for (const d of daemons) await d.remove();
});

const rowsOf = (n, d, v) => Float32Array.from({ length: n * d }, (_, i) => v + (i % 7) + Math.floor(i / d));

test("Client and Sender across a daemon restart", async () => {
  const first = await Daemon.start();
  daemons.push(first);
  const tcp = new Client({ address: first.tcp });
  const unix = new Client({ address: first.unix });
  const sender = new Sender({ address: first.tcp });
  try {
    await tcp.create("r", { dim: 3 });
    await tcp.ingest("r", rowsOf(10, 3, 1), { dim: 3 });
    assert.equal((await unix.info("r")).count, 10);

    for (let i = 0; i < 5; i++) assert.equal(sender.send("s", rowsOf(4, 3, i), { dim: 3 }), true);
    assert.equal(await sender.flush(5000), true);
    assert.deepEqual([sender.stats.sentRows, sender.stats.sentBatches, sender.stats.droppedRows], [20, 5, 0]);

    assert.equal(await first.stop(), 0, "a clean stop");
    await until(() => sender.stats.daemons[first.tcp].state === "down", 5000, "the sender to see the daemon go");
    // while it is down: dropped at once, counted, never thrown
    assert.equal(sender.send("s", rowsOf(6, 3, 9), { dim: 3 }), false);
    assert.equal(sender.send("s", rowsOf(1, 3, 9), { dim: 3 }), false);
    assert.deepEqual([sender.stats.droppedRows, sender.stats.droppedBatches], [7, 2]);
    assert.equal(await tcp.ping().catch((e) => e.code), "CONNECTION", "nobody listens meanwhile");

    const second = await Daemon.start({ stateDir: first.stateDir, tcpPort: first.tcpPort, unixPath: first.unix.slice(5) });
    daemons.push(second);
    assert.equal(second.tcp, first.tcp);
    // the same clients, their next calls: new connections, the restored state
    assert.equal((await tcp.query("r", "trace")).count, 10);
    assert.equal((await unix.info("r")).count, 10);
    assert.equal(unix.reconnects, 1);
    assert.ok(tcp.reconnects >= 1);
    await tcp.ingest("r", rowsOf(2, 3, 5), { dim: 3 });
    assert.equal((await unix.info("r")).count, 12);

    // the sender reconnects on its own (backoff at most 2 s) and resumes
    await until(() => sender.stats.daemons[first.tcp].state === "up", 8000, "the sender to reconnect");
    assert.equal(sender.send("s", rowsOf(3, 3, 1), { dim: 3 }), true);
    assert.equal(await sender.flush(5000), true);
    const st = sender.stats;
    assert.deepEqual([st.sentRows, st.droppedRows, st.droppedBatches], [23, 7, 2]);
    assert.equal(st.reconnects, 1);
    assert.equal((await tcp.info("s")).count, 23, "the rows before and after, each once");
  } finally {
    await sender.close(1000);
    tcp.close();
    unix.close();
  }
});

test("batches written but unconfirmed when the connection broke are written again and applied once", async () => {
  // The daemon applies 4 batches and snapshots them, then dies (SIGKILL) before the Sender's
  // confirming ping: the Sender writes them again to the next daemon, which has them from the
  // snapshot (with the producer's last seq) and skips them as duplicates.
  const first = await Daemon.start();
  daemons.push(first);
  const c = new Client({ address: first.unix });
  const sender = new Sender({ address: first.unix });
  try {
    await c.create("once", { dim: 2 });
    for (let i = 0; i < 3; i++) sender.send("once", new Float64Array([i, 1, i, 2]), { dim: 2 });
    assert.equal(await sender.flush(5000), true);
    // hold the link's confirming ping so the next batches stay written but unconfirmed
    const link = [...sender._links.values()][0];
    const ping = link._ping;
    link._ping = () => {};
    for (let i = 0; i < 4; i++) sender.send("once", new Float64Array([i, 3, i, 4]), { dim: 2 });
    await until(() => link.unconfirmed.length === 4, 2000, "the batches to be written");
    await until(async () => (await c.info("once")).count === 14, 2000, "the daemon to apply them");
    await c.snapshot(); // the rows and the producer's last seq are on disk
    link._ping = ping;
    await first.stop("SIGKILL");
    await until(() => link.state === "down", 5000, "the sender to see the daemon go");
    assert.equal(link.queue.length, 4, "the unconfirmed batches are queued again");
    const second = await Daemon.start({ stateDir: first.stateDir, unixPath: first.unix.slice(5) });
    daemons.push(second);
    assert.equal(await sender.flush(8000), true);
    assert.equal((await c.info("once")).count, 14, "nothing counted twice");
    assert.equal((await c.stats()).duplicate_batches, 4, "the daemon skipped the 4 it had");
    assert.equal(sender.stats.sentRows, 14);
  } finally {
    await sender.close(1000);
    c.close();
  }
});

test("a subscription subscribes again on the next daemon and goes on yielding", async () => {
  const first = await Daemon.start();
  daemons.push(first);
  const c = new Client({ address: first.unix });
  await c.create("sub", { dim: 2, eval: [{ metric: "trace" }] });
  const sub = c.subscribe({ stream: "sub" });
  try {
    await sub.ready;
    await c.ingest("sub", new Float64Array([1, 2, 3, 5]), { dim: 2, step: 0, end_step: true });
    assert.equal((await sub.poll(5000))?.step, 0);
    await first.stop();
    const second = await Daemon.start({ stateDir: first.stateDir, unixPath: first.unix.slice(5) });
    daemons.push(second);
    await until(() => sub.reconnects === 1, 8000, "the subscription to come back");
    await c.ingest("sub", new Float64Array([2, 1, 0, 4]), { dim: 2, step: 1, end_step: true });
    const n = await sub.poll(5000);
    assert.deepEqual([n?.kind, n?.step, n?.stream], ["metrics", 1, "sub"]);
  } finally {
    sub.close();
    c.close();
  }
});
