"""The console's web app: Starlette with server-rendered Jinja2 pages and plain HTML forms.

Why this stack: every page is a table or a form over a few gRPC calls, so server rendering keeps all
state and every secret on the server, needs no JavaScript build, and works in any browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from points_console.gateway import Gateway
from points_console.metrics import Charts, MetricsSources
from points_console.operators import is_valid_login
from points_console.pages import catalog, overview, raffles, review, rules, sagas, users
from points_console.web import render, signed_in


@signed_in
async def signout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


def create_app(
    connect: Callable[[], Gateway], operators_file: Path, session_secret: str, *, https_only: bool = False,
    metrics: MetricsSources | None = None, sample_seconds: float = 60.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Starlette:
    board = Charts(metrics or MetricsSources([], []), now)

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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # gRPC aio channels belong to the event loop that opens them: the server's, so they open here.
        app.state.gateway = connect()
        app.state.charts = board
        sampler = asyncio.create_task(board.sample_every(sample_seconds)) if board.sources.earning else None
        yield
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        await app.state.gateway.close()

    routes = [
        Route("/signin", signin, methods=["GET", "POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/", overview.overview),
        Route("/review", review.review, methods=["GET", "POST"]),
        Route("/users", users.user),
        *(Route(f"/users/{action}", users.user_action, methods=["POST"], name=action)
          for action in ("adjust", "suspend", "reinstate", "forfeit")),
        Route("/sagas", sagas.sagas),
        Route("/raffles", raffles.raffles),
        Route("/raffles/prepare", raffles.raffle_action, methods=["POST"], name="prepare"),
        Route("/raffles/draw", raffles.raffle_action, methods=["POST"], name="draw"),
        Route("/raffles/{raffle_id:str}", raffles.raffle),
        Route("/rules", rules.rules, methods=["GET", "POST"]),
        Route("/catalog", catalog.catalog),
        Route("/catalog/items", catalog.create_item, methods=["POST"]),
        Route("/catalog/items/{item_id}", catalog.item, methods=["GET", "POST"]),
        Route("/catalog/campaigns/end", catalog.end_campaign, methods=["POST"]),
    ]
    middleware = [
        Middleware(
            SessionMiddleware, secret_key=session_secret, session_cookie="points_console", same_site="strict",
            https_only=https_only, max_age=8 * 3600,
        )
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
