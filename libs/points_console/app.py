"""The console's web app: Starlette with server-rendered Jinja2 pages and plain HTML forms.

Why this stack: every page is a table or a form over a few gRPC calls, so server rendering keeps all
state and every secret on the server, needs no JavaScript build, and works in any browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from points.catalog.v1 import catalog_pb2
from points.common.v1 import common_pb2
from points.earning.v1 import earning_pb2
from points.redemption.v1 import redemption_pb2
from points.wallet.v1 import wallet_pb2
from points_console import metrics as charts
from points_console.forms import (
    ACTIVITY_TYPES,
    FormError,
    read_adjustment,
    read_forfeiture,
    read_item_form,
    read_preview_event,
    read_raffle_id,
    read_request_id,
    read_standing_change,
    read_version,
)
from points_console.gateway import Gateway, ServiceRefusedError
from points_console.metrics import HourlyIncrease, MetricsSources
from points_console.operators import is_valid_login

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)
MAX_NOTE_CHARS = 500
# The sagas page's filters: the state choices (the default is what needs an operator's eye) and the ages.
SAGA_STATES = {
    "PENDING,CANCELLED": [redemption_pb2.REDEMPTION_STATE_PENDING, redemption_pb2.REDEMPTION_STATE_CANCELLED],
    "PENDING": [redemption_pb2.REDEMPTION_STATE_PENDING],
    "CANCELLED": [redemption_pb2.REDEMPTION_STATE_CANCELLED],
    "COMPLETED": [redemption_pb2.REDEMPTION_STATE_COMPLETED],
    "REFUNDED": [redemption_pb2.REDEMPTION_STATE_REFUNDED],
    "ANY": [],
}
SAGA_AGES = {"3600": "last hour", "86400": "last 24 hours", "604800": "last 7 days", "0": "any age"}
Handler = Callable[[Request], Awaitable[Response]]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    page = TEMPLATES.get_template(template).render(
        operator=request.session.get("operator"), csrf=request.session.get("csrf", ""), **context
    )
    return HTMLResponse(page, status_code=status_code)


def services(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def form_values(request: Request) -> dict[str, str]:
    return {key: str(value) for key, value in (await request.form()).items()}


def signed_in(handler: Handler) -> Handler:
    """Send a request without a session to sign-in; refuse a POST whose CSRF token is not the session's."""

    async def guarded(request: Request) -> Response:
        if not request.session.get("operator"):
            return RedirectResponse("/signin", status_code=303)
        if request.method == "POST":
            form = await request.form()
            sent = str(form.get("csrf", ""))
            if not hmac.compare_digest(sent.encode(), str(request.session.get("csrf", "")).encode()):
                message = "The form's CSRF token is not valid; reload the page."
                return render(request, "error.html", 403, message=message)
        try:
            return await handler(request)
        except ServiceRefusedError as refused:
            return render(request, "error.html", 400, message=refused.message)

    return guarded


def form_request_id() -> str:
    """A mutating form's request id, made when the page is rendered: submitting it again is the same request."""
    return f"console-{secrets.token_urlsafe(16)}"


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


