// eigenwatch: the JavaScript client of eigenwatchd (proto/PROTOCOL.md). This file only gathers
// the exports; README.md has a tour:
//   lib/client.js     Client (one async method per RPC method), Subscription, MultiSubscription
//   lib/fanout.js     a Client of several daemons: routing by placement, merging answers
//   lib/sender.js     Sender, the fail-open batching path for training loops
//   lib/placement.js  rendezvous placement of (run, stream) on several daemons
//   lib/wire.js       addresses, msgpack encoding and framing, rows as ingest fields
//   lib/connection.js one connection: msgids, pending replies, notifications (internal)
//   lib/errors.js     EigenwatchError
export { Client, MultiSubscription, Subscription, seriesOf } from "./lib/client.js";
export { CONNECTION, EigenwatchError, TIMEOUT } from "./lib/errors.js";
export { DEFAULT_RUN, fnv1a64, parseAddresses, place, score } from "./lib/placement.js";
export { Sender, producerId } from "./lib/sender.js";
export {
  DEFAULT_TCP,
  FrameReader,
  decode,
  defaultAddress,
  encode,
  encodeNotification,
  encodeRequest,
  encodeRows,
  parseAddress,
} from "./lib/wire.js";
