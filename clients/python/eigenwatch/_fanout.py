"""Reads and writes across several daemons (proto/PROTOCOL.md, "Many daemons"), for a Client made
with several addresses: a request that names one stream goes to the daemon placement gives it
(eigenwatch.placement.place); a request about many streams goes to every daemon and the answers
are merged — `runs` (a run's streams and steps over all daemons), `list`, `history` (each
stream's series from its daemon), `alerts` (rules, and events by time), `drop` of a run,
`snapshot` and `stats` (each daemon's under its address). A daemon that cannot be reached makes the call raise: a
read across daemons never answers from some of them as if they were all."""
import queue
import threading
from typing import Any, Dict, List, Optional

from .errors import EigenwatchError
from .placement import place

_SUBSCRIBE_POLL = 0.2


def _by_stream(members, addrs, method, params, timeout):
    """The call of a request naming one stream, on its daemon."""
    owner = place(params.get("run"), params["stream"], addrs)
    return members[owner].call(method, _timeout=timeout, **params)


def _merge_runs(answers: List[Dict[str, Any]]) -> Dict[str, Any]:
    runs: Dict[str, Dict[str, Any]] = {}
    for a in answers:
        for r in a["runs"]:
            m = runs.setdefault(r["run"], {"run": r["run"], "streams": [],
                                           "last_activity": None})
            m["streams"] = sorted(set(m["streams"]) | set(r.get("streams", [])))
            for k, pick in (("first_step", min), ("last_step", max), ("last_activity", max)):
                v = r.get(k)
                if v is not None:
                    m[k] = v if m.get(k) is None else pick(m[k], v)
    return {"runs": [runs[k] for k in sorted(runs)]}


def _merge_alerts(answers, events: Optional[int]) -> Dict[str, Any]:
    alerts = [x for a in answers for x in a.get("alerts", [])]
    alerts.sort(key=lambda x: (x.get("run") or "", x.get("stream") or "", x.get("rule") or ""))
    out: Dict[str, Any] = {"alerts": alerts}
    if events:
        ev = sorted((e for a in answers for e in a.get("events", [])),
                    key=lambda e: e.get("time") or 0)
        out["events"] = ev[-events:]
    return out


def call(members: Dict[str, Any], addrs: List[str], method: str, params: Dict[str, Any],
         timeout: Optional[float]) -> Any:
    """The answer to one request across the daemons `members` (address → single-daemon Client),
    placed over `addrs` (see the module's doc)."""
    if method == "history" and "streams" in params and "stream" not in params:
        names = [params["streams"]] if isinstance(params["streams"], str) else params["streams"]
        groups: Dict[str, List[str]] = {}
        for s in names:
            groups.setdefault(place(params.get("run"), s, addrs), []).append(s)
        series = []
        for a, ss in groups.items():
            series += members[a].call("history", _timeout=timeout,
                                      **dict(params, streams=ss))["series"]
        return {"series": series}
    if "stream" in params and method != "subscribe":
        return _by_stream(members, addrs, method, params, timeout)
    if method == "drop":  # a whole run, on every daemon: one holding none of it counts 0
        answers, missing = [], 0
        for a in addrs:
            try:
                answers.append(members[a].call(method, _timeout=timeout, **params))
            except EigenwatchError as e:
                if e.code != "NO_SUCH_STREAM":
                    raise
                missing += 1
                last = e
        if missing == len(addrs):
            raise last
        return {"run": params.get("run"), "dropped": True,
                "streams": sum(a.get("streams", 0) for a in answers)}
    answers = [members[a].call(method, _timeout=timeout, **params) for a in addrs]
    if method == "runs":
        return _merge_runs(answers)
    if method == "list":
        streams = [s for a in answers for s in a["streams"]]
        streams.sort(key=lambda s: (s.get("run") or "", s["stream"]))
        return {"streams": streams}
    if method == "history":
        series = [s for a in answers for s in a["series"]]
        series.sort(key=lambda s: (s.get("run") or "", s["stream"], s["metric"]))
        return {"series": series}
    if method == "alerts":
        return _merge_alerts(answers, params.get("events"))
    if method == "snapshot":
        return {"streams": sum(a["streams"] for a in answers),
                "bytes": sum(a["bytes"] for a in answers),
                "seconds": max(a["seconds"] for a in answers)}
    if method == "stats":  # each daemon's counters under its address (as the CLI prints them)
        return dict(zip(addrs, answers))
    return answers[0]  # ping, metrics, auth: the same answer from each (all were asked)


class MultiSubscription:
    """Subscription's interface over one subscription per daemon: next(timeout) gives the next
    notification from any of them (each subscription reconnects by itself, on its thread)."""

    def __init__(self, addrs, params, timeout, make):
        self.address = ",".join(addrs)
        self._subs = [make(a, dict(params), timeout) for a in addrs]
        self._q: "queue.Queue" = queue.Queue(maxsize=100000)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._pump, args=(s,), daemon=True,
                                          name="eigenwatch-subscription") for s in self._subs]
        for t in self._threads:
            t.start()

    @property
    def reconnects(self) -> int:
        return sum(s.reconnects for s in self._subs)

    def _pump(self, sub):
        while not self._stop.is_set():
            try:
                item = sub.next(timeout=_SUBSCRIBE_POLL)
            except Exception:  # noqa: BLE001 - the subscription retries by itself
                self._stop.wait(_SUBSCRIBE_POLL)
                continue
            if item is not None:
                self._q.put(item)

    def next(self, timeout: Optional[float] = None):
        """The next (kind, payload) from any daemon, or None after `timeout` seconds."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in self._subs:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
