// Typed errors: what the daemon refuses arrives as EigenwatchError with the wire code in .code
// and the daemon's sentence in .message; what keeps a request from being answered has the
// client's own codes (CONNECTION, TIMEOUT). A refusal changes nothing and the connection stays.
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

import { Client, EigenwatchError } from "../index.js";
import { Daemon } from "../support/harness.js";

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

async function code(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof EigenwatchError, `not an EigenwatchError: ${err}`);
    assert.equal(err.name, "EigenwatchError");
    assert.equal(typeof err.message, "string");
    assert.ok(err.message.length > 0);
    return err.code;
  }
  assert.fail("the call succeeded");
}

test("an unknown stream is NO_SUCH_STREAM, for query, info, reset, drop and export", async () => {
  assert.equal(await code(client.query("ghost", "trace")), "NO_SUCH_STREAM");
  assert.equal(await code(client.info("ghost")), "NO_SUCH_STREAM");
  assert.equal(await code(client.reset("ghost")), "NO_SUCH_STREAM");
  assert.equal(await code(client.drop("ghost")), "NO_SUCH_STREAM");
  assert.equal(await code(client.export("ghost", { run: "r9" })), "NO_SUCH_STREAM");
  const err = await client.info("ghost").catch((e) => e);
  assert.match(err.message, /ghost/, "the sentence names the stream");
});

test("a bad dtype is BAD_DTYPE and nothing is created", async () => {
  const bytes = new Uint8Array(8);
  assert.equal(await code(client.ingest("typed", { data: bytes, dtype: "i8", shape: [1, 2] })), "BAD_DTYPE");
  assert.equal(await code(client.info("typed")), "NO_SUCH_STREAM");
});

test("other refusals keep their codes: DIM_MISMATCH, NON_FINITE, UNKNOWN_METRIC, BAD_PARAM, STREAM_EXISTS, UNKNOWN_METHOD", async () => {
  await client.create("e", { dim: 2 });
  assert.equal((await client.create("e", { dim: 2 })).created, false);
  assert.equal(await code(client.create("e", { dim: 3 })), "STREAM_EXISTS");
  assert.equal(await code(client.ingest("e", new Float32Array(3), { dim: 3 })), "DIM_MISMATCH");
  assert.equal(await code(client.ingest("e", new Float32Array([1, NaN]))), "NON_FINITE");
  assert.equal(await code(client.query("e", "nope")), "UNKNOWN_METRIC");
  assert.equal(await code(client.query("e", "renyi", { params: { alpha: -1 } })), "BAD_PARAM");
  assert.equal(await code(client.call("frobnicate")), "UNKNOWN_METHOD");
  assert.equal(await code(client.call("info", ["e"])), "BAD_REQUEST");
  // the connection is still good after all of them
  assert.equal((await client.ping()).pong, true);
  assert.equal(client.reconnects, 0);
});

test("an address nobody listens on is CONNECTION", async () => {
  const c = new Client({ address: `unix:${path.join(os.tmpdir(), `ew-none-${process.pid}.sock`)}`, timeout: 2000 });
  assert.equal(await code(c.ping()), "CONNECTION");
  c.close();
  assert.throws(() => new Client({ address: "http://localhost" }), TypeError);
});

test("a reply that does not come in time is TIMEOUT; a dropped connection is CONNECTION, and only reads are asked again", async () => {
  // A stand-in daemon that reads requests and never answers; the test hangs up on its clients.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ew-mute-"));
  const sockPath = path.join(dir, "mute.sock");
  const conns = [];
  const server = net.createServer((s) => {
    conns.push(s);
    s.on("error", () => {});
  });
  await new Promise((r) => server.listen(sockPath, r));
  const waitConns = async (n) => {
    while (conns.length < n) await new Promise((r) => setTimeout(r, 5));
  };
  try {
    const quick = new Client({ address: `unix:${sockPath}`, timeout: 200 });
    assert.equal(await code(quick.ping()), "TIMEOUT");
    quick.close();

    const c = new Client({ address: `unix:${sockPath}`, timeout: 0 });
    // create changes state: when its connection drops it is not sent again
    const created = code(c.create("s", { dim: 2 }));
    await waitConns(2);
    conns[1].destroy();
    assert.equal(await created, "CONNECTION");
    assert.equal(conns.length, 2, "no new connection for a call that changes state");
    // ping only reads: it is sent once more on a new connection, and fails when that drops too
    const pinged = code(c.ping());
    await waitConns(3);
    conns[2].destroy();
    await waitConns(4);
    conns[3].destroy();
    assert.equal(await pinged, "CONNECTION");
    assert.equal(c.reconnects, 2);
    c.close();
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
