"""The console's web app: Starlette with server-rendered Jinja2 pages and plain HTML forms.

Why this stack: every page is a table or a form over a few gRPC calls, so server rendering keeps all
state and every secret on the server, needs no JavaScript build, and works in any browser.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
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

from points.common.v1 import common_pb2
from points.earning.v1 import earning_pb2
from points.redemption.v1 import redemption_pb2
from points_console.forms import FormError, read_item_form, read_version
from points_console.gateway import Gateway, ServiceRefusedError
from points_console.operators import is_valid_login

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)
MAX_NOTE_CHARS = 500
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


def create_app(
    connect: Callable[[], Gateway], operators_file: Path, session_secret: str, *, https_only: bool = False
) -> Starlette:
    def operator(request: Request) -> str:
        return str(request.session["operator"])

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
        return render(request, "overview.html", by_reason=sorted(Counter(h.reason for h in held).items()), low=low)

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

    @signed_in
    async def user(request: Request) -> Response:
        user_id = request.query_params.get("user_id", "").strip()
        if not user_id:
            return render(request, "user.html", user_id="", balances=[], ledger=None)
        balances = await services(request).balances(operator(request), user_id)
        ledger = await services(request).ledger(operator(request), user_id, request.query_params.get("page_token", ""))
        today = await services(request).earnings_today(operator(request), user_id)
        redemptions = await services(request).redemptions(operator(request), user_id)
        return render(
            request, "user.html", user_id=user_id, balances=balances, ledger=ledger, today=today,
            redemptions=redemptions, currency=common_pb2.Currency.Name, state=redemption_pb2.RedemptionState.Name,
            step=redemption_pb2.SagaStepName.Name, outcome=redemption_pb2.StepOutcome.Name,
            activity=earning_pb2.ActivityType.Name,
        )

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

    def rules_refused(request: Request, current: Any, values: dict[str, str], errors: list[str]) -> Response:
        return render(request, "rules.html", 400, rules=current, text=values.get("rules", ""), errors=errors,
                      version=values.get("expected_version", ""))

    @signed_in
    async def rules(request: Request) -> Response:
        current = await services(request).rules(operator(request))
        if request.method == "GET":
            return render(request, "rules.html", rules=current, text=json_format.MessageToJson(current), errors=[])
        values = await form_values(request)
        try:
            edited = json_format.Parse(values.get("rules", ""), earning_pb2.Rules())
            saved = await services(request).save_rules(operator(request), edited, read_version(values))
        except json_format.ParseError as bad:
            return rules_refused(request, current, values, [f"The rules are not valid JSON for Rules: {bad}"])
        except FormError as bad:
            return rules_refused(request, current, values, bad.errors)
        except ServiceRefusedError as refused:
            # A stale version (someone saved first) or rules the earning service rejects.
            return rules_refused(request, current, values, [refused.message])
        return render(request, "rules.html", rules=saved, text=json_format.MessageToJson(saved), errors=[],
                      saved=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # gRPC aio channels belong to the event loop that opens them: the server's, so they open here.
        app.state.gateway = connect()
        yield
        await app.state.gateway.close()

    routes = [
        Route("/signin", signin, methods=["GET", "POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/", overview),
        Route("/review", review, methods=["GET", "POST"]),
        Route("/users", user),
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
