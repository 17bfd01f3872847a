"""Request validation: the shape of each field, checked before a command reaches the use cases.

Rules that need the caller, a setting or the stored state (who may credit what, the hold's time to
live, a gift too small to make a diamond) are the use cases' and the domain's, checked after these.
"""

from __future__ import annotations

from points_platform.errors import InvalidArgument, invalid_field
from points_platform.validation import require_id, require_positive, require_request_id, require_text
from wallet.domain import MAX_AMOUNT, Currency
from wallet.use_cases.commands import (
    ChangeUserStatus,
    CompletePayout,
    Credit,
    ForfeitPoints,
    HoldAmountCommand,
    ReleaseHold,
    RequestPayout,
    Reserve,
    SendGift,
)

MAX_BATCH_ENTRIES = 1000
STATUS_REASON_MAX = 256
GIFT_ROLE_SENDER, GIFT_ROLE_CREATOR = 1, 2  # points.wallet.v1.GiftRole


def currency(value: int, field: str = "currency") -> Currency:
    try:
        return Currency(value)
    except ValueError:
        raise invalid_field(field, "must be POINTS, COINS or DIAMONDS") from None


def any_currency(value: int) -> Currency | None:
    """A filter: 0 (unspecified) = every currency."""
    return None if value == 0 else currency(value)


def _text(field: str, value: str, max_len: int) -> str:
    if len(value) > max_len or not value.isprintable():
        raise invalid_field(field, f"must be at most {max_len} printable characters")
    return value


def _required(field: str, value: str, reason: str) -> None:
    if not value:
        raise invalid_field(field, "is required", reason)


def _ticket(value: str) -> str:
    _required("ticket", value, "TICKET_REQUIRED")
    return require_id("ticket", value)


def movement(cmd: Credit) -> None:
    """Credit and Debit (a Debit is a Credit-shaped command)."""
    require_request_id(cmd.request_id)
    require_id("user_id", cmd.user_id)
    currency(cmd.currency)
    require_positive("amount", cmd.amount, MAX_AMOUNT)
    _text("reason", cmd.reason, 64)
    _text("reference", cmd.reference, 128)


def batch_size(entries: int) -> None:
    if entries > MAX_BATCH_ENTRIES:
        raise invalid_field("entries", f"at most {MAX_BATCH_ENTRIES} entries")


def gift(cmd: SendGift) -> None:
    require_request_id(cmd.request_id)
    require_id("sender_id", cmd.sender_id)
    require_id("creator_id", cmd.creator_id)
    require_positive("coins", cmd.coins, MAX_AMOUNT)
    _text("gift_id", cmd.gift_id, 128)
    if cmd.sender_id == cmd.creator_id:
        raise InvalidArgument(
            "SELF_GIFT",
            "creator_id: a gift goes to someone else",
            field_violations=[("creator_id", "is the sender")],
        )


def reserve(cmd: Reserve) -> None:
    require_request_id(cmd.request_id)
    require_id("user_id", cmd.user_id)
    currency(cmd.currency)
    require_positive("amount", cmd.amount, MAX_AMOUNT)
    _text("reference", cmd.reference, 128)


def hold_amount(cmd: HoldAmountCommand) -> None:
    """CommitHold and RefundHold: a hold, an amount (0 = all) and a reason."""
    require_request_id(cmd.request_id)
    require_id("hold_id", cmd.hold_id)
    if not 0 <= cmd.amount <= MAX_AMOUNT:
        raise invalid_field("amount", "must be 0 (all) or a positive amount")
    _text("reason", cmd.reason, 64)


def release(cmd: ReleaseHold) -> None:
    require_request_id(cmd.request_id)
    require_id("hold_id", cmd.hold_id)


def request_payout(cmd: RequestPayout) -> None:
    require_request_id(cmd.request_id)
    require_id("creator_id", cmd.creator_id)
    require_positive("diamonds", cmd.diamonds, MAX_AMOUNT)


def complete_payout(cmd: CompletePayout) -> None:
    require_request_id(cmd.request_id)
    require_id("payout_id", cmd.payout_id)
    _text("failure_reason", cmd.failure_reason, 256)


def gift_role(role: int) -> bool:
    """True: the gifts the user received (CREATOR); False: those they sent (SENDER)."""
    if role not in (GIFT_ROLE_SENDER, GIFT_ROLE_CREATOR):
        reason = "GIFT_ROLE_REQUIRED" if role == 0 else "INVALID_FIELD"
        raise invalid_field("role", "must be SENDER or CREATOR", reason)
    return role == GIFT_ROLE_CREATOR


def status_change(cmd: ChangeUserStatus) -> None:
    require_request_id(cmd.request_id)
    require_id("user_id", cmd.user_id)
    _required("reason", cmd.reason, "REASON_REQUIRED")
    require_text("reason", cmd.reason, STATUS_REASON_MAX)
    _ticket(cmd.ticket)
    _required("operator_id", cmd.operator_id, "OPERATOR_REQUIRED")
    require_id("operator_id", cmd.operator_id)


def forfeit(cmd: ForfeitPoints) -> None:
    require_request_id(cmd.request_id)
    require_id("user_id", cmd.user_id)
    if cmd.all and cmd.amount != 0:
        raise invalid_field("amount", "must be 0 when all is set")
    if not cmd.all and not 0 < cmd.amount <= MAX_AMOUNT:
        raise invalid_field("amount", f"must be between 1 and {MAX_AMOUNT}, or set all")
    _required("reason", cmd.reason, "REASON_REQUIRED")
    require_text("reason", cmd.reason, 64)
    _ticket(cmd.ticket)
