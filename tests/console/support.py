"""What the console's tests share: the operator's account, a cookie-keeping HTTP client, signing in."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from points.earning.v1 import earning_pb2, earning_pb2_grpc
from points_platform.client import bearer
from tests.console.webdriver import Browser
from tests.e2e.suite_process import SuiteProcess

OPERATOR, PASSWORD = "dana", "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "console"
DEVICE_LIMIT = 4  # max_devices_per_account_per_day of the default rules: the next device is held


def console_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/signin", timeout=5) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


class Client:
    """A cookie-keeping HTTP client: what a browser without JavaScript does."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.base + path, data=data, timeout=30) as reply:
                return reply.status, reply.geturl(), reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.geturl(), error.read().decode()

    def sign_in(self) -> str:
        status, url, page = self.request("/signin", {"name": OPERATOR, "password": PASSWORD})
        assert status == 200 and url.endswith("/"), page
        return csrf_of(page)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def request_id_of(page: str, suffix: str = "") -> str:
    """The request id a rendered form carries (the first one ending in `suffix`)."""
    found = re.search(rf'name="request_id" value="(console-[^"]*{re.escape(suffix)})"', page)
    assert found, page
    return found.group(1)


def sign_in_browser(browser: Browser, base: str) -> None:
    """Sign the browser in unless its session cookie still holds."""
    browser.get(base + "/")
    if browser.url.endswith("/signin"):
        browser.type("#name", OPERATOR)
        browser.type("#password", PASSWORD)
        browser.click("#signin")
        browser.wait_for(lambda: browser.url.endswith("/"), "the overview")


def hold_an_earning(suite: SuiteProcess, user: str) -> None:
    """One account on more devices than the rules allow: its last like is held for review."""
    now = Timestamp()
    now.GetCurrentTime()
    with grpc.insecure_channel(f"127.0.0.1:{suite.ports['earning']}") as channel:
        stub = earning_pb2_grpc.EarningServiceStub(channel)
        for i in range(DEVICE_LIMIT + 1):
            event = earning_pb2.ActivityEvent(
                event_id=f"{user}-like-{i}", user_id=user, type=earning_pb2.ACTIVITY_TYPE_LIKE, occurred_at=now,
                region="US", device_id=f"{user}-phone-{i}", target_id=f"video-{i}",
            )
            reply = stub.RecordActivity(
                earning_pb2.RecordActivityRequest(event=event), metadata=bearer(suite.tokens["app"]), timeout=10
            )
    assert reply.result.status == earning_pb2.EVENT_STATUS_HELD_FOR_REVIEW
