// The README's example, run as it is against two daemons (EIGENWATCH_ADDRESS lists both): it
// must print the erank of the Client's stream and a Sender that sent every row and dropped none,
// each stream placed on its owner, and the run's streams as the Client of both merges them.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";

import { place } from "../index.js";
import { Daemon, PKG_DIR } from "../support/harness.js";

let a;
let b;
before(async () => {
  [a, b] = await Promise.all([Daemon.start(), Daemon.start()]);
});
after(async () => {
  await a.remove();
  await b.remove();
});

test("the README example runs and prints what it promises", async () => {
  const readme = fs.readFileSync(path.join(PKG_DIR, "README.md"), "utf8");
  const block = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((c) => c.includes("new Sender") && c.includes("query"));
  assert.ok(block, "the README lost its example");
  const code = block.replace('from "eigenwatch"', `from ${JSON.stringify(pathToFileURL(path.join(PKG_DIR, "index.js")).href)}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ew-readme-"));
  const file = path.join(dir, "example.mjs");
  fs.writeFileSync(file, code);
  try {
    const env = { ...process.env, EIGENWATCH_ADDRESS: `${a.tcp},${b.tcp}` };
    const { stdout } = await promisify(execFile)(process.execPath, [file], { env, timeout: 30000 });
    assert.match(stdout, /^erank \d+\.\d{3} of 16 dims over 64 rows$/m);
    assert.match(stdout, /^sent 3840 rows, dropped 0$/m, "20 steps × 3 streams × 64 rows");
    for (const stream of ["layer.0", "layer.1", "policy"]) {
      assert.match(stdout, new RegExp(`^${stream.replace(".", "\\.")} -> ${place("exp-1", stream, [a.tcp, b.tcp])}$`, "m"));
    }
    assert.match(stdout, /^exp-1: layer\.0, layer\.1, policy$/m, "the run's streams, merged over both daemons");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
