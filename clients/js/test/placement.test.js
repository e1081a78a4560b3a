// proto/vectors/placement.tsv against place(), fnv1a64() and parseAddresses(): every `hash`
// record (FNV-1a-64 of run 0x00 stream 0x00 address) and every `place` record (the owner among
// the comma-separated addresses) must come out the same as the Python and C clients'.
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";

import { fnv1a64, parseAddresses, place, score } from "../index.js";
import { fnv1a64Reference } from "../lib/placement.js";
import { dataPath } from "../support/harness.js";

const PLACEMENT = dataPath("EW_PLACEMENT", "../../proto/vectors/placement.tsv");
const records = fs.readFileSync(PLACEMENT, "utf8").split("\n")
  .filter((l) => l && !l.startsWith("#")).map((l) => l.split("\t"));
const utf8 = new TextEncoder();

test("the placement file holds hash and place records", () => {
  const kinds = new Set(records.map((r) => r[0]));
  assert.deepEqual([...kinds].sort(), ["hash", "place"]);
  assert.ok(records.filter((r) => r[0] === "hash").length >= 100);
  assert.ok(records.filter((r) => r[0] === "place").length >= 400);
});

test("fnv1a64 of run 0x00 stream 0x00 address equals every hash record", () => {
  let n = 0;
  for (const [kind, run, stream, address, want] of records) {
    if (kind !== "hash") continue;
    const bytes = utf8.encode(`${run}\0${stream}\0${address}`);
    assert.equal(fnv1a64(bytes).toString(16).padStart(16, "0"), want, `${run} ${stream} ${address}`);
    assert.equal(fnv1a64Reference(bytes), fnv1a64(bytes));
    assert.equal(score(run, stream, address), BigInt(`0x${want}`));
    n++;
  }
  assert.ok(n > 0);
});

test("place() equals every place record", () => {
  let n = 0;
  for (const [kind, run, stream, addrs, owner] of records) {
    if (kind !== "place") continue;
    const list = parseAddresses(addrs);
    assert.equal(place(run, stream, list), owner, `${run} ${stream} ${addrs}`);
    assert.equal(place(run, stream, addrs), owner, "a spec string is parsed the same");
    if (run === "default") assert.equal(place(undefined, stream, list), owner, "run undefined is the default run");
    if (run === "default") assert.equal(place(null, stream, list), owner, "run null is the default run");
    n++;
  }
  assert.ok(n > 0);
});

test("fnv1a64 known values: empty input is the offset basis, 'a' the published hash", () => {
  assert.equal(fnv1a64(new Uint8Array()), 0xcbf29ce484222325n);
  assert.equal(fnv1a64(utf8.encode("a")), 0xaf63dc4c8601ec8cn);
  assert.equal(fnv1a64("foobar"), 0x85944171f73967e8n);
});

test("parseAddresses splits on commas, trims, drops empties and repeats (first kept)", () => {
  assert.deepEqual(parseAddresses(" tcp:a:1 ,, unix:/s ,tcp:a:1,tcp:b:2 , "), ["tcp:a:1", "unix:/s", "tcp:b:2"]);
  assert.deepEqual(parseAddresses(["tcp:b:2", " tcp:b:2", ""]), ["tcp:b:2"]);
  assert.deepEqual(parseAddresses(""), []);
});

test("a tie goes to the bytewise-smaller address, and no address is an error", () => {
  // Equal scores need equal addresses, which parseAddresses removes; place() still orders a
  // repeated list deterministically and refuses an empty one.
  assert.equal(place("r", "s", ["tcp:x:1", "tcp:x:1"]), "tcp:x:1");
  assert.throws(() => place("r", "s", []), RangeError);
});

test("non-ASCII names hash their UTF-8 bytes", () => {
  const run = "räksmörgås";
  const stream = "層/0";
  const a = "unix:/tmp/ü.sock";
  assert.equal(score(run, stream, a), fnv1a64Reference(Buffer.from(`${run}\0${stream}\0${a}`, "utf8")));
});
