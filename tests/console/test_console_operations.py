"""The console's sagas, raffles, user forms and overview charts against a running `points up`, in a real Chromium."""

from __future__ import annotations

import html
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from points.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from points.common.v1 import common_pb2
from points.redemption.v1 import redemption_pb2, redemption_pb2_grpc
from points.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from points_platform.client import acting_for, bearer
from tests.console.support import SCREENSHOTS, Client, csrf_of, hold_an_earning, sign_in_browser
from tests.console.webdriver import Browser
from tests.e2e.suite_process import SuiteProcess
from tests.support.wait import HANG_SECONDS, POLL_SECONDS

pytestmark = pytest.mark.slow

POINTS = common_pb2.CURRENCY_POINTS
# Ticket sales of the test's raffle close this long after it is created: time to prepare it and sell one ticket.
RAFFLE_OPEN_SECONDS = 8


def create_item(suite: SuiteProcess, spec: catalog_pb2.ItemSpec) -> catalog_pb2.Item:
    with grpc.insecure_channel(f"127.0.0.1:{suite.ports['catalog']}") as channel:
        reply = catalog_pb2_grpc.CatalogServiceStub(channel).CreateItem(
            catalog_pb2.CreateItemRequest(request_id=f"item-{uuid.uuid4()}", spec=spec),
            metadata=bearer(suite.tokens["admin"]), timeout=10,
        )
    item: catalog_pb2.Item = reply.item
    return item


def redeem(suite: SuiteProcess, user: str, item_id: str) -> redemption_pb2.Redemption:
    with grpc.insecure_channel(f"127.0.0.1:{suite.ports['redemption']}") as channel:
        reply = redemption_pb2_grpc.RedemptionServiceStub(channel).Redeem(
            redemption_pb2.RedeemRequest(request_id=f"redeem-{uuid.uuid4()}", user_id=user, item_id=item_id,
                                         quantity=1, region="US"),
            metadata=acting_for(bearer(suite.tokens["app"]), user), timeout=30,
        )
    redemption: redemption_pb2.Redemption = reply.redemption
    return redemption


