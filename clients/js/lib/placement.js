// Placement of streams on several daemons: rendezvous hashing, the same as
// clients/python/eigenwatch/placement.py and the C client's ewc_place (proto/vectors/
// placement.tsv checks all three). A (run, stream) belongs to the address whose
// FNV-1a-64(run ‖ 0x00 ‖ stream ‖ 0x00 ‖ address), over UTF-8 bytes, is the largest; ties go to
// the bytewise-smaller address. Every rank of a run finds the same daemon for a stream without
// talking to the others, and adding a daemon moves only the streams it wins.

/** The daemon's run for a stream named without one. */
export const DEFAULT_RUN = "default";

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const M64 = (1n << 64n) - 1n;
const utf8 = new TextEncoder();

/**
 * FNV-1a, 64 bits, of `bytes` (a Uint8Array, or a string taken as its UTF-8 bytes); a BigInt
 * in [0, 2^64).
 */
export function fnv1a64(bytes) {
  const b = typeof bytes === "string" ? utf8.encode(bytes) : bytes;
  // Two 32-bit halves in Numbers: the prime is 2^40 + 0x1b3, so h·p = h·0x1b3 + (h << 40).
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < b.length; i++) {
    lo = (lo ^ b[i]) >>> 0; // ^ gives a signed 32-bit result
    const loP = lo * 0x1b3; // < 2^41: exact
    const hiP = hi * 0x1b3 + Math.floor(loP / 0x100000000) + ((lo << 8) >>> 0); // (lo << 40) reaches hi as lo << 8
    lo = loP >>> 0;
    hi = hiP >>> 0;
  }
  return (BigInt(hi) << 32n) | BigInt(lo);
}

// The reference computation, kept for the comment above to be checkable (test/placement).
export function fnv1a64Reference(bytes) {
  const b = typeof bytes === "string" ? utf8.encode(bytes) : bytes;
  let h = FNV_OFFSET;
  for (let i = 0; i < b.length; i++) h = ((h ^ BigInt(b[i])) * FNV_PRIME) & M64;
  return h;
}

/** The rendezvous weight of `address` for (run, stream); run null/undefined is "default". */
export function score(run, stream, address) {
  const key = `${run ?? DEFAULT_RUN}\0${stream}\0${address}`;
  return fnv1a64(utf8.encode(key));
}

/**
 * Daemon addresses from "a,b,c" (EIGENWATCH_ADDRESS with commas) or an iterable of strings:
 * each trimmed, empty entries dropped, repeats dropped (the first kept). Returns a new array.
 */
export function parseAddresses(spec) {
  const items = typeof spec === "string" ? spec.split(",") : Array.from(spec ?? []);
  const out = [];
  for (const item of items) {
    const a = String(item).trim();
    if (a && !out.includes(a)) out.push(a);
  }
  return out;
}

/**
 * The address that owns (run, stream) among `addresses` (an array, or a spec parseAddresses
 * takes). Throws RangeError when there is none.
 */
export function place(run, stream, addresses) {
  const addrs = typeof addresses === "string" ? parseAddresses(addresses) : addresses;
  if (!addrs || addrs.length === 0) throw new RangeError("no daemon address to place a stream on");
  let best = null;
  let bestH = -1n;
  let bestBytes = null;
  for (const a of addrs) {
    const h = score(run, stream, a);
    if (h > bestH) {
      best = a;
      bestH = h;
      bestBytes = null;
    } else if (h === bestH) {
      bestBytes ??= utf8.encode(best);
      const ab = utf8.encode(a);
      if (Buffer.compare(ab, bestBytes) < 0) {
        best = a;
        bestBytes = ab;
      }
    }
  }
  return best;
}
