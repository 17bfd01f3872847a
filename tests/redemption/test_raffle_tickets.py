"""ListRaffleTickets: the tickets a drawn raffle drew from, enough for anyone to replay the draw."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from points.catalog.v1 import catalog_pb2
from points.common.v1 import common_pb2
from points.redemption.v1 import redemption_pb2 as rpb
from points_platform.client import error_reason
from redemption.domain.raffle import draw_winners
from tests.redemption.conftest import POINTS, Suite, md, uid
from tests.support.rpc import ts


async def all_tickets(suite: Suite, raffle_id: str, caller: str = "app") -> list[str]:
    tickets: list[str] = []
    token = ""
    while True:
        page = await suite.stub.ListRaffleTickets(
            rpb.ListRaffleTicketsRequest(raffle_id=raffle_id, page_size=2, page_token=token), metadata=md(caller))
        tickets += page.ticket_entitlement_ids
        token = page.next_page_token
        if not token:
            return tickets


async def test_the_listed_tickets_replay_the_draw_and_a_refunded_ticket_is_not_among_them(suite: Suite) -> None:
    raffle_id = uid("raffle")
    item = await suite.item(kind=catalog_pb2.ITEM_KIND_RAFFLE_TICKET, price=common_pb2.Price(currency=POINTS, amount=5),
                            raffle=catalog_pb2.RaffleAttributes(raffle_id=raffle_id, winners=2,
                                                                draw_time=ts(suite.clock.now() + timedelta(hours=1))))
    users = [uid("u") for _ in range(3)]
    redemptions = []
    for user in users:
        await suite.fund(user, 100)
        redemptions.append(await suite.redeem(user, item.item_id, quantity=2))
    refunded = await suite.stub.RefundRedemption(rpb.RefundRedemptionRequest(
        request_id=uid("r"), redemption_id=redemptions[0].redemption_id, reason="changed mind"), metadata=md("admin"))
    assert refunded.redemption.state == rpb.REDEMPTION_STATE_REFUNDED
    with pytest.raises(grpc.aio.AioRpcError) as unprepared:
        await all_tickets(suite, raffle_id)
    assert (unprepared.value.code(), error_reason(unprepared.value)) == (grpc.StatusCode.NOT_FOUND,
                                                                         "RAFFLE_NOT_PREPARED")
    await suite.stub.PrepareRaffleDraw(rpb.PrepareRaffleDrawRequest(request_id=uid("p"), raffle_id=raffle_id),
                                       metadata=md("admin"))
    with pytest.raises(grpc.aio.AioRpcError) as undrawn:
        await all_tickets(suite, raffle_id)
    assert (undrawn.value.code(), error_reason(undrawn.value)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                   "RAFFLE_NOT_DRAWN")

    suite.clock.advance(3601)
    try:
        drawn = (await suite.stub.DrawRaffle(rpb.DrawRaffleRequest(request_id=uid("d"), raffle_id=raffle_id),
                                             metadata=md("admin"))).draw
    finally:
        suite.clock.advance(-3601)
    listed = await all_tickets(suite, raffle_id)
    taking_part = [e.entitlement_id for u in users[1:] for e in await suite.entitlements(u)]
    assert sorted(listed) == sorted(taking_part) and len(listed) == drawn.ticket_count == 4
    assert draw_winners(bytes.fromhex(drawn.seed), listed, 2) == list(drawn.winner_entitlement_ids)


async def test_a_bad_raffle_id_or_page_token_is_an_invalid_argument(suite: Suite) -> None:
    for request in (rpb.ListRaffleTicketsRequest(raffle_id=""),
                    rpb.ListRaffleTicketsRequest(raffle_id="r", page_token="junk")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await suite.stub.ListRaffleTickets(request, metadata=md("app"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