def credit(suite: SuiteProcess, user: str, amount: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{suite.ports['wallet']}") as channel:
        wallet_pb2_grpc.WalletServiceStub(channel).Credit(
            wallet_pb2.CreditRequest(request_id=f"fund-{uuid.uuid4()}", user_id=user, currency=POINTS, amount=amount,
                                     reason="test funds", reference="TEST-1"),
            metadata=bearer(suite.tokens["admin"]), timeout=10,
        )


def a_failed_redemption(suite: SuiteProcess, user: str) -> redemption_pb2.Redemption:
    """A user without points redeems an item: the saga cancels, its failed step on record."""
    spec = catalog_pb2.ItemSpec(kind=catalog_pb2.ITEM_KIND_COSMETIC, title="Jade Frame",
                                price=common_pb2.Price(currency=POINTS, amount=900),
                                cosmetic=catalog_pb2.CosmeticAttributes(cosmetic_id="frame-jade"))
    failed = redeem(suite, user, create_item(suite, spec).item_id)
    assert failed.state == redemption_pb2.REDEMPTION_STATE_CANCELLED, failed
    return failed


def poll(check: Callable[[], bool], what: str) -> None:
    """Until `check()` holds (a condition, not a duration; the deadline bounds a hang)."""
    deadline = time.monotonic() + HANG_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"not reached: {what}"
        time.sleep(POLL_SECONDS)  # pacing between polls


def test_an_operator_finds_a_users_failed_redemption_and_its_cancelled_step(
    suite: SuiteProcess, browser: Browser
) -> None:
    failed = a_failed_redemption(suite, "broke")
    base = f"http://127.0.0.1:{suite.console_port}"
    sign_in_browser(browser, base)
    browser.get(base + "/users?user_id=broke")
    row = f"#redemption-{failed.redemption_id}"
    assert "CANCELLED (INSUFFICIENT_FUNDS)" in browser.text(f"{row} .state")
    assert re.search(r"\b[A-Z_]+: FAILED — ", browser.text(f"{row} .timeline")), browser.text(row)
    assert browser.text(f"{row} .timeline .FAILED")
    browser.screenshot(SCREENSHOTS / "user-failed-redemption.png")

    browser.get(base + "/sagas")  # by default: pending and cancelled, created in the last 24 hours
    assert "CANCELLED (INSUFFICIENT_FUNDS)" in browser.text(f"#saga-{failed.redemption_id} .state")
    assert browser.text(f"#saga-{failed.redemption_id} .timeline .FAILED")
    browser.screenshot(SCREENSHOTS / "sagas.png")
    browser.get(base + "/sagas?state=COMPLETED&age=3600")
    assert failed.redemption_id not in browser.page_text()


def test_a_bad_saga_filter_is_explained(suite: SuiteProcess) -> None:
    client = Client(suite.console_port)
    client.sign_in()
    status, _, page = client.request("/sagas?state=LOST&age=86400")
    assert status == 400 and "Choose a state and an age" in page and "Traceback" not in page


def test_an_operator_prepares_and_draws_a_raffle_and_sees_it_verified(suite: SuiteProcess, browser: Browser) -> None:
    raffle_id = f"raffle-{uuid.uuid4().hex[:8]}"
    close = Timestamp()
    close.FromSeconds(int(time.time()) + RAFFLE_OPEN_SECONDS)
    create_item(suite, catalog_pb2.ItemSpec(
        kind=catalog_pb2.ITEM_KIND_RAFFLE_TICKET, title="Summer raffle ticket",
        price=common_pb2.Price(currency=POINTS, amount=5),
        raffle=catalog_pb2.RaffleAttributes(raffle_id=raffle_id, draw_time=close, winners=1, sales_close_time=close),
    ))
    base = f"http://127.0.0.1:{suite.console_port}"
    sign_in_browser(browser, base)
    browser.get(base + "/raffles")
    assert "not prepared" in browser.text(f"#raffle-{raffle_id} .draw-state")
    browser.click(f"#raffle-{raffle_id} .prepare")
    browser.wait_for(lambda: browser.url.endswith(f"/raffles/{raffle_id}"), "the raffle's page")
    assert browser.text("#draw-state") == "PREPARED" and re.fullmatch(r"[0-9a-f]{64}", browser.text("#seed-hash"))
    commitment = browser.text("#seed-hash")

    items = {i.raffle.raffle_id: i for i in list_items(suite) if i.raffle.raffle_id}
    credit(suite, "lucky", 5)
    ticket = redeem(suite, "lucky", items[raffle_id].item_id)
    assert ticket.state == redemption_pb2.REDEMPTION_STATE_COMPLETED, ticket

    browser.get(base + "/raffles")
    browser.screenshot(SCREENSHOTS / "raffles.png")
    client = Client(suite.console_port)
    client.sign_in()
    _, _, page = client.request("/raffles")
    request_id = re.search(rf'name="request_id" value="([^"]+)">\s*<input type="hidden" name="raffle_id" '
                           rf'value="{raffle_id}"', page)
    assert request_id, page
    form = {"csrf": csrf_of(page), "request_id": request_id.group(1), "raffle_id": raffle_id}

    def drawn() -> bool:
        # Refused (DRAW_TIME_NOT_REACHED, shown on the page) until the draw time; a refusal stores nothing,
        # so the same form is sent again.
        status, url, answer = client.request("/raffles/draw", form)
        assert status == 200 or "DRAW_TIME_NOT_REACHED" in answer or "RAFFLE_NOT_CLOSED" in answer, answer
        return status == 200 and urllib.parse.urlparse(url).path == f"/raffles/{raffle_id}"

    poll(drawn, "the raffle drawn")

    browser.get(f"{base}/raffles/{raffle_id}")
    assert browser.text("#draw-state") == "DRAWN" and browser.text("#seed-hash") == commitment
    assert "it matches" in browser.text("#seed-check")
    assert browser.text("#ticket-count") == "1" and "lucky" in browser.text("#winners")
    assert browser.text("#picks .position") == "0"  # one ticket: pick 0 takes position 0
    assert "the same winners" in browser.text("#replay-check")
    browser.screenshot(SCREENSHOTS / "raffle-verification.png")


def list_items(suite: SuiteProcess) -> list[catalog_pb2.Item]:
    with grpc.insecure_channel(f"127.0.0.1:{suite.ports['catalog']}") as channel:
        reply = catalog_pb2_grpc.CatalogServiceStub(channel).ListItems(
            catalog_pb2.ListItemsRequest(page_size=500), metadata=bearer(suite.tokens["admin"]), timeout=10)
    return list(reply.items)


def test_an_operator_adjusts_points_with_a_ticket_and_a_missing_ticket_is_explained(
    suite: SuiteProcess, browser: Browser
) -> None:
    base = f"http://127.0.0.1:{suite.console_port}"
    sign_in_browser(browser, base)
    browser.get(base + "/users?user_id=ann")
    browser.type("#adjust-amount", "250")
    browser.type("#adjust-reason", "goodwill")
    browser.click("#adjust-submit")
    browser.wait_for(lambda: browser.find(".error") != "", "the refusal")
    assert "A ticket reference is required" in browser.page_text() and "Traceback" not in browser.page_text()
    browser.screenshot(SCREENSHOTS / "user-form-error.png")

    browser.get(base + "/users?user_id=ann")
    browser.type("#adjust-amount", "250")
    browser.type("#adjust-reason", "goodwill")
    browser.type("#adjust-ticket", "SUP-1042")
    browser.click("#adjust-submit")
    browser.wait_for(lambda: "Done: adjust" in browser.page_text(), "the adjustment")
    assert browser.text("#available-CURRENCY_POINTS") == "250"
    assert "SUP-1042" in browser.text("#ledger") and "[dana] goodwill" in browser.text("#ledger")
    browser.screenshot(SCREENSHOTS / "user-forms.png")


def available_points(client: Client, user: str) -> int:
    _, _, page = client.request(f"/users?user_id={user}")
    found = re.search(r'id="available-CURRENCY_POINTS">(\d+)<', page)
    assert found, page
    return int(found.group(1))


def user_form(client: Client, user: str, form_id: str) -> dict[str, str]:
    """The hidden fields of one of the user page's forms, as the page rendered them."""
    _, _, page = client.request(f"/users?user_id={user}")
    form = re.search(rf'<form method="post" action="[^"]+" id="{form_id}">(.*?)</form>', page, re.S)
    assert form, page
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(1)))


