"""The operator console against a running `points up`: HTTP checks of its guards, and a real headless Chromium."""

from __future__ import annotations

import html
import re
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from points.earning.v1 import earning_pb2, earning_pb2_grpc
from points_platform.client import bearer
from tests.console.support import (
    OPERATOR,
    PASSWORD,
    SCREENSHOTS,
    Client,
    csrf_of,
    hold_an_earning,
    request_id_of,
    sign_in_browser,
)
from tests.console.webdriver import Browser
from tests.e2e.suite_process import SuiteProcess

pytestmark = pytest.mark.slow

def test_a_request_without_a_session_is_sent_to_sign_in(suite: SuiteProcess) -> None:
    for path in ("/", "/review", "/users?user_id=x", "/catalog", "/sagas", "/raffles", "/raffles/r1", "/rules"):
        _status, url, page = Client(suite.console_port).request(path)
        assert url.endswith("/signin") and 'name="password"' in page, path
    for path in ("/users/adjust", "/users/suspend", "/users/forfeit", "/raffles/prepare", "/raffles/draw"):
        _status, url, page = Client(suite.console_port).request(path, {"user_id": "x", "raffle_id": "r1"})
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
    assert status == 400 and "no valid request id" in page and "Traceback" not in page
    status, _, page = client.request(
        "/review", {"csrf": csrf, "held_earning_id": "no-such", "decision": "approve", "note": "checked",
                    "request_id": request_id_of(client.request("/review")[2])}
    )
    assert status == 400 and "HELD_EARNING_NOT_FOUND" in page and "Traceback" not in page
    catalog_request = request_id_of(client.request("/catalog")[2], ":create").replace(":create", ":end-1")
    status, _, page = client.request("/catalog/campaigns/end", {"csrf": csrf, "campaign_id": "no-such-campaign",
                                                                "request_id": catalog_request})
    assert status == 400 and "CAMPAIGN_NOT_FOUND" in page and "Traceback" not in page
    assert "admin-token" not in page and suite.tokens["admin"] not in page


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
    browser.wait_for(lambda: "Held earnings by reason" in browser.page_text(), "the overview")
    browser.screenshot(SCREENSHOTS / "overview.png")

    browser.get(base + "/users?user_id=roamer")
    before = int(browser.text("#available-CURRENCY_POINTS"))
    browser.get(base + "/review")
    assert "ACCOUNT_SHARING" in browser.page_text()
    browser.screenshot(SCREENSHOTS / "review.png")
    browser.click("input[data-user='roamer']")
    browser.type("#note", "same person, new phone")
    browser.click("#approve")
    browser.wait_for(lambda: "roamer" not in browser.page_text(), "the queue without roamer's earning")

    browser.get(base + "/users?user_id=roamer")
    after = int(browser.text("#available-CURRENCY_POINTS"))
    assert after > before
    browser.screenshot(SCREENSHOTS / "user.png")


def test_an_operator_creates_an_item_sees_it_quoted_and_ends_a_campaign(suite: SuiteProcess, browser: Browser) -> None:
    base = f"http://127.0.0.1:{suite.console_port}"
    sign_in_browser(browser, base)
    browser.get(base + "/catalog")
    for field, value in {"title": "Ruby Frame", "price_points": "321", "regions": "US, DE", "stock_total": "40",
                         "cosmetic_id": "frame-ruby"}.items():
        browser.type(f"#new-item #{field}", value)
    browser.click("#create")
    browser.wait_for(lambda: "/catalog/items/" in browser.url, "the new item's page")
    assert "1 unit costs 321 CURRENCY_POINTS" in browser.text("#quote")
    assert "40 in stock" in browser.text("#quote")
    browser.screenshot(SCREENSHOTS / "item.png")

    item_id = browser.url.rsplit("/", 1)[1]
    campaign_id = start_a_campaign(suite, item_id)
    browser.get(base + "/catalog")
    browser.screenshot(SCREENSHOTS / "catalog.png")
    browser.click(f"#campaign-{campaign_id} .end-now")
    browser.wait_for(lambda: "ended" in browser.text(f"#campaign-{campaign_id}"), "the campaign ended")


