"""Render a report in real headless Chromium: screenshot, console errors, visible text.

Drives Chromium over the DevTools protocol on ``--remote-debugging-pipe``
(fd 3 in, fd 4 out, NUL-separated JSON), stdlib only: no websocket, no port,
no race with other browsers. Used by the browser test and ``make screenshot``
to prove the report renders offline with no script errors and shows what it
claims. Network is blocked at the protocol level, so a stray external fetch
would fail the page rather than silently succeed.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regress.errors import EnvironmentProblem

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]

DESKTOP = (1280, 900, 1.0, False)
PHONE = (390, 844, 2.0, True)


@dataclass
class PageResult:
    """What the browser saw: problems reported by the page and its visible text."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    text: str = ""
    screenshots: list[Path] = field(default_factory=list)
    evaluated: Any = None  # value of ``evaluate`` run after the last load


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        )
        if path:
            return path
    raise EnvironmentProblem("chromium not found", hint="apt-get install chromium")


class _Pipe:
    """One DevTools session over the pipe; collects events while waiting for replies."""

    def __init__(self, proc: subprocess.Popen[bytes], wfd: int, rfd: int, timeout: float) -> None:
        self.proc, self.wfd, self.rfd = proc, wfd, rfd
        self.deadline = time.monotonic() + timeout
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise EnvironmentProblem("chromium did not answer in time")
            ready, _, _ = select.select([self.rfd], [], [], min(left, 1.0))
            if not ready:
                if self.proc.poll() is not None:
                    raise EnvironmentProblem(f"chromium exited with {self.proc.returncode}")
                continue
            chunk = os.read(self.rfd, 1 << 20)
            if not chunk:
                raise EnvironmentProblem("chromium closed the DevTools pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        msg: dict[str, Any] = json.loads(raw)
        return msg

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise EnvironmentProblem(f"chromium: {method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 20.0) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = self._read_message()
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return
        raise EnvironmentProblem(f"chromium: no {method} within {timeout:.0f}s")


def _collect(events: list[dict[str, Any]], result: PageResult) -> None:
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            desc = d.get("exception", {}).get("description") or d.get("text", "")
            result.console_errors.append(f"exception: {desc}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            result.console_errors.append(f"console.{p['type']}: {args}")
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            result.console_errors.append(f"log: {p['entry'].get('text', '')}")
        elif m == "Network.loadingFailed":
            result.failed_requests.append(str(p.get("errorText", "")))
        elif m == "Network.requestWillBeSent":
            url = str(p.get("request", {}).get("url", ""))
            if not url.startswith(("file:", "data:", "about:")):
                result.external_requests.append(url)


def render_page(
    html_path: Path,
    shots: dict[str, tuple[int, int, float, bool]] | None = None,
    out_dir: Path | None = None,
    *,
    full_page: bool = True,
    top: int = 0,
    max_height: int = 16000,
    media: str = "",
    evaluate: str = "",
    timeout: float = 60.0,
) -> PageResult:
    """Load ``html_path`` offline, screenshot it per viewport, report what went wrong.

    ``shots`` maps a screenshot name (``desktop``) to (width, height, scale,
    mobile); PNGs are written to ``out_dir/<stem>-<name>.png``.
    """
    html_path = Path(html_path).resolve()
    shots = shots if shots is not None else {"desktop": DESKTOP}
    out_dir = Path(out_dir) if out_dir else html_path.parent
    result = PageResult()
    with tempfile.TemporaryDirectory(prefix="regress-chromium-") as profile:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()

        def child_fds() -> None:  # runs in the child: DevTools wants fds 3 and 4
            a, b = os.dup(to_child_r), os.dup(from_child_w)  # both above 4: no clobbering
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        argv = [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("REGRESS_DEBUG") else subprocess.DEVNULL,
            close_fds=False,  # fds 3/4 are set up by child_fds; ours are non-inheritable
            preexec_fn=child_fds,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        pipe = _Pipe(proc, to_child_w, from_child_r, timeout)
        try:
            target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
            sid = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.call(f"{domain}.enable", sid)
            # offline: any http(s) fetch fails and is recorded
            pipe.call(
                "Network.emulateNetworkConditions",
                sid,
                offline=True,
                latency=0,
                downloadThroughput=-1,
                uploadThroughput=-1,
            )
            if media:  # e.g. "print": check the print stylesheet without a PDF viewer
                pipe.call("Emulation.setEmulatedMedia", sid, media=media)
            for name, (w, h, scale, mobile) in shots.items():
                pipe.call(
                    "Emulation.setDeviceMetricsOverride",
                    sid,
                    width=w,
                    height=h,
                    deviceScaleFactor=scale,
                    mobile=mobile,
                )
                pipe.events = [e for e in pipe.events if e.get("method") != "Page.loadEventFired"]
                pipe.call("Page.navigate", sid, url=html_path.as_uri())
                pipe.wait_event("Page.loadEventFired")
                clip: dict[str, Any] = {}
                if full_page:
                    metrics = pipe.call("Page.getLayoutMetrics", sid)
                    size = metrics.get("cssContentSize") or metrics["contentSize"]
                    height = min(int(size["height"]) - top, max_height)
                    clip = {
                        "clip": {
                            "x": 0,
                            "y": top,
                            "width": w,
                            "height": max(height, 1),
                            "scale": 1,
                        },
                        "captureBeyondViewport": True,
                    }
                shot = pipe.call("Page.captureScreenshot", sid, format="png", **clip)
                out = out_dir / f"{html_path.stem}-{name}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(base64.b64decode(shot["data"]))
                result.screenshots.append(out)
            text = pipe.call(
                "Runtime.evaluate", sid, expression="document.body.innerText", returnByValue=True
            )
            result.text = str(text.get("result", {}).get("value", ""))
            if evaluate:
                value = pipe.call("Runtime.evaluate", sid, expression=evaluate, returnByValue=True)
                result.evaluated = value.get("result", {}).get("value")
            _collect(pipe.events, result)
            try:
                pipe.call("Browser.close")
            except EnvironmentProblem:
                pass
        finally:
            os.close(to_child_w)
            os.close(from_child_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return result


def _main(argv: list[str]) -> int:
    """``python -m support.chromium REPORT.html [OUT_DIR]`` (used by make screenshot)."""
    import sys

    if not 1 <= len(argv) <= 2:
        sys.stderr.write("usage: python -m support.chromium REPORT.html [OUT_DIR]\n")
        return 2
    out_dir = Path(argv[1]) if len(argv) > 1 else None
    seen = render_page(Path(argv[0]), {"desktop": DESKTOP, "phone": PHONE}, out_dir)
    for shot in seen.screenshots:
        sys.stdout.write(f"wrote {shot}\n")
    problems = seen.console_errors + seen.failed_requests + seen.external_requests
    for p in problems:
        sys.stderr.write(f"page problem: {p}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
