"""The review queue: held earnings oldest first, approved or rejected in bulk with a note."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from points.earning.v1 import earning_pb2
from points_console.forms import FormError, read_request_id
from points_console.web import operator, render, services, signed_in

MAX_NOTE_CHARS = 500
MAX_USERS_SUMMARIZED = 50  # the users of the oldest held earnings; one GetDailySummary call each


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
            try:
                page_request_id = read_request_id({key: str(value) for key, value in form.items()})
            except FormError as bad:
                error = bad.errors[0]
            else:
                for held_earning_id in ids:
                    # One request per decision, derived from the form's id: a resent form decides nothing twice.
                    request_id = f"{page_request_id}:{hashlib.sha256(held_earning_id.encode()).hexdigest()[:16]}"
                    await services(request).resolve(
                        operator(request), request_id, held_earning_id, decision == "approve", note)
                return RedirectResponse("/review", status_code=303)
    gateway, name = services(request), operator(request)
    held = await gateway.held_earnings(name)
    counts = sorted(Counter(h.reason for h in held).items())
    # Each user's activity today beside their held earnings: what they earned against the caps, streak, held.
    users = list(dict.fromkeys(h.user_id for h in held))[:MAX_USERS_SUMMARIZED]
    summaries = dict(zip(users, await asyncio.gather(*(gateway.earnings_today(name, u) for u in users)), strict=True))
    return render(request, "review.html", 400 if error else 200, held=held, counts=counts, error=error,
                  today=summaries, activity=earning_pb2.ActivityType.Name)
