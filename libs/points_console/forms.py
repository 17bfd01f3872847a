"""Reading the console's forms: every bad field becomes a sentence for the page, never an exception."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_POINTS = 10**12
REGION = re.compile(r"^[A-Z]{2}$")


class FormError(Exception):
    """What is wrong with a form, one readable sentence per field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class CosmeticItemForm:
    """The fields an operator sets on a cosmetic item; stock_total 0 = unlimited."""

    title: str
    description: str
    price_points: int
    regions: list[str]
    stock_total: int
    cosmetic_id: str


def _whole_number(errors: list[str], label: str, raw: str, *, minimum: int, maximum: int = MAX_POINTS) -> int:
    text = raw.strip()
    if not re.fullmatch(r"\d+", text) or not minimum <= int(text) <= maximum:
        errors.append(f"{label} must be a whole number from {minimum} to {maximum}.")
        return 0
    return int(text)


def read_item_form(form: Mapping[str, str]) -> CosmeticItemForm:
    errors: list[str] = []
    title = form.get("title", "").strip()
    if not 1 <= len(title) <= 200:
        errors.append("Title is required (at most 200 characters).")
    description = form.get("description", "").strip()
    if len(description) > 2000:
        errors.append("Description is at most 2000 characters.")
    price = _whole_number(errors, "Price", form.get("price_points", ""), minimum=1)
    regions = [r.strip().upper() for r in form.get("regions", "").split(",") if r.strip()]
    if bad := [r for r in regions if not REGION.match(r)]:
        errors.append(f"Regions are two-letter codes separated by commas (not {', '.join(bad)}).")
    stock_raw = form.get("stock_total", "").strip()
    stock = _whole_number(errors, "Stock", stock_raw, minimum=1) if stock_raw else 0
    cosmetic_id = form.get("cosmetic_id", "").strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", cosmetic_id):
        errors.append("Cosmetic id is 1-64 lower-case letters, digits and dashes.")
    if errors:
        raise FormError(errors)
    return CosmeticItemForm(title, description, price, regions, stock, cosmetic_id)


def read_version(form: Mapping[str, str]) -> int:
    errors: list[str] = []
    version = _whole_number(errors, "Version", form.get("expected_version", ""), minimum=1)
    if errors:
        raise FormError(errors)
    return version


MAX_ADJUSTMENT = 10**15
TICKET = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
# A form's request id is made when the page is rendered (`console-` + 128 random bits, and a suffix naming the
# form where a page has several): a resubmitted form is the same request.
FORM_REQUEST_ID = re.compile(r"^console-[A-Za-z0-9_-]{8,64}(:[A-Za-z0-9._@-]{1,40})?$")


@dataclass(frozen=True)
class Adjustment:
    """A POINTS credit (credit=True) or debit by hand, justified by a support ticket."""

    user_id: str
    credit: bool
    amount: int
    reason: str
    ticket: str


@dataclass(frozen=True)
class StandingChange:
    """A suspension or reinstatement."""

    user_id: str
    reason: str
    ticket: str


@dataclass(frozen=True)
class Forfeiture:
    """Points taken away: `amount`, or everything available."""

    user_id: str
    amount: int
    everything: bool
    reason: str
    ticket: str


def _text(errors: list[str], label: str, raw: str, maximum: int) -> str:
    text = raw.strip()
    if not 1 <= len(text) <= maximum or not text.isprintable():
        errors.append(f"{label} is required: 1-{maximum} printable characters.")
    return text


def _ticket(errors: list[str], raw: str) -> str:
    ticket = raw.strip()
    if not TICKET.match(ticket):
        errors.append("A ticket reference is required: 1-128 letters, digits and . _ : @ -")
    return ticket


def read_request_id(form: Mapping[str, str]) -> str:
    request_id = form.get("request_id", "")
    if not FORM_REQUEST_ID.match(request_id):
        raise FormError(["The form has no valid request id; reload the page."])
    return request_id


def read_adjustment(user_id: str, form: Mapping[str, str]) -> Adjustment:
    errors: list[str] = []
    direction = form.get("direction", "")
    if direction not in ("credit", "debit"):
        errors.append("Choose credit or debit.")
    amount = _whole_number(errors, "Amount", form.get("amount", ""), minimum=1, maximum=MAX_ADJUSTMENT)
    reason = _text(errors, "A reason", form.get("reason", ""), 200)
    ticket = _ticket(errors, form.get("ticket", ""))
    if errors:
        raise FormError(errors)
    return Adjustment(user_id, direction == "credit", amount, reason, ticket)


def read_standing_change(user_id: str, form: Mapping[str, str]) -> StandingChange:
    errors: list[str] = []
    reason = _text(errors, "A reason", form.get("reason", ""), 256)
    ticket = _ticket(errors, form.get("ticket", ""))
    if errors:
        raise FormError(errors)
    return StandingChange(user_id, reason, ticket)


def read_forfeiture(user_id: str, form: Mapping[str, str]) -> Forfeiture:
    errors: list[str] = []
    everything = form.get("all", "") == "on"
    raw_amount = form.get("amount", "").strip()
    amount = 0
    if everything and raw_amount:
        errors.append("Give an amount or tick 'all available', not both.")
    elif not everything:
        amount = _whole_number(errors, "Amount", raw_amount, minimum=1, maximum=MAX_ADJUSTMENT)
    reason = _text(errors, "A reason", form.get("reason", ""), 64)
    ticket = _ticket(errors, form.get("ticket", ""))
    if errors:
        raise FormError(errors)
    return Forfeiture(user_id, amount, everything, reason, ticket)


def read_raffle_id(form: Mapping[str, str]) -> str:
    raffle_id = form.get("raffle_id", "").strip()
    if not TICKET.match(raffle_id):
        raise FormError(["A raffle id is 1-128 letters, digits and . _ : @ -"])
    return raffle_id


ACTIVITY_TYPES = ("WATCH_TIME", "LIKE", "COMMENT", "SHARE", "LIVE_JOIN", "GAME_MILESTONE", "CHALLENGE_PROGRESS")
MAX_WATCH_SECONDS = 86_400


@dataclass(frozen=True)
class PreviewEvent:
    """One activity to try the rules on (the rules page's dry run); empty fields are left unset."""

    user_id: str
    activity: str
    region: str
    device_id: str
    watch_seconds: int
    target_id: str
    game_id: str
    milestone_id: str
    challenge_id: str


def read_preview_event(form: Mapping[str, str]) -> PreviewEvent:
    errors: list[str] = []
    user_id = form.get("event_user_id", "").strip()
    if not TICKET.match(user_id):
        errors.append("The dry run needs a user id: 1-128 letters, digits and . _ : @ -")
    activity = form.get("event_type", "")
    if activity not in ACTIVITY_TYPES:
        errors.append("Choose the activity type of the dry run's event.")
    region = form.get("event_region", "").strip().upper()
    if region and not REGION.match(region):
        errors.append("The event's region is a two-letter code.")
    watch_raw = form.get("event_watch_seconds", "").strip()
    watch = _whole_number(errors, "Watch seconds", watch_raw, minimum=1, maximum=MAX_WATCH_SECONDS) if watch_raw else 0
    ids = {}
    for field in ("device_id", "target_id", "game_id", "milestone_id", "challenge_id"):
        value = form.get(f"event_{field}", "").strip()
        if value and not TICKET.match(value):
            errors.append(f"The event's {field.replace('_', ' ')} is 1-128 letters, digits and . _ : @ -")
        ids[field] = value
    if errors:
        raise FormError(errors)
    return PreviewEvent(user_id, activity, region, watch_seconds=watch, **ids)
