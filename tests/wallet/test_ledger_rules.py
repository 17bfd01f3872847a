"""Credit, debit, gifts, payouts, history and idempotency over real gRPC + PostgreSQL."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import text

from points.wallet.v1 import wallet_pb2 as pb
from tests.wallet.conftest import COINS, DIAMONDS, POINTS, Client
from wallet.config import WalletSettings

OK = grpc.StatusCode
FP = OK.FAILED_PRECONDITION


async def test_credit_creates_account_and_balanced_transaction(wallet: Client) -> None:
    reply = await wallet.call("Credit", "earning")(
        pb.CreditRequest(
            request_id="c-1", user_id="alice", currency=POINTS, amount=70, reason="watch_time", reference="ev-1"
        )
    )
    assert (reply.balance.available, reply.balance.held) == (70, 0)
    legs = {(p.account, p.amount) for p in reply.transaction.postings}
    assert legs == {("user:alice", 70), ("system:points_issuance", -70)}
    assert reply.transaction.kind == pb.TRANSACTION_KIND_CREDIT
    assert await wallet.balance("alice") == (70, 0)


async def test_same_request_replays_and_different_params_fail(wallet: Client) -> None:
    credit = wallet.call("Credit", "earning")
    request = pb.CreditRequest(request_id="c-idem", user_id="bob", currency=POINTS, amount=5, reason="like")
    first = await credit(request)
    again = await credit(request)
    assert again == first
    assert await wallet.balance("bob") == (5, 0)
    changed = pb.CreditRequest(request_id="c-idem", user_id="bob", currency=POINTS, amount=6, reason="like")
    await wallet.expect_error(credit(changed), OK.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


@pytest.mark.parametrize(
    ("caller", "currency", "reference", "code", "reason"),
    [
        ("payments", POINTS, "p", FP, "CURRENCY_NOT_ALLOWED"),
        ("earning", COINS, "p", FP, "CURRENCY_NOT_ALLOWED"),
        ("admin", COINS, "p", FP, "CURRENCY_NOT_ALLOWED"),
        ("admin", DIAMONDS, "p", FP, "CURRENCY_NOT_ALLOWED"),
        ("payments", DIAMONDS, "p", FP, "CURRENCY_NOT_ALLOWED"),
        ("payments", COINS, "", OK.INVALID_ARGUMENT, "PAYMENT_REFERENCE_REQUIRED"),
        ("admin", POINTS, "", OK.INVALID_ARGUMENT, "ADJUSTMENT_REFERENCE_REQUIRED"),
        ("redemption", POINTS, "", OK.INVALID_ARGUMENT, "REFERENCE_REQUIRED"),
        ("app", POINTS, "p", OK.PERMISSION_DENIED, "CALLER_NOT_ALLOWED"),
        ("earning", 7, "p", OK.INVALID_ARGUMENT, "INVALID_FIELD"),
    ],
)
async def test_credit_currency_policy(
    wallet: Client, caller: str, currency: int, reference: str, code: grpc.StatusCode, reason: str
) -> None:
    request = pb.CreditRequest(
        request_id=f"cp-{caller}-{currency}-{reference}",
        user_id="carol",
        currency=currency,  # type: ignore[arg-type]
        amount=1,
        reference=reference,
    )
    await wallet.expect_error(wallet.call("Credit", caller)(request), code, reason)


async def test_a_points_credit_outside_earning_names_its_reference(wallet: Client) -> None:
    request = pb.CreditRequest(request_id="ref-less", user_id="refunded", currency=POINTS, amount=4, reason="refund")
    await wallet.expect_error(wallet.call("Credit", "redemption")(request), OK.INVALID_ARGUMENT, "REFERENCE_REQUIRED")
    await wallet.expect_error(wallet.call("Credit", "admin")(request), OK.INVALID_ARGUMENT,
                              "ADJUSTMENT_REFERENCE_REQUIRED")
    await wallet.call("Credit", "earning")(request)  # activity: the rule is its reason
    named = pb.CreditRequest(request_id="ref-named", user_id="refunded", currency=POINTS, amount=4, reason="refund",
                             reference="redemption-1")
    reply = await wallet.call("Credit", "redemption")(named)
    assert reply.transaction.reference == "redemption-1"
    assert await wallet.balance("refunded") == (8, 0)


async def test_allowed_credits(wallet: Client) -> None:
    for caller, currency in (("earning", POINTS), ("admin", POINTS), ("redemption", POINTS), ("payments", COINS)):
        await wallet.call("Credit", caller)(
            pb.CreditRequest(request_id=f"ok-{caller}", user_id="dave", currency=currency, amount=2, reference="ref")
        )
    assert await wallet.balance("dave") == (6, 0)
    assert await wallet.balance("dave", COINS) == (2, 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 0), ("amount", -5), ("amount", 10**16), ("user_id", ""), ("user_id", "a b"), ("request_id", ""),
        ("reason", "x" * 65), ("reference", "\x00"),
    ],
)
async def test_credit_rejects_bad_input(wallet: Client, field: str, value: object) -> None:
    fields = {"request_id": "bad-1", "user_id": "erin", "currency": POINTS, "amount": 1, "reason": "", "reference": ""}
    fields[field] = value
    await wallet.expect_error(
        wallet.call("Credit", "earning")(pb.CreditRequest(**fields)), OK.INVALID_ARGUMENT, "INVALID_FIELD"  # type: ignore[arg-type]
    )


async def test_debit_rules(wallet: Client) -> None:
    await wallet.fund("frank", 10)
    debit = wallet.call("Debit", "redemption")
    reply = await debit(
        pb.DebitRequest(request_id="d-1", user_id="frank", currency=POINTS, amount=4, reason="redemption")
    )
    assert reply.balance.available == 6
    postings = {(p.account, p.amount) for p in reply.transaction.postings}
    assert postings == {("user:frank", -4), ("system:points_redemption", 4)}
    await wallet.expect_error(
        debit(pb.DebitRequest(request_id="d-2", user_id="frank", currency=POINTS, amount=7)), FP, "INSUFFICIENT_FUNDS"
    )
    await wallet.expect_error(
        debit(pb.DebitRequest(request_id="d-3", user_id="nobody", currency=COINS, amount=1)), FP, "INSUFFICIENT_FUNDS"
    )
    await wallet.expect_error(
        debit(pb.DebitRequest(request_id="d-4", user_id="frank", currency=DIAMONDS, amount=1)),
        FP,
        "CURRENCY_NOT_ALLOWED",
    )
    await wallet.expect_error(
        wallet.call("Debit", "earning")(pb.DebitRequest(request_id="d-5", user_id="frank", currency=POINTS, amount=1)),
        OK.PERMISSION_DENIED,
        "CALLER_NOT_ALLOWED",
    )
    assert await wallet.balance("frank") == (6, 0)


async def test_gift_converts_coins_to_diamonds_in_one_transaction(wallet: Client) -> None:
    await wallet.fund("viewer", 101, COINS)
    reply = await wallet.call("SendGift", "app")(
        pb.SendGiftRequest(request_id="g-1", sender_id="viewer", creator_id="star", coins=101, gift_id="rose")
    )
    assert reply.diamonds_credited == 50 and reply.gift_rate_bps == 5000  # floor(101 * 0.5)
    assert reply.sender_balance.available == 0 and await wallet.balance("star", DIAMONDS) == (50, 0)
    legs = sorted((p.account, p.currency, p.amount) for p in reply.transaction.postings)
    assert legs == sorted(
        [
            ("user:viewer", COINS, -101),
            ("system:gift_conversion", COINS, 50),
            ("system:gift_revenue", COINS, 51),
            ("system:gift_conversion", DIAMONDS, -50),
            ("user:star", DIAMONDS, 50),
        ]
    )
    assert reply.transaction.reference == "rose"
    gift = wallet.call("SendGift", "app")
    await wallet.expect_error(
        gift(pb.SendGiftRequest(request_id="g-2", sender_id="viewer", creator_id="star", coins=10)),
        FP,
        "INSUFFICIENT_FUNDS",
    )
    await wallet.expect_error(
        gift(pb.SendGiftRequest(request_id="g-3", sender_id="star", creator_id="star", coins=10)),
        OK.INVALID_ARGUMENT,
        "SELF_GIFT",
    )
    await wallet.expect_error(
        gift(pb.SendGiftRequest(request_id="g-4", sender_id="viewer", creator_id="star", coins=1)),
        OK.INVALID_ARGUMENT,
        "GIFT_TOO_SMALL",
    )
    await wallet.expect_error(
        wallet.call("SendGift", "earning")(
            pb.SendGiftRequest(request_id="g-5", sender_id="viewer", creator_id="star", coins=2)
        ),
        OK.PERMISSION_DENIED,
        "CALLER_NOT_ALLOWED",
    )


async def test_points_never_become_diamonds_or_cash(wallet: Client) -> None:
    await wallet.fund("pointsonly", 1000)
    await wallet.expect_error(
        wallet.call("SendGift", "app")(
            pb.SendGiftRequest(request_id="pg-1", sender_id="pointsonly", creator_id="star2", coins=100)
        ),
        FP,
        "INSUFFICIENT_FUNDS",
    )
    await wallet.expect_error(
        wallet.call("RequestPayout", "app")(
            pb.RequestPayoutRequest(request_id="pp-1", creator_id="pointsonly", diamonds=10)
        ),
        FP,
        "INSUFFICIENT_FUNDS",
    )
    for caller in ("earning", "redemption", "admin"):
        await wallet.expect_error(
            wallet.call("Credit", caller)(
                pb.CreditRequest(
                    request_id=f"pc-{caller}", user_id="pointsonly", currency=DIAMONDS, amount=1, reference="x"
                )
            ),
            FP,
            "CURRENCY_NOT_ALLOWED",
        )
    await wallet.expect_error(
        wallet.call("Reserve", "redemption")(
            pb.ReserveRequest(request_id="pr-1", user_id="star", currency=DIAMONDS, amount=1)
        ),
        FP,
        "CURRENCY_NOT_ALLOWED",
    )


async def test_payout_success_and_failure(wallet: Client) -> None:
    await wallet.fund("fan", 4000, COINS)
    await wallet.call("SendGift", "app")(
        pb.SendGiftRequest(request_id="pg-f", sender_id="fan", creator_id="maker", coins=4000)
    )
    assert await wallet.balance("maker", DIAMONDS) == (2000, 0)
    request = wallet.call("RequestPayout", "app")
    paid = (await request(pb.RequestPayoutRequest(request_id="po-1", creator_id="maker", diamonds=1500))).payout
    assert (paid.state, paid.cash_value_minor, paid.cash_currency, paid.cash_minor_per_thousand_diamonds) == (
        pb.PAYOUT_STATE_PENDING, 750, "USD", 500
    )
    assert await wallet.balance("maker", DIAMONDS) == (500, 1500)
    await wallet.expect_error(
        request(pb.RequestPayoutRequest(request_id="po-2", creator_id="maker", diamonds=501)), FP, "INSUFFICIENT_FUNDS"
    )
    complete = wallet.call("CompletePayout", "payments")
    done = (await complete(pb.CompletePayoutRequest(request_id="pc-1", payout_id=paid.payout_id, success=True))).payout
    assert done.state == pb.PAYOUT_STATE_COMPLETED and done.transaction_id
    assert await wallet.balance("maker", DIAMONDS) == (500, 0)
    again = await complete(pb.CompletePayoutRequest(request_id="pc-1", payout_id=paid.payout_id, success=True))
    assert again.payout == done
    await wallet.expect_error(
        complete(pb.CompletePayoutRequest(request_id="pc-2", payout_id=paid.payout_id, success=False)),
        FP,
        "PAYOUT_ALREADY_COMPLETED",
    )
    # The payout hold cannot be resolved through the redemption RPCs.
    await wallet.expect_error(
        wallet.call("ReleaseHold", "redemption")(pb.ReleaseHoldRequest(request_id="ph-1", hold_id=paid.hold_id)),
        FP,
        "HOLD_MANAGED_BY_PAYOUT",
    )
    failing = (await request(pb.RequestPayoutRequest(request_id="po-3", creator_id="maker", diamonds=500))).payout
    failed = (
        await complete(
            pb.CompletePayoutRequest(
                request_id="pc-3", payout_id=failing.payout_id, success=False, failure_reason="bank"
            )
        )
    ).payout
    assert (failed.state, failed.failure_reason) == (pb.PAYOUT_STATE_FAILED, "bank")
    assert await wallet.balance("maker", DIAMONDS) == (500, 0)
    await wallet.expect_error(
        complete(pb.CompletePayoutRequest(request_id="pc-4", payout_id="payout_nope", success=True)),
        OK.NOT_FOUND,
        "PAYOUT_NOT_FOUND",
    )
    await wallet.expect_error(
        wallet.call("CompletePayout", "app")(pb.CompletePayoutRequest(request_id="pc-5", payout_id=failing.payout_id)),
        OK.PERMISSION_DENIED,
        "CALLER_NOT_ALLOWED",
    )
    async with wallet.engine.connect() as conn:
        paid_out = (
            await conn.execute(text("SELECT sum(amount) FROM postings WHERE account = 'system:payouts'"))
        ).scalar()
    assert paid_out == 1500


async def test_history_newest_first_with_pages_and_balance_after(wallet: Client) -> None:
    for i in range(1, 6):
        await wallet.fund("gina", i)
    await wallet.fund("gina", 9, COINS)
    await wallet.call("Debit", "redemption")(
        pb.DebitRequest(
            request_id="h-d", user_id="gina", currency=POINTS, amount=3, reason="redemption", reference="r-9"
        )
    )
    listing = wallet.call("ListTransactions", "app", user="gina")
    seen: list[pb.LedgerEntry] = []
    token = ""
    while True:
        page = await listing(pb.ListTransactionsRequest(user_id="gina", currency=POINTS, page_size=2, page_token=token))
        seen.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    assert [e.amount for e in seen] == [-3, 5, 4, 3, 2, 1]
    assert [e.balance_after for e in seen] == [12, 15, 10, 6, 3, 1]
    assert (seen[0].reason, seen[0].reference, seen[0].kind) == ("redemption", "r-9", pb.TRANSACTION_KIND_DEBIT)
    every = await listing(pb.ListTransactionsRequest(user_id="gina"))
    assert len(every.entries) == 7 and not every.next_page_token
    await wallet.expect_error(
        listing(pb.ListTransactionsRequest(user_id="gina", page_token="garbage!")),
        OK.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )


async def test_balance_lists_every_currency(wallet: Client) -> None:
    reply = await wallet.call("GetBalance", "app", user="newcomer")(pb.GetBalanceRequest(user_id="newcomer"))
    balances = [(b.currency, b.available, b.held) for b in reply.balances]
    assert balances == [(POINTS, 0, 0), (COINS, 0, 0), (DIAMONDS, 0, 0)]


async def test_the_app_reads_only_the_user_it_acts_for(wallet: Client) -> None:
    """docs/architecture.md, Policy: user-facing reads are scoped to the user. The app backend names the user a call
    acts for; reading anyone else is PERMISSION_DENIED. Internal callers are not scoped."""
    await wallet.fund("ivy", 7)
    balance = pb.GetBalanceRequest(user_id="ivy", currency=POINTS)
    history = pb.ListTransactionsRequest(user_id="ivy")
    assert (await wallet.call("GetBalance", "app", user="ivy")(balance)).balances[0].available == 7
    assert len((await wallet.call("ListTransactions", "app", user="ivy")(history)).entries) == 1
    for request, method in ((balance, "GetBalance"), (history, "ListTransactions")):
        await wallet.expect_error(
            wallet.call(method, "app", user="mallory")(request), OK.PERMISSION_DENIED, "USER_SCOPE_MISMATCH"
        )
        await wallet.expect_error(wallet.call(method, "app", user="")(request), OK.PERMISSION_DENIED, "USER_REQUIRED")
    for caller in ("admin", "redemption", "earning", "payments"):
        assert (await wallet.call("GetBalance", caller)(balance)).balances[0].available == 7


async def test_the_app_spends_only_for_the_user_it_acts_for(wallet: Client) -> None:
    """A gift is sent, a payout requested, by the user the app acts for; the gift's answer does not
    show that user the creator's balance (internal callers still get it)."""
    await wallet.fund("jo", 100, COINS)
    gift = pb.SendGiftRequest(request_id="scope-g1", sender_id="jo", creator_id="kim", coins=10)
    await wallet.expect_error(
        wallet.call("SendGift", "app", user="mallory")(gift), OK.PERMISSION_DENIED, "USER_SCOPE_MISMATCH"
    )
    reply = await wallet.call("SendGift", "app", user="jo")(gift)
    assert reply.sender_balance.available == 90 and not reply.HasField("creator_balance")
    inside = await wallet.call("SendGift", "redemption")(
        pb.SendGiftRequest(request_id="scope-g2", sender_id="jo", creator_id="kim", coins=10)
    )
    assert inside.creator_balance.available == 10
    payout = pb.RequestPayoutRequest(request_id="scope-p1", creator_id="kim", diamonds=5)
    await wallet.expect_error(
        wallet.call("RequestPayout", "app", user="jo")(payout), OK.PERMISSION_DENIED, "USER_SCOPE_MISMATCH"
    )
    assert await wallet.balance("kim", DIAMONDS) == (10, 0)