def test_user_forms_suspend_reinstate_forfeit_and_refuse_bad_input_and_a_forged_token(suite: SuiteProcess) -> None:
    client = Client(suite.console_port)
    client.sign_in()
    credit(suite, "bob", 300)

    adjust = {**user_form(client, "bob", "adjust"), "direction": "debit", "amount": "20", "reason": "dup credit",
              "ticket": "SUP-7"}
    status, _, page = client.request("/users/adjust", {**adjust, "csrf": adjust["csrf"][::-1]})
    assert status == 403 and "CSRF" in page and available_points(client, "bob") == 300  # nothing was done
    assert client.request("/users/adjust", adjust)[0] == 200
    assert client.request("/users/adjust", adjust)[0] == 200  # the same form again: the same request
    assert available_points(client, "bob") == 280

    for bad, sentence in [
        ({"amount": "-3"}, "Amount must be a whole number"), ({"direction": "steal"}, "credit or debit"),
        ({"ticket": "no spaces"}, "A ticket reference is required"), ({"reason": ""}, "A reason"),
    ]:
        status, _, page = client.request("/users/adjust", {**adjust, **bad})
        assert status == 400 and sentence in page and "Traceback" not in page, bad

    suspend = {**user_form(client, "bob", "standing"), "reason": "fake engagement", "ticket": "TS-9"}
    status, _, page = client.request("/users/suspend", suspend)
    assert status == 200 and ">SUSPENDED<" in page and "TS-9" in page and "dana" in page, page
    reinstate = {**user_form(client, "bob", "standing"), "reason": "appeal upheld", "ticket": "TS-10"}
    status, _, page = client.request("/users/reinstate", reinstate)
    assert status == 200 and ">ACTIVE<" in page and "appeal upheld" in page

    forfeit = user_form(client, "bob", "forfeit")
    status, _, page = client.request("/users/forfeit", {**forfeit, "amount": "5", "all": "on", "reason": "x",
                                                        "ticket": "T-1"})
    assert status == 400 and "not both" in page
    status, _, page = client.request("/users/forfeit", {**forfeit, "amount": "999999", "reason": "rule change",
                                                        "ticket": "T-2"})
    assert status == 400 and 'class="error"' in page and "Traceback" not in page  # the wallet's refusal, shown
    status, _, page = client.request("/users/forfeit", {**forfeit, "amount": "80", "reason": "rule change",
                                                        "ticket": "T-3"})
    assert status == 200 and available_points(client, "bob") == 200