def start_a_campaign(suite: SuiteProcess, item_id: str) -> str:
    start, end = Timestamp(), Timestamp()
    start.GetCurrentTime()
    end.FromSeconds(start.seconds + 7 * 86400)
    spec = catalog_pb2.CampaignSpec(name="Ruby week", sponsor="Ruby Co", start_time=start, end_time=end,
                                    item_ids=[item_id],
                                    percent_off_bps=1000)
    with grpc.insecure_channel(f"127.0.0.1:{suite.ports['catalog']}") as channel:
        reply = catalog_pb2_grpc.CatalogServiceStub(channel).CreateCampaign(
            catalog_pb2.CreateCampaignRequest(request_id=f"campaign-{item_id}", spec=spec),
            metadata=bearer(suite.tokens["admin"]), timeout=10,
        )
    return str(reply.campaign.campaign_id)


def test_a_stale_item_edit_is_refused_and_shown(suite: SuiteProcess) -> None:
    client = Client(suite.console_port)
    csrf = client.sign_in()
    fields = {"title": "Onyx Frame", "price_points": "100", "regions": "", "stock_total": "", "cosmetic_id": "onyx"}
    create = {"csrf": csrf, **fields, "request_id": request_id_of(client.request("/catalog")[2], ":create")}
    status, url, page = client.request("/catalog/items", create)
    assert status == 200 and "/catalog/items/" in url, (url, page)
    assert client.request("/catalog/items", create)[1] == url  # the same form again: the same item
    path = urllib.parse.urlparse(url).path
    first = {"csrf": csrf, **fields, "expected_version": "1", "title": "Onyx Frame II",
             "request_id": request_id_of(client.request(path)[2])}
    assert client.request(path, first)[0] == 200
    stale = {**first, "title": "Onyx Frame (stale)", "request_id": request_id_of(client.request(path)[2])}
    status, _, page = client.request(path, stale)
    assert status == 400 and "VERSION" in page and "Onyx Frame II" in client.request(path)[2], page


def test_a_bad_item_form_says_what_is_wrong(suite: SuiteProcess) -> None:
    client = Client(suite.console_port)
    csrf = client.sign_in()
    status, _, page = client.request(
        "/catalog/items",
        {"csrf": csrf, "title": "", "price_points": "-5", "regions": "USA", "stock_total": "x", "cosmetic_id": "A B"},
    )
    assert status == 400
    for sentence in ("Title is required", "Price must be a whole number", "Regions are two-letter codes",
                     "Stock must be a whole number", "Cosmetic id is"):
        assert sentence in page
    assert "Traceback" not in page


def test_rules_are_shown_saved_as_a_new_version_and_bad_json_is_explained(suite: SuiteProcess) -> None:
    client = Client(suite.console_port)
    client.sign_in()
    status, _, page = client.request("/rules")
    assert status == 200 and "daily cap" in page
    csrf, version = csrf_of(page), re.search(r'name="expected_version" value="(\d+)"', page)
    assert version
    text = html.unescape(re.search(r'<textarea[^>]*>(.*?)</textarea>', page, re.S).group(1))  # type: ignore[union-attr]
    status, _, page = client.request("/rules", {"csrf": csrf, "expected_version": version.group(1), "rules": "{nope"})
    assert status == 400 and "not valid JSON" in page and "Traceback" not in page
    form = {"csrf": csrf, "expected_version": version.group(1), "rules": text, "request_id": request_id_of(page)}
    status, _, page = client.request("/rules", form)
    assert status == 200 and f"Saved as version {int(version.group(1)) + 1}" in page, page
    status, _, page = client.request("/rules", {**form, "request_id": request_id_of(page)})
    assert status == 400 and 'class="error"' in page  # a stale version is refused


def test_the_queue_shows_each_user_s_activity_today_beside_their_held_earnings(suite: SuiteProcess) -> None:
    hold_an_earning(suite, "busy-today")
    with grpc.insecure_channel(f"127.0.0.1:{suite.ports['earning']}") as channel:
        summary = earning_pb2_grpc.EarningServiceStub(channel).GetDailySummary(
            earning_pb2.GetDailySummaryRequest(user_id="busy-today"), metadata=bearer(suite.tokens["admin"]), timeout=30
        )
    assert summary.total_earned > 0 and summary.held_points > 0
    client = Client(suite.console_port)
    client.sign_in()
    _, _, queue = client.request("/review")
    row = re.search(r'data-user="busy-today".*?</tr>', queue, re.S)
    assert row, "the held earning is not in the queue"
    today = html.unescape(re.sub(r"<[^>]+>", "", row.group(0).split('class="today">', 1)[1]))
    assert today.startswith(f"earned {summary.total_earned} of {summary.total_cap}"), today
    assert f"held {summary.held_points}" in today and "like" in today, today