async def test_holds_are_redemptions_alone(wallet: Client) -> None:
    """docs/architecture.md, Policy: only redemption reserves, commits, releases (and refunds) holds; a hold is read
    by redemption and admin."""
    await wallet.fund("lee", 50)
    hold = (await wallet.call("Reserve", "redemption")(
        pb.ReserveRequest(request_id="own-r", user_id="lee", currency=POINTS, amount=5)
    )).hold
    requests = {
        "Reserve": pb.ReserveRequest(request_id="own-r2", user_id="lee", currency=POINTS, amount=5),
        "CommitHold": pb.CommitHoldRequest(request_id="own-c", hold_id=hold.hold_id),
        "ReleaseHold": pb.ReleaseHoldRequest(request_id="own-l", hold_id=hold.hold_id),
        "RefundHold": pb.RefundHoldRequest(request_id="own-f", hold_id=hold.hold_id),
    }
    for method, request in requests.items():
        for caller in ("admin", "app", "earning", "payments"):
            await wallet.expect_error(wallet.call(method, caller)(request), OK.PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
    for caller in ("app", "earning", "payments"):
        await wallet.expect_error(
            wallet.call("GetHold", caller)(pb.GetHoldRequest(hold_id=hold.hold_id)),
            OK.PERMISSION_DENIED,
            "CALLER_NOT_ALLOWED",
        )
    assert (await wallet.call("GetHold", "admin")(pb.GetHoldRequest(hold_id=hold.hold_id))).hold.amount == 5
    assert await wallet.balance("lee") == (45, 5)


async def test_credit_batch_per_entry_results_in_order(wallet: Client) -> None:
    batch = wallet.call("CreditBatch", "earning")
    await wallet.call("Credit", "earning")(
        pb.CreditRequest(request_id="cb-dup", user_id="hank", currency=POINTS, amount=1)
    )
    entries = [
        pb.CreditBatchEntry(request_id="cb-1", user_id="hank", currency=POINTS, amount=10),
        pb.CreditBatchEntry(request_id="cb-2", user_id="ivy", currency=POINTS, amount=0),
        pb.CreditBatchEntry(request_id="cb-dup", user_id="hank", currency=POINTS, amount=1),
        pb.CreditBatchEntry(request_id="cb-dup", user_id="hank", currency=POINTS, amount=2),
        pb.CreditBatchEntry(request_id="cb-3", user_id="hank", currency=COINS, amount=2),
        pb.CreditBatchEntry(request_id="cb-4", user_id="hank", currency=POINTS, amount=5),
        pb.CreditBatchEntry(request_id="cb-1", user_id="hank", currency=POINTS, amount=10),
    ]
    reply = await batch(pb.CreditBatchRequest(entries=entries))
    reasons = [r.error_reason for r in reply.results]
    assert reasons == ["", "INVALID_FIELD", "", "IDEMPOTENCY_KEY_REUSED", "CURRENCY_NOT_ALLOWED", "", ""]
    assert [r.request_id for r in reply.results] == [e.request_id for e in entries]
    assert [r.balance.available for r in reply.results if not r.error_reason] == [11, 1, 16, 11]
    assert reply.results[6].transaction == reply.results[0].transaction
    again = await batch(pb.CreditBatchRequest(entries=entries))
    replayed = [r.transaction.transaction_id for r in again.results]
    assert replayed == [r.transaction.transaction_id for r in reply.results]
    assert await wallet.balance("hank") == (16, 0)


async def test_points_expiry_is_off_by_default(wallet: Client) -> None:
    assert WalletSettings.model_fields["points_expiry_days"].default == 0
    assert not wallet.started.wallet.expiry.enabled
    await wallet.fund("noexp", 30)
    debit = wallet.call("Debit", "redemption")
    await debit(pb.DebitRequest(request_id="noexp-d", user_id="noexp", currency=POINTS, amount=10))
    wallet.clock.advance(10 * 365 * 86_400)
    assert await wallet.started.wallet.expiry.expire_points() == 0
    assert await wallet.balance("noexp") == (20, 0)
    async with wallet.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM points_lots"))).scalar() == 0
        assert (await conn.execute(text("SELECT count(*) FROM transactions WHERE kind = 6"))).scalar() == 0
