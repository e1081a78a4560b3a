// Reads and writes across several daemons (proto/PROTOCOL.md, "Many daemons"), for a Client made
// with several addresses — what clients/python/eigenwatch/_fanout.py does for the Python Client:
// a request that names one stream goes to the daemon place() gives it; a request about many
// streams goes to every daemon and the answers are merged — `runs` (a run's streams and steps
// over all daemons), `list`, `history` (each stream's series from its daemon), `alerts` (rules,
// and events by time), `drop` of a run, `snapshot`, and `stats` (each daemon's under its
// address). A daemon that cannot be reached makes the call reject with CONNECTION naming it: a
// read across daemons never answers from some of them as if they were all.
import { CONNECTION, EigenwatchError, TIMEOUT } from "./errors.js";
import { place } from "./placement.js";

/**
 * `err` with the daemon's address in its sentence: a CONNECTION or TIMEOUT error that does not
 * name `address` becomes a new EigenwatchError (same code, `cause` the original) that does;
 * anything else is returned as it is.
 */
export function namingAddress(address, err) {
  if (!(err instanceof EigenwatchError) || (err.code !== CONNECTION && err.code !== TIMEOUT)) return err;
  if (err.message.includes(address)) return err;
  return new EigenwatchError(err.code, `${address}: ${err.message}`, { cause: err });
}

// The fields object of a request's params: an object or Map as given, the one object of a
// one-element params array, {} for none; null for positional params (nothing to route by).
function fieldsOf(params) {
  if (params === undefined || params === null) return {};
  if (Array.isArray(params)) {
    if (params.length === 0) return {};
    const p = params[0];
    return params.length === 1 && p !== null && typeof p === "object" && !Array.isArray(p) && !ArrayBuffer.isView(p) ? p : null;
  }
  return typeof params === "object" ? params : null;
}

function get(fields, key) {
  if (fields === null) return undefined;
  const v = fields instanceof Map ? fields.get(key) : fields[key];
  return v === null ? undefined : v;
}

function withField(fields, key, value) {
  if (fields instanceof Map) return new Map(fields).set(key, value);
  return { ...fields, [key]: value };
}

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const str = (v) => (v === undefined || v === null ? "" : String(v));

/** Every promise's value in order, or the first rejection in order once all have settled. */
async function settled(promises) {
  const results = await Promise.allSettled(promises);
  for (const r of results) if (r.status === "rejected") throw r.reason;
  return results.map((r) => r.value);
}

/** A run's streams are the union (sorted), first_step the smallest, last_step and last_activity the largest. */
export function mergeRuns(answers) {
  const runs = new Map();
  for (const a of answers) {
    for (const r of a.runs ?? []) {
      let m = runs.get(r.run);
      if (!m) {
        m = { run: r.run, streams: [], last_activity: null };
        runs.set(r.run, m);
      }
      m.streams = [...new Set([...m.streams, ...(r.streams ?? [])])].sort(cmp);
      for (const [k, pick] of [["first_step", Math.min], ["last_step", Math.max], ["last_activity", Math.max]]) {
        const v = r[k];
        if (v !== undefined && v !== null) m[k] = m[k] === undefined || m[k] === null ? v : pick(m[k], v);
      }
    }
  }
  return { runs: [...runs.keys()].sort(cmp).map((k) => runs.get(k)) };
}

/** Rules sorted by (run, stream, rule); with `events`, every daemon's events by time, the last `events`. */
export function mergeAlerts(answers, events) {
  const alerts = answers.flatMap((a) => a.alerts ?? []);
  alerts.sort((x, y) => cmp(str(x.run), str(y.run)) || cmp(str(x.stream), str(y.stream)) || cmp(str(x.rule), str(y.rule)));
  const out = { alerts };
  if (events) {
    const ev = answers.flatMap((a) => a.events ?? []);
    ev.sort((x, y) => (x.time || 0) - (y.time || 0));
    out.events = ev.slice(-events);
  }
  return out;
}

/**
 * The answer to one request across the daemons `members` (a Map address → single-daemon Client),
 * placed over `addrs` (see the file's head). opts as Client.call's. Rejects with the first
 * daemon's error (in address order); CONNECTION and TIMEOUT errors name the daemon's address.
 */
export async function fanoutCall(members, addrs, method, params, opts) {
  const ask = (a, p = params) => members.get(a).call(method, p, opts).catch((err) => {
    throw namingAddress(a, err);
  });
  const fields = fieldsOf(params);
  const run = get(fields, "run");
  const stream = get(fields, "stream");
  const streams = get(fields, "streams");
  if (method === "history" && streams !== undefined && stream === undefined) {
    const names = typeof streams === "string" ? [streams] : Array.from(streams);
    const groups = new Map(); // owner → its streams, in the order first named
    for (const s of names) {
      const owner = place(run, s, addrs);
      if (!groups.has(owner)) groups.set(owner, []);
      groups.get(owner).push(s);
    }
    const answers = await settled([...groups].map(([a, ss]) => ask(a, withField(fields, "streams", ss))));
    return { series: answers.flatMap((r) => r.series ?? []) };
  }
  if (stream !== undefined && method !== "subscribe") return ask(place(run, stream, addrs));
  if (method === "drop") {
    // A whole run, on every daemon: one holding none of it (NO_SUCH_STREAM) counts 0.
    const results = await Promise.allSettled(addrs.map((a) => ask(a)));
    const answers = [];
    let missing = null;
    for (const r of results) {
      if (r.status === "fulfilled") answers.push(r.value);
      else if (r.reason instanceof EigenwatchError && r.reason.code === "NO_SUCH_STREAM") missing = r.reason;
      else throw r.reason;
    }
    if (answers.length === 0) throw missing;
    return { run, dropped: true, streams: answers.reduce((n, a) => n + (a.streams ?? 0), 0) };
  }
  const answers = await settled(addrs.map((a) => ask(a)));
  switch (method) {
    case "runs":
      return mergeRuns(answers);
    case "list": {
      const all = answers.flatMap((a) => a.streams ?? []);
      all.sort((x, y) => cmp(str(x.run), str(y.run)) || cmp(x.stream, y.stream));
      return { streams: all };
    }
    case "history": {
      const series = answers.flatMap((a) => a.series ?? []);
      series.sort((x, y) => cmp(str(x.run), str(y.run)) || cmp(x.stream, y.stream) || cmp(x.metric, y.metric));
      return { series };
    }
    case "alerts":
      return mergeAlerts(answers, get(fields, "events"));
    case "snapshot":
      return {
        streams: answers.reduce((n, a) => n + a.streams, 0),
        bytes: answers.reduce((n, a) => n + a.bytes, 0),
        seconds: Math.max(...answers.map((a) => a.seconds)),
      };
    case "stats": // each daemon's counters under its address (as the CLI prints them)
      return Object.fromEntries(addrs.map((a, i) => [a, answers[i]]));
    default:
      return answers[0]; // ping, metrics, auth: the same answer from each (all were asked)
  }
}

/**
 * A notification across the daemons: to the owner of the stream it names, else to every daemon.
 * Resolves once handed to the sockets; rejects as fanoutCall.
 */
export async function fanoutNotify(members, addrs, method, params, opts) {
  const fields = fieldsOf(params);
  const stream = get(fields, "stream");
  const to = stream !== undefined ? [place(get(fields, "run"), stream, addrs)] : addrs;
  await settled(to.map((a) => members.get(a).notify(method, params, opts).catch((err) => {
    throw namingAddress(a, err);
  })));
}
