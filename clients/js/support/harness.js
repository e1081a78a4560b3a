// Test harness: starts a real eigenwatchd on a Unix socket and a loopback TCP port in a temp state
// dir, as tests/integration/harness.py does (--foreground, --log-level info, readiness = the
// log's msg="ready" line, addresses read from its msg="listening" lines), and stops it.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

// It lives outside test/ because `node --test test/` runs every .js file under a test/ directory.

/** clients/js, whatever the current directory. */
export const PKG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The daemon binary: $EWD_BIN (meson sets it to its build's), else this repo's build/. */
export const EWD_BIN = process.env.EWD_BIN ||
  path.resolve(PKG_DIR, "..", "..", "build", "daemon", "eigenwatchd");

/** A path from an env var (relative to the current directory) or a default relative to clients/js. */
export function dataPath(envName, fallback) {
  const v = process.env[envName];
  return v ? path.resolve(v) : path.resolve(PKG_DIR, fallback);
}

/**
 * A running daemon. Daemon.start({stateDir, tcpPort, unixPath, http, config}) resolves once it
 * logged msg="ready"; .tcp and .unix are its addresses, .stateDir its state dir. stop() sends
 * SIGTERM and resolves to the exit code; remove() also deletes a state dir it made.
 */
export class Daemon {
  static async start(opts = {}) {
    const d = new Daemon();
    d.ownsDir = !opts.stateDir;
    d.stateDir = opts.stateDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "ewd-js-"));
    const unixPath = opts.unixPath ?? path.join(d.stateDir, "s.sock");
    const args = ["--foreground", "--state-dir", d.stateDir, "--log-level", "info",
      "--listen", `unix:${unixPath}`, "--listen", `tcp:127.0.0.1:${opts.tcpPort ?? 0}`,
      "--http", opts.http ?? "off"];
    if (opts.config) {
      const conf = path.join(d.stateDir, "eigenwatchd.conf");
      fs.writeFileSync(conf, opts.config);
      args.push("--config", conf);
    }
    d.log = "";
    d.proc = spawn(EWD_BIN, args, { stdio: ["ignore", "ignore", "pipe"] });
    d.exited = new Promise((resolve) => d.proc.once("exit", (code, signal) => resolve(code ?? signal)));
    d.proc.stderr.setEncoding("utf8");
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`daemon not ready in 10 s:\n${d.log}`)), 10000);
      d.proc.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${EWD_BIN}: ${err.message}`));
      });
      d.proc.stderr.on("data", (s) => {
        d.log += s;
        if (d.log.includes('msg="ready"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      d.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`daemon exited (${code}) before it was ready:\n${d.log}`));
      });
    });
    d.tcp = /address=(tcp:[0-9.]+:\d+)/.exec(d.log)?.[1];
    d.unix = /address=(unix:\S+)/.exec(d.log)?.[1];
    d.tcpPort = d.tcp ? Number(d.tcp.split(":").pop()) : undefined;
    d.http = /address=(http:\/\/\S+\/)/.exec(d.log)?.[1]; // with opts.http "127.0.0.1:0"
    return d;
  }

  /** Sends `signal` (default SIGTERM) and resolves to the exit code (SIGKILL after 30 s). */
  async stop(signal = "SIGTERM") {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 30000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** stop(), then deletes the state dir if this daemon made it. */
  async remove() {
    await this.stop();
    if (this.ownsDir) fs.rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every 10 ms until it returns truthy; rejects after `ms`. */
export async function until(fn, ms = 5000, what = "condition") {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
