"""300 users race for 50 units: never oversold, every loser compensated, the books balance."""

from __future__ import annotations

import asyncio
from collections import Counter

from points.redemption.v1 import redemption_pb2 as rpb
from tests.redemption.conftest import Suite, cosmetic_spec, settle, uid

PRICE = 100


async def test_300_users_race_for_50_units(suite: Suite) -> None:
    item = await suite.item(**cosmetic_spec(price=PRICE, limited_stock=True, stock_total=50))
    users = [uid("racer") for _ in range(300)]
    # Every fifth user cannot afford the item: they must end INSUFFICIENT_FUNDS (or OUT_OF_STOCK).
    funded = {u: (PRICE - 1 if i % 5 == 0 else PRICE + 7) for i, u in enumerate(users)}
    await asyncio.gather(*(suite.fund(u, amount) for u, amount in funded.items()))

    answered = await asyncio.gather(*(suite.redeem(u, item.item_id, timeout=30) for u in users))
    results = await settle(suite, list(answered))

    states = Counter(r.state for r in results)
    assert states == {rpb.REDEMPTION_STATE_COMPLETED: 50, rpb.REDEMPTION_STATE_CANCELLED: 250}, states
    reasons = Counter(r.cancel_reason for r in results if r.state == rpb.REDEMPTION_STATE_CANCELLED)
    assert set(reasons) <= {"OUT_OF_STOCK", "INSUFFICIENT_FUNDS"} and reasons["OUT_OF_STOCK"] > 0, reasons
    winners = {r.user_id for r in results if r.state == rpb.REDEMPTION_STATE_COMPLETED}
    assert all(funded[u] >= PRICE for u in winners)

    after = await suite.get_item(item.item_id)
    assert (after.stock_sold, after.stock_reserved, after.stock_available) == (50, 0, 0)
    balances = await asyncio.gather(*(suite.balance(u) for u in users))
    for user, balance in zip(users, balances, strict=True):
        expected = funded[user] - (PRICE if user in winners else 0)
        assert (balance.available, balance.held) == (expected, 0), user
    owned = await asyncio.gather(*(suite.entitlements(u) for u in users))
    for user, entitlements in zip(users, owned, strict=True):
        active = [e for e in entitlements if e.state == rpb.ENTITLEMENT_STATE_ACTIVE]
        assert len(active) == (1 if user in winners else 0), user
