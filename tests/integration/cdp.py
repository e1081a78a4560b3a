"""A headless Chromium (Debian `chromium`) driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: JSON messages ending in NUL on fds 3 and 4), for the page's tests:
open a URL, evaluate JavaScript, take a screenshot, and collect every console error, uncaught
exception and failed load the page produced. No websocket library is needed."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Browser:
    def __init__(self, width=1400, height=1000):
        exe = chromium_path()
        if not exe:
            raise RuntimeError("chromium is not installed (scripts/setup.sh installs it)")
        self.profile = tempfile.mkdtemp(prefix="ew-chromium-")
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()
        # the browser reads commands on fd 3 and writes answers on fd 4: set up in the child
        # (copies first: a pipe end may itself be 3 or 4), and every descriptor above them
        # closed there (pass_fds cannot name 3 and 4 when they are not open in this process).
        def fds():
            r, w = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(r, 3)
            os.dup2(w, 4)
            for fd in (3, 4):  # dup2 onto itself (a copy that landed on 3 or 4) keeps CLOEXEC
                os.set_inheritable(fd, True)
            os.closerange(5, os.sysconf("SC_OPEN_MAX"))
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "--hide-scrollbars", "about:blank"],
            preexec_fn=fds, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.profile, "stderr"), "w"))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.session = None
        self.errors = []   # console errors, exceptions and failed loads, as strings
        self.console = []  # every console message

    def close(self):
        try:
            self.send("Browser.close", session=False, wait=False)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, timeout):
        deadline = time.time() + timeout
        while b"\0" not in self._buf:
            import select
            left = deadline - time.time()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                with open(os.path.join(self.profile, "stderr")) as f:
                    tail = [ln for ln in f.read().splitlines() if "dbus" not in ln][-15:]
                raise EOFError("chromium went away; its stderr ends:\n" + "\n".join(tail))
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def _event(self, m):
        method, p = m.get("method"), m.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            self.console.append((p["type"], text))
            if p["type"] in ("error", "assert"):
                self.errors.append(f"console.{p['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.errors.append("exception: " + d.get("exception", {}).get("description",
                                                                         d.get("text", "")))
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.errors.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")

    def send(self, method, params=None, session=True, wait=True, timeout=60):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        if not wait:
            return None
        while True:
            m = self._read(timeout)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self._event(m)

    def pump(self, seconds):
        """Handles events for `seconds` (console messages, exceptions)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                self._event(self._read(deadline - time.time()))
            except TimeoutError:
                return

    def open(self, url):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        for dom in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.send(dom)
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'",
                      what=f"{url} loaded")

    def eval(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expr, timeout=60, what=None):
        """Polls `expr` until it is truthy (an exception counts as not yet: the page may still
        be loading); returns its value."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.eval(f"(() => {{ try {{ return ({expr}); }} catch (e) {{ return null; }} }})()")
            if v:
                return v
            self.pump(0.25)
        raise TimeoutError(f"the page never satisfied {what or expr}")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport":
                                                    True})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
