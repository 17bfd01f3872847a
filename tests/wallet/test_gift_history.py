"""ListGifts: a sender's or a creator's gift history from the ledger, paged newest first, user-scoped for the app."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from points.wallet.v1 import wallet_pb2 as pb
from tests.wallet.conftest import COINS, Client

OK = grpc.StatusCode
SENDER, CREATOR = pb.GIFT_ROLE_SENDER, pb.GIFT_ROLE_CREATOR


async def send(wallet: Client, request_id: str, sender: str, creator: str, coins: int, gift_id: str) -> None:
    await wallet.call("SendGift", "app")(
        pb.SendGiftRequest(request_id=request_id, sender_id=sender, creator_id=creator, coins=coins, gift_id=gift_id)
    )


async def all_pages(wallet: Client, user: str, role: pb.GiftRole.ValueType, page_size: int) -> list[pb.Gift]:
    gifts: list[pb.Gift] = []
    token = ""
    while True:
        reply = await wallet.call("ListGifts", "app")(
            pb.ListGiftsRequest(user_id=user, role=role, page_size=page_size, page_token=token)
        )
        gifts += reply.gifts
        token = reply.next_page_token
        if not token:
            return gifts


async def test_a_sender_and_a_creator_see_their_gifts_newest_first_in_pages(wallet: Client) -> None:
    await wallet.fund("gh-fan", 1000, COINS)
    await wallet.fund("gh-creator", 50, COINS)  # a creator who also sends: the two roles stay apart
    await send(wallet, "gh-1", "gh-fan", "gh-creator", 10, "rose")
    await send(wallet, "gh-2", "gh-fan", "gh-other", 101, "castle")
    await wallet.call("Credit", "payments")(  # not a gift: never listed
        pb.CreditRequest(request_id="gh-buy", user_id="gh-fan", currency=COINS, amount=5, reference="gh-pay")
    )
    await send(wallet, "gh-3", "gh-fan", "gh-creator", 4, "heart")
    await send(wallet, "gh-4", "gh-creator", "gh-fan", 20, "star")

    sent = await all_pages(wallet, "gh-fan", SENDER, page_size=2)
    assert [(g.gift_id, g.creator_id, g.coins, g.diamonds) for g in sent] == [
        ("heart", "gh-creator", 4, 2),
        ("castle", "gh-other", 101, 50),
        ("rose", "gh-creator", 10, 5),
    ]
    assert {g.sender_id for g in sent} == {"gh-fan"} and all(g.transaction_id and g.create_time.seconds for g in sent)
    received = await all_pages(wallet, "gh-creator", CREATOR, page_size=1)
    assert [(g.gift_id, g.sender_id, g.coins, g.diamonds) for g in received] == [
        ("heart", "gh-fan", 4, 2),
        ("rose", "gh-fan", 10, 5),
    ]
    assert [g.gift_id for g in await all_pages(wallet, "gh-creator", SENDER, page_size=0)] == ["star"]
    # the history's transaction ids are the gifts' ledger transactions
    history = await wallet.call("ListTransactions", "app")(pb.ListTransactionsRequest(user_id="gh-creator"))
    assert {e.transaction_id for e in history.entries if e.kind == pb.TRANSACTION_KIND_GIFT} == {
        g.transaction_id for g in received + await all_pages(wallet, "gh-creator", SENDER, page_size=0)
    }
    nobody = await wallet.call("ListGifts", "app")(pb.ListGiftsRequest(user_id="gh-nobody", role=SENDER))
    assert list(nobody.gifts) == [] and nobody.next_page_token == ""


async def test_the_app_lists_only_the_user_it_acts_for_and_admin_anyone(wallet: Client) -> None:
    await wallet.fund("gh-jo", 100, COINS)
    await send(wallet, "gh-jo-1", "gh-jo", "gh-kim", 10, "rose")
    request = pb.ListGiftsRequest(user_id="gh-jo", role=SENDER)
    await wallet.expect_error(
        wallet.call("ListGifts", "app", user="gh-kim")(request), OK.PERMISSION_DENIED, "USER_SCOPE_MISMATCH"
    )
    await wallet.expect_error(wallet.call("ListGifts", "app", user="")(request), OK.PERMISSION_DENIED, "USER_REQUIRED")
    for caller in ("earning", "redemption", "payments"):
        await wallet.expect_error(wallet.call("ListGifts", caller)(request), OK.PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
    admin = await wallet.call("ListGifts", "admin")(pb.ListGiftsRequest(user_id="gh-kim", role=CREATOR))
    assert [(g.sender_id, g.diamonds) for g in admin.gifts] == [("gh-jo", 5)]


@pytest.mark.parametrize(
    ("request_fields", "reason"),
    [
        ({"user_id": "gh-jo"}, "GIFT_ROLE_REQUIRED"),
        ({"user_id": "gh-jo", "role": 7}, "INVALID_FIELD"),
        ({"user_id": "", "role": SENDER}, "INVALID_FIELD"),
        ({"user_id": "gh-jo", "role": SENDER, "page_size": -1}, "INVALID_FIELD"),
        ({"user_id": "gh-jo", "role": SENDER, "page_token": "not-ours"}, "INVALID_PAGE_TOKEN"),
        ({"user_id": "gh-jo", "role": SENDER, "page_token": "eyJiZWZvcmUiOiAieCJ9"}, "INVALID_PAGE_TOKEN"),
    ],
)
async def test_bad_input_is_invalid_argument_with_a_reason(
    wallet: Client, request_fields: dict[str, Any], reason: str
) -> None:
    request = pb.ListGiftsRequest(**request_fields)
    await wallet.expect_error(wallet.call("ListGifts", "admin")(request), OK.INVALID_ARGUMENT, reason)