def test_the_overview_charts_points_earned_per_hour_and_redemptions_by_state(
    suite: SuiteProcess, browser: Browser
) -> None:
    hold_an_earning(suite, "charted")  # its first likes are credited
    a_failed_redemption(suite, "charted")
    client = Client(suite.console_port)
    client.sign_in()

    def charted() -> bool:
        _, _, page = client.request("/")
        earned = [int(n) for n in re.findall(r'class="earned">(\d+)<', page)]
        cancelled = re.search(r'id="state-CANCELLED">(\d+)<', page)
        return sum(earned) > 0 and cancelled is not None and int(cancelled.group(1)) >= 1

    poll(charted, "both charts drawn")
    base = f"http://127.0.0.1:{suite.console_port}"
    sign_in_browser(browser, base)
    browser.get(base + "/")
    assert browser.find("#earned-per-hour") and browser.find("#redemptions-by-state")
    browser.screenshot(SCREENSHOTS / "overview-charts.png")


def test_a_rules_dry_run_shows_what_an_event_would_earn_under_the_edit_before_saving(
    suite: SuiteProcess, browser: Browser
) -> None:
    base = f"http://127.0.0.1:{suite.console_port}"
    sign_in_browser(browser, base)
    browser.get(base + "/rules")
    version = re.search(r"Current version (\d+)", browser.page_text())
    assert version
    rules = json.loads(browser.value("#rules"))
    [like] = [r for r in rules["activityRules"] if r["type"] == "ACTIVITY_TYPE_LIKE"]
    like["pointsPerAction"] = str(int(like["pointsPerAction"]) + 5)
    browser.clear("#rules")
    browser.type("#rules", json.dumps(rules))
    browser.type("#event_user_id", "previewer")
    browser.click("#event_type option[value='LIKE']")
    browser.type("#event_target_id", "video-preview")
    browser.type("#event_device_id", "phone-preview")
    browser.click("#dry-run-submit")
    browser.wait_for(lambda: bool(browser.find("#dry-run")), "the dry run's answer")
    proposed, current = int(browser.text("#proposed-points")), int(browser.text("#current-points"))
    assert proposed == current + 5, browser.text("#dry-run")
    assert f"BASE +{like['pointsPerAction']}" in browser.text("#dry-run-breakdown")
    browser.screenshot(SCREENSHOTS / "rules-dry-run.png")
    # Nothing was saved or recorded: the version is the same, and the edit is still in the editor.
    assert f"Current version {version.group(1)}," in browser.page_text()
    assert json.loads(browser.value("#rules")) == rules


def test_a_dry_run_with_bad_input_is_explained(suite: SuiteProcess) -> None:
    client = Client(suite.console_port)
    client.sign_in()
    _, _, page = client.request("/rules")
    text = html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S).group(1))  # type: ignore[union-attr]
    form = {"csrf": csrf_of(page), "action": "preview", "rules": text, "event_type": "LIKE"}
    status, _, answer = client.request("/rules", {**form, "event_user_id": ""})
    assert status == 400 and "The dry run needs a user id" in answer and "Traceback" not in answer
    status, _, answer = client.request("/rules", {**form, "event_user_id": "u1", "event_type": "NAP"})
    assert status == 400 and "Choose the activity type" in answer
    status, _, answer = client.request("/rules", {**form, "event_user_id": "u1", "rules": '{"dailyTotalCap": "-1"}'})
    assert status == 400 and 'class="error"' in answer and "Traceback" not in answer  # earning's refusal, shown
