"""Raffles: prepare (commit to a seed), draw, and the public verification that replays the draw."""

from __future__ import annotations

import hashlib
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from points.catalog.v1 import catalog_pb2
from points.redemption.v1 import redemption_pb2
from points_console.forms import FormError, read_raffle_id, read_request_id
from points_console.gateway import ServiceRefusedError
from points_console.web import form_request_id, form_values, operator, render, services, signed_in


def draw_picks(draw: redemption_pb2.RaffleDraw, tickets: list[str] | None) -> list[dict[str, Any]]:
    """The draw replayed from its revealed seed: for pick i, the digest sha256(seed || i as 8 bytes big-endian),
    the position it takes among the remaining tickets sorted ascending and, with the ticket list, the ticket
    at that position (which must be the winner the service drew)."""
    if not draw.seed:
        return []
    seed = bytes.fromhex(draw.seed)
    remaining = sorted(tickets) if tickets is not None else None
    picks = []
    for i, winner in enumerate(draw.winner_entitlement_ids):
        digest = hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
        left = draw.ticket_count - i
        position = int.from_bytes(digest, "big") % left if left > 0 else None
        picked = remaining.pop(position) if remaining and position is not None and position < len(remaining) else ""
        picks.append({"i": i, "digest": digest.hex(), "remaining": left, "position": position, "picked": picked,
                      "winner": winner, "user": draw.winner_user_ids[i] if i < len(draw.winner_user_ids) else ""})
    return picks


def seed_matches(draw: redemption_pb2.RaffleDraw) -> bool | None:
    """Whether the revealed seed hashes to the commitment; None before the draw (or a seed that is not hex)."""
    if not draw.seed:
        return None
    try:
        return hashlib.sha256(bytes.fromhex(draw.seed)).hexdigest() == draw.seed_hash
    except ValueError:
        return None


async def raffles_page(request: Request, errors: list[str]) -> Response:
    me, gateway = operator(request), services(request)
    raffles = []
    for item in await gateway.items(me):
        if item.kind == catalog_pb2.ITEM_KIND_RAFFLE_TICKET and item.raffle.raffle_id:
            draw = await gateway.raffle_draw(me, item.raffle.raffle_id)
            raffles.append({"item": item, "draw": draw, "request_id": form_request_id()})
    return render(request, "raffles.html", 400 if errors else 200, raffles=raffles, errors=errors,
                  draw_state=redemption_pb2.RaffleDrawState.Name)


@signed_in
async def raffles(request: Request) -> Response:
    if "raffle_id" in request.query_params:  # the look-up form
        try:
            raffle_id = read_raffle_id(dict(request.query_params))
        except FormError as bad:
            return await raffles_page(request, bad.errors)
        return RedirectResponse(f"/raffles/{urllib.parse.quote(raffle_id, safe='')}", status_code=303)
    return await raffles_page(request, [])


@signed_in
async def raffle_action(request: Request) -> Response:
    values = await form_values(request)
    try:
        raffle_id, request_id = read_raffle_id(values), read_request_id(values)
        if request.url.path.endswith("/prepare"):
            await services(request).prepare_raffle(operator(request), request_id, raffle_id)
        else:
            await services(request).draw_raffle(operator(request), request_id, raffle_id)
    except FormError as bad:
        return await raffles_page(request, bad.errors)
    except ServiceRefusedError as refused:
        return await raffles_page(request, [refused.message])
    return RedirectResponse(f"/raffles/{urllib.parse.quote(raffle_id, safe='')}", status_code=303)


@signed_in
async def raffle(request: Request) -> Response:
    raffle_id = request.path_params["raffle_id"]
    try:
        raffle_id = read_raffle_id({"raffle_id": raffle_id})
    except FormError as bad:
        return render(request, "error.html", 400, message=bad.errors[0])
    draw = await services(request).raffle_draw(operator(request), raffle_id)
    drawn = draw is not None and draw.state == redemption_pb2.RAFFLE_DRAW_STATE_DRAWN
    tickets = await services(request).raffle_tickets(operator(request), raffle_id) if drawn else None
    picks = draw_picks(draw, tickets) if draw else []
    return render(request, "raffle.html", raffle_id=raffle_id, draw=draw, tickets=tickets,
                  matches=seed_matches(draw) if draw else None, picks=picks,
                  replayed=bool(picks) and tickets is not None and len(tickets) == draw.ticket_count
                  and all(p["picked"] == p["winner"] for p in picks) if draw else False,
                  draw_state=redemption_pb2.RaffleDrawState.Name)
