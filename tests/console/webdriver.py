"""A real headless Chromium driven through chromedriver's W3C WebDriver HTTP API.

A handful of calls, no client library."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from points_platform.embedded_pg import free_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,900",
]


def ensure_chromium() -> None:
    """Fresh machines and CI start without a browser: install Debian's Chromium and its driver when missing."""
    if Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists():
        return
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"],
        check=True, env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


class Browser:
    def __init__(self) -> None:
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="points-console-chromium-")
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while not self._is_ready():
            assert self.driver.poll() is None and time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.05)  # pacing between polls of the driver's /status
        options = {"binary": CHROMIUM, "args": [*FLAGS, f"--user-data-dir={self.profile}"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _is_ready(self) -> bool:
        try:
            return bool(self._call("GET", "/status")["ready"])
        except (urllib.error.URLError, ConnectionError):
            return False

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())["value"]

    def _session(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if body is None and method == "POST":
            body = {}
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self._session("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return str(self._session("GET", "/url"))

    def find(self, css: str) -> str:
        found = self._session("POST", "/element", {"using": "css selector", "value": css})
        assert isinstance(found, dict) and ELEMENT in found, f"{css}: {found}"
        return str(found[ELEMENT])

    def type(self, css: str, text: str) -> None:
        self._session("POST", f"/element/{self.find(css)}/value", {"text": text})

    def clear(self, css: str) -> None:
        self._session("POST", f"/element/{self.find(css)}/clear")

    def value(self, css: str) -> str:
        return str(self._session("GET", f"/element/{self.find(css)}/property/value"))

    def click(self, css: str) -> None:
        self._session("POST", f"/element/{self.find(css)}/click")

    def text(self, css: str) -> str:
        return str(self._session("GET", f"/element/{self.find(css)}/text"))

    def wait_for(self, check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
        """A click that submits a form may return before the next page has loaded: wait for what it leads to."""
        deadline = time.monotonic() + seconds
        while not self._holds(check):
            assert time.monotonic() < deadline, f"the page never showed: {what}"
            time.sleep(0.05)  # pacing between polls of the page

    @staticmethod
    def _holds(check: Callable[[], bool]) -> bool:
        try:
            return check()
        except urllib.error.HTTPError:  # e.g. "no such element" while the old page is being replaced
            return False

    def page_text(self) -> str:
        return self.text("body")

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._session("GET", "/screenshot")))

    def quit(self) -> None:
        try:
            self._session("DELETE", "")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)
