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

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from points.common.v1 import common_pb2
from points_console.gateway import Gateway, ServiceRefused
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


def signed_in(handler: Handler) -> Handler:
    """Send a request without a session to sign-in; refuse a POST whose CSRF token is not the session's."""

    async def guarded(request: Request) -> Response:
        if not request.session.get("operator"):
            return RedirectResponse("/signin", status_code=303)
        if request.method == "POST":
            form = await request.form()
            sent = str(form.get("csrf", ""))
            if not hmac.compare_digest(sent.encode(), str(request.session.get("csrf", "")).encode()):
                return render(request, "error.html", 403, message="The form's CSRF token is not valid; reload the page.")
        try:
            return await handler(request)
        except ServiceRefused as refused:
            return render(request, "error.html", 400, message=refused.message)

    return guarded


def create_app(connect: Callable[[], Gateway], operators_file: Path, session_secret: str, *, https_only: bool = False) -> Starlette:
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
        return render(
            request, "user.html", user_id=user_id, balances=balances, ledger=ledger, currency=common_pb2.Currency.Name
        )

    @signed_in
    async def catalog(request: Request) -> Response:
        if request.method == "POST":
            form = await request.form()
            campaign_id = str(form.get("campaign_id", "")).strip()
            if not campaign_id:
                return render(request, "error.html", 400, message="Which campaign? The form named none.")
            await services(request).end_campaign(operator(request), campaign_id)
            return RedirectResponse("/catalog", status_code=303)
        items = await services(request).items(operator(request))
        campaigns = await services(request).campaigns(operator(request))
        return render(request, "catalog.html", items=items, campaigns=campaigns)

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
        Route("/catalog", catalog, methods=["GET", "POST"]),
    ]
    middleware = [
        Middleware(
            SessionMiddleware, secret_key=session_secret, session_cookie="points_console", same_site="strict",
            https_only=https_only, max_age=8 * 3600,
        )
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