def create_app(
    connect: Callable[[], Gateway], operators_file: Path, session_secret: str, *, https_only: bool = False,
    metrics: MetricsSources | None = None, sample_seconds: float = 60.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Starlette:
    sources = metrics or MetricsSources([], [])
    earned = HourlyIncrease()

    def operator(request: Request) -> str:
        return str(request.session["operator"])

    async def sample_earned() -> bool:
        """Read the earning counter into the hourly series; False when no endpoint answered."""
        if not sources.earning:
            return False
        samples = await charts.read_samples(sources.earning)
        if samples is None:
            return False
        earned.observe(now(), charts.total(samples, charts.POINTS_CREDITED))
        return True

    async def signin(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "signin.html")
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        if not name or not password or not is_valid_login(operators_file, name, password):
            return render(request, "signin.html", 401, error="Unknown operator or wrong password.")
        request.session.clear()
        request.session.update(operator=name, csrf=secrets.token_urlsafe(32))
        return RedirectResponse("/", status_code=303)

    @signed_in
    async def signout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/signin", status_code=303)

    @signed_in
    async def overview(request: Request) -> Response:
        held = await services(request).held_earnings(operator(request))
        items = await services(request).items(operator(request))
        low = [i for i in items if i.limited_stock and i.stock_total and i.stock_available * 10 <= i.stock_total]
        hourly = earned.hours() if await sample_earned() else None
        by_state = await charts.redemptions_by_state(sources.redemption) if sources.redemption else None
        return render(request, "overview.html", by_reason=sorted(Counter(h.reason for h in held).items()), low=low,
                      hourly=hourly, by_state=by_state)

    @signed_in
    async def review(request: Request) -> Response:
        error = ""
        if request.method == "POST":
            form = await request.form()
            ids = [str(v) for v in form.getlist("held_earning_id")]
            decision, note = str(form.get("decision", "")), str(form.get("note", "")).strip()
            if not ids:
                error = "Select at least one held earning."
            elif decision not in ("approve", "reject"):
                error = "Choose approve or reject."
            elif not note or len(note) > MAX_NOTE_CHARS:
                error = f"A note of 1-{MAX_NOTE_CHARS} characters is required."
            else:
                for held_earning_id in ids:
                    await services(request).resolve(operator(request), held_earning_id, decision == "approve", note)
                return RedirectResponse("/review", status_code=303)
        held = await services(request).held_earnings(operator(request))
        counts = sorted(Counter(h.reason for h in held).items())
        return render(request, "review.html", 400 if error else 200, held=held, counts=counts, error=error)

    async def user_page(request: Request, user_id: str, errors: list[str], status_code: int = 200) -> Response:
        if not user_id:
            return render(request, "user.html", user_id="", balances=[], ledger=None)
        me, gateway = operator(request), services(request)
        balances = await gateway.balances(me, user_id)
        ledger = await gateway.ledger(me, user_id, request.query_params.get("page_token", ""))
        today = await gateway.earnings_today(me, user_id)
        redemptions = await gateway.redemptions(me, user_id)
        entitlements = await gateway.entitlements(me, user_id)
        sent = await gateway.gifts(me, user_id, wallet_pb2.GIFT_ROLE_SENDER)
        received = await gateway.gifts(me, user_id, wallet_pb2.GIFT_ROLE_CREATOR)
        standing = await gateway.user_status(me, user_id)
        return render(
            request, "user.html", 400 if errors else status_code, user_id=user_id, balances=balances, ledger=ledger,
            today=today, redemptions=redemptions, entitlements=entitlements, sent=sent, received=received,
            standing=standing, errors=errors, done=request.query_params.get("done", ""),
            request_ids={form: form_request_id() for form in ("adjust", "suspend", "reinstate", "forfeit")},
            currency=common_pb2.Currency.Name, state=redemption_pb2.RedemptionState.Name,
            step=redemption_pb2.SagaStepName.Name, outcome=redemption_pb2.StepOutcome.Name,
            activity=earning_pb2.ActivityType.Name, kind=redemption_pb2.EntitlementKind.Name,
            entitlement_state=redemption_pb2.EntitlementState.Name, user_state=wallet_pb2.UserState.Name,
            status_action=wallet_pb2.UserStatusAction.Name,
        )

    @signed_in
    async def user(request: Request) -> Response:
        return await user_page(request, request.query_params.get("user_id", "").strip(), [])

    @signed_in
    async def user_action(request: Request) -> Response:
        """The user page's forms: adjustment, suspension, reinstatement, forfeiture."""
        action = request.url.path.rsplit("/", 1)[1]
        values = await form_values(request)
        user_id = values.get("user_id", "").strip()
        if not user_id:
            return render(request, "error.html", 400, message="The form named no user.")
        me, gateway = operator(request), services(request)
        try:
            request_id = read_request_id(values)
            if action == "adjust":
                await gateway.adjust(me, request_id, read_adjustment(user_id, values))
            elif action in ("suspend", "reinstate"):
                await gateway.set_suspended(me, request_id, read_standing_change(user_id, values), action == "suspend")
            else:
                await gateway.forfeit(me, request_id, read_forfeiture(user_id, values))
        except FormError as bad:
            return await user_page(request, user_id, bad.errors)
        except ServiceRefusedError as refused:
            return await user_page(request, user_id, [refused.message])
        query = urllib.parse.urlencode({"user_id": user_id, "done": action})
        return RedirectResponse(f"/users?{query}", status_code=303)

    @signed_in
    async def sagas(request: Request) -> Response:
        chosen = request.query_params.get("state", "PENDING,CANCELLED")
        age = request.query_params.get("age", "86400")
        if chosen not in SAGA_STATES or age not in SAGA_AGES:
            return render(request, "sagas.html", 400, redemptions=[], next_page_token="", chosen=chosen, age=age,
                          errors=["Choose a state and an age from the lists."], states=SAGA_STATES, ages=SAGA_AGES)
        page = await services(request).all_redemptions(
            operator(request), SAGA_STATES[chosen], int(age), request.query_params.get("page_token", ""))
        return render(
            request, "sagas.html", redemptions=page.redemptions, next_page_token=page.next_page_token, chosen=chosen,
            age=age, errors=[], states=SAGA_STATES, ages=SAGA_AGES, state=redemption_pb2.RedemptionState.Name,
            step=redemption_pb2.SagaStepName.Name, outcome=redemption_pb2.StepOutcome.Name,
        )

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

    @signed_in
    async def catalog(request: Request) -> Response:
        return await catalog_page(request, {}, [])

    async def catalog_page(request: Request, values: dict[str, str], errors: list[str]) -> Response:
        items = await services(request).items(operator(request))
        campaigns = await services(request).campaigns(operator(request))
        return render(
            request, "catalog.html", 400 if errors else 200, items=items, campaigns=campaigns, values=values,
            errors=errors,
        )

    @signed_in
    async def create_item(request: Request) -> Response:
        values = await form_values(request)
        try:
            item = await services(request).create_item(operator(request), read_item_form(values))
        except FormError as bad:
            return await catalog_page(request, values, bad.errors)
        except ServiceRefusedError as refused:
            return await catalog_page(request, values, [refused.message])
        return RedirectResponse(f"/catalog/items/{item.item_id}", status_code=303)

    async def item_page(request: Request, item_id: str, values: dict[str, str] | None, errors: list[str]) -> Response:
        item = await services(request).item(operator(request), item_id)
        quote = await services(request).quote(operator(request), item)
        if values is None:
            values = {
                "title": item.title, "description": item.description, "price_points": str(item.price.amount),
                "regions": ", ".join(item.regions), "stock_total": str(item.stock_total) if item.limited_stock else "",
                "cosmetic_id": item.cosmetic.cosmetic_id, "expected_version": str(item.version),
            }
        return render(
            request, "item.html", 400 if errors else 200, item=item, quote=quote, values=values, errors=errors,
            currency=common_pb2.Currency.Name,
        )

    @signed_in
    async def item(request: Request) -> Response:
        item_id = request.path_params["item_id"]
        if request.method == "GET":
            return await item_page(request, item_id, None, [])
        values = await form_values(request)
        try:
            await services(request).update_item(
                operator(request), item_id, read_version(values), read_item_form(values)
            )
        except FormError as bad:
            return await item_page(request, item_id, values, bad.errors)
        except ServiceRefusedError as refused:
            # A stale edit (someone saved a newer version first) is refused by the catalog; say so.
            return await item_page(request, item_id, values, [refused.message])
        return RedirectResponse(f"/catalog/items/{item_id}", status_code=303)

    @signed_in
    async def end_campaign(request: Request) -> Response:
        campaign_id = (await form_values(request)).get("campaign_id", "").strip()
        if not campaign_id:
            return await catalog_page(request, {}, ["Which campaign? The form named none."])
        try:
            await services(request).end_campaign(operator(request), campaign_id)
        except ServiceRefusedError as refused:
            return await catalog_page(request, {}, [refused.message])
        return RedirectResponse("/catalog", status_code=303)

    def rules_page(
        request: Request, current: Any, text: str, values: dict[str, str], errors: list[str], *, saved: bool = False,
        preview: earning_pb2.PreviewEarningResponse | None = None,
    ) -> Response:
        return render(
            request, "rules.html", 400 if errors else 200, rules=current, text=text, errors=errors,
            version=values.get("expected_version", ""), saved=saved, preview=preview, values=values,
            activity_types=ACTIVITY_TYPES, status=earning_pb2.EventStatus.Name, rule=earning_pb2.RuleKind.Name,
        )

    @signed_in
    async def rules(request: Request) -> Response:
        """The rules as JSON; a POST either saves them as a new version or, `action=preview`, dry-runs one
        event under them (PreviewEarning) and shows the page again with the edit kept."""
        current = await services(request).rules(operator(request))
        if request.method == "GET":
            return rules_page(request, current, json_format.MessageToJson(current), {}, [])
        values = await form_values(request)
        text = values.get("rules", "")
        try:
            edited = json_format.Parse(text, earning_pb2.Rules())
            if values.get("action") == "preview":
                preview = await services(request).preview_earning(operator(request), edited,
                                                                   read_preview_event(values))
                return rules_page(request, current, text, values, [], preview=preview)
            saved = await services(request).save_rules(operator(request), edited, read_version(values))
        except json_format.ParseError as bad:
            return rules_page(request, current, text, values, [f"The rules are not valid JSON for Rules: {bad}"])
        except FormError as bad:
            return rules_page(request, current, text, values, bad.errors)
        except ServiceRefusedError as refused:
            # A stale version (someone saved first) or rules the earning service rejects.
            return rules_page(request, current, text, values, [refused.message])
        return rules_page(request, saved, json_format.MessageToJson(saved), {}, [], saved=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # gRPC aio channels belong to the event loop that opens them: the server's, so they open here.
        app.state.gateway = connect()
        sampler = asyncio.create_task(sample_every(sample_seconds)) if sources.earning else None
        yield
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        await app.state.gateway.close()

    async def sample_every(seconds: float) -> None:
        """Keeps the hourly series current between overview loads (pacing a background read, not a test wait)."""
        while True:
            await sample_earned()
            await asyncio.sleep(seconds)

    routes = [
        Route("/signin", signin, methods=["GET", "POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/", overview),
        Route("/review", review, methods=["GET", "POST"]),
        Route("/users", user),
        *(Route(f"/users/{action}", user_action, methods=["POST"], name=action)
          for action in ("adjust", "suspend", "reinstate", "forfeit")),
        Route("/sagas", sagas),
        Route("/raffles", raffles),
        Route("/raffles/prepare", raffle_action, methods=["POST"], name="prepare"),
        Route("/raffles/draw", raffle_action, methods=["POST"], name="draw"),
        Route("/raffles/{raffle_id:str}", raffle),
        Route("/rules", rules, methods=["GET", "POST"]),
        Route("/catalog", catalog),
        Route("/catalog/items", create_item, methods=["POST"]),
        Route("/catalog/items/{item_id}", item, methods=["GET", "POST"]),
        Route("/catalog/campaigns/end", end_campaign, methods=["POST"]),
    ]
    middleware = [
        Middleware(
            SessionMiddleware, secret_key=session_secret, session_cookie="points_console", same_site="strict",
            https_only=https_only, max_age=8 * 3600,
        )
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
