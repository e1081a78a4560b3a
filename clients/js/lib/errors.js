// The one error class of the client: what the daemon refused (a wire code from proto/PROTOCOL.md,
// "Errors") or what kept a request from being answered (the client's own codes below). Not for
// programming mistakes in the arguments: those throw TypeError/RangeError before anything is sent.

/** Codes the client makes itself; every other code is the daemon's wire code. */
export const CONNECTION = "CONNECTION"; // could not connect, or the connection ended before the reply
export const TIMEOUT = "TIMEOUT"; // no reply within the call's timeout (the connection stays open)

/**
 * An error answered by the daemon, or a request that could not be answered.
 * `code` is the wire code ("NO_SUCH_STREAM", "BAD_DTYPE", ...) or CONNECTION / TIMEOUT;
 * `message` is the daemon's sentence (or the client's, for its own codes).
 */
export class EigenwatchError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = "EigenwatchError";
    this.code = code;
  }

  /** The error of a reply's error field ({code, message}, or anything else the daemon sent). */
  static fromWire(err) {
    if (err && typeof err === "object" && !Array.isArray(err)) {
      return new EigenwatchError(String(err.code ?? "INTERNAL"), String(err.message ?? ""));
    }
    return new EigenwatchError("INTERNAL", `unexpected error value from the daemon: ${String(err)}`);
  }
}
