"""What every page shares: rendering, the gateway, the signed-in operator, the CSRF guard, form request ids."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from points_console.gateway import Gateway, ServiceRefusedError

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)
Handler = Callable[[Request], Awaitable[Response]]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    page = TEMPLATES.get_template(template).render(
        operator=request.session.get("operator"), csrf=request.session.get("csrf", ""),
        request_id=form_request_id(), **context
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


def operator(request: Request) -> str:
    """The signed-in operator's name (only called behind `signed_in`)."""
    return str(request.session["operator"])
