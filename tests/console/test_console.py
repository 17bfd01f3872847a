"""The operator console against a running `points up`: HTTP checks of its guards, and a real headless Chromium."""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from points.earning.v1 import earning_pb2, earning_pb2_grpc
from points_platform.client import bearer
from tests.console.webdriver import Browser, ensure_chromium
from tests.e2e.suite_process import SuiteProcess

pytestmark = pytest.mark.slow

OPERATOR, PASSWORD = "dana", "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "console"
DEVICE_LIMIT = 4  # max_devices_per_account_per_day of the default rules: the next device is held


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SuiteProcess]:
    running = SuiteProcess(tmp_path_factory.mktemp("console") / "state")
    running.start()
    try:
        subprocess.run(
            [sys.executable, "-m", "points_console", "add-operator", "--state-dir", str(running.state_dir),
             OPERATOR, "--password-stdin"],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )
        deadline = time.monotonic() + 60
        while not _answers(running.console_port):
            assert time.monotonic() < deadline, "the console did not answer"
            time.sleep(0.05)  # pacing between polls of the console's sign-in page
        yield running
    finally:
        running.kill_all()


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/signin", timeout=5) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


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


def test_a_request_without_a_session_is_sent_to_sign_in(suite: SuiteProcess) -> None:
    for path in ("/", "/review", "/users?user_id=x", "/catalog"):
        status, url, page = Client(suite.console_port).request(path)
        assert url.endswith("/signin") and 'name="password"' in page, path


def test_a_wrong_password_is_refused_with_a_readable_error(suite: SuiteProcess) -> None:
    status, _, page = Client(suite.console_port).request("/signin", {"name": OPERATOR, "password": "guess"})
    assert status == 401 and "wrong password" in page


def test_a_forged_csrf_token_is_refused(suite: SuiteProcess) -> None:
    hold_an_earning(suite, "forged")
    client = Client(suite.console_port)
    real = client.sign_in()
    _, _, queue = client.request("/review")
    held_id = re.search(r'name="held_earning_id" value="([^"]+)"', queue)
    assert held_id
    form = {"held_earning_id": held_id.group(1), "decision": "approve", "note": "ok"}
    status, _, page = client.request("/review", {**form, "csrf": real[::-1]})
    assert status == 403 and "CSRF" in page
    assert held_id.group(1) in client.request("/review")[2]  # still waiting: nothing was done
    status, _, page = client.request("/review", form)
    assert status == 403


def test_bad_input_shows_a_readable_error_not_a_trace(suite: SuiteProcess) -> None:
    client = Client(suite.console_port)
    csrf = client.sign_in()
    status, _, page = client.request("/review", {"csrf": csrf, "decision": "approve", "note": "x"})
    assert status == 400 and "Select at least one held earning." in page
    status, _, page = client.request("/review", {"csrf": csrf, "held_earning_id": "no-such", "decision": "approve"})
    assert status == 400 and "A note of 1-500 characters is required." in page
    status, _, page = client.request(
        "/review", {"csrf": csrf, "held_earning_id": "no-such", "decision": "approve", "note": "checked"}
    )
    assert status == 400 and 'class="error"' in page and "Traceback" not in page
    status, _, page = client.request("/catalog", {"csrf": csrf, "campaign_id": "no-such-campaign"})
    assert status == 400 and 'class="error"' in page and "Traceback" not in page
    assert "admin-token" not in page and suite.tokens["admin"] not in page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ensure_chromium()
    running = Browser()
    yield running
    running.quit()


def test_an_operator_approves_a_held_earning_and_sees_the_balance_change(
    suite: SuiteProcess, browser: Browser
) -> None:
    hold_an_earning(suite, "roamer")
    base = f"http://127.0.0.1:{suite.console_port}"
    browser.get(base + "/review")
    assert browser.url.endswith("/signin")
    browser.screenshot(SCREENSHOTS / "signin.png")
    browser.type("#name", OPERATOR)
    browser.type("#password", PASSWORD)
    browser.click("#signin")
    assert "Held earnings by reason" in browser.page_text()
    browser.screenshot(SCREENSHOTS / "overview.png")

    browser.get(base + "/users?user_id=roamer")
    before = int(browser.text("#available-CURRENCY_POINTS"))
    browser.get(base + "/review")
    assert "ACCOUNT_SHARING" in browser.page_text()
    browser.screenshot(SCREENSHOTS / "review.png")
    browser.click("input[data-user='roamer']")
    browser.type("#note", "same person, new phone")
    browser.click("#approve")
    assert browser.url.endswith("/review")

    browser.get(base + "/users?user_id=roamer")
    after = int(browser.text("#available-CURRENCY_POINTS"))
    assert after > before
    browser.screenshot(SCREENSHOTS / "user.png")
    browser.get(base + "/catalog")
    assert "Catalog" in browser.page_text()
    browser.screenshot(SCREENSHOTS / "catalog.png")
