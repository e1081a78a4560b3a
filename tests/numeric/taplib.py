"""Minimal TAP producer for the Python test programs (meson runs them with protocol: 'tap')."""
import sys
import traceback


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def case(self, name, fn, *args, **kw):
        """Runs fn(*args); a raised exception (AssertionError or any other) fails the case."""
        self.n += 1
        try:
            fn(*args, **kw)
            print(f"ok {self.n} - {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
            self.failed += 1
            print(f"not ok {self.n} - {name}", flush=True)
            text = f"{type(e).__name__}: {e}\n" + traceback.format_exc()
            for line in text.splitlines():
                print(f"# {line}", flush=True)
            # also on stderr: meson's failure summary (all CI prints) shows stderr, not TAP
            print(f"{name}: {text[:4000]}", file=sys.stderr, flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)


def close(got, want, rel, what="", abs_floor=0.0):
    """Asserts |got - want| <= rel * |want| (+ abs_floor); says both values when it fails."""
    got, want = float(got), float(want)
    tol = rel * abs(want) + abs_floor
    if not abs(got - want) <= tol:
        rerr = abs(got - want) / abs(want) if want else float("inf")
        raise AssertionError(f"{what}: got {got!r}, want {want!r} (rel err {rerr:.3e} > {rel:g})")


def raises(name, fn, *args, **kw):
    """Asserts fn raises an EwError whose wire name is `name`; returns the error."""
    try:
        fn(*args, **kw)
    except Exception as e:  # noqa: BLE001
        if getattr(e, "name", None) != name:
            raise AssertionError(f"expected {name}, got {type(e).__name__}: {e}") from e
        return e
    raise AssertionError(f"expected {name}, call succeeded")
