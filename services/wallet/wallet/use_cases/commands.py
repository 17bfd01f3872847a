"""Commands the transport hands to the use cases (validated there), and their request fingerprint."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import cast

from wallet import domain


@dataclass(frozen=True)
class Credit:
    request_id: str
    user_id: str
    currency: int
    amount: int
    reason: str = ""
    reference: str = ""


@dataclass(frozen=True)
class Debit(Credit):
    pass


@dataclass(frozen=True)
class Reserve:
    request_id: str
    user_id: str
    currency: int
    amount: int
    ttl_seconds: int = 0
    reference: str = ""


@dataclass(frozen=True)
class HoldAmountCommand:
    """A hold, an amount of it (0 = all) and a reason: what CommitHold and RefundHold share."""

    request_id: str
    hold_id: str
    amount: int = 0
    reason: str = ""


@dataclass(frozen=True)
class CommitHold(HoldAmountCommand):
    """amount 0 = the whole hold; the rest is released."""


@dataclass(frozen=True)
class ReleaseHold:
    request_id: str
    hold_id: str


@dataclass(frozen=True)
class RefundHold(HoldAmountCommand):
    """amount 0 = everything of the committed amount not refunded yet."""


@dataclass(frozen=True)
class SendGift:
    request_id: str
    sender_id: str
    creator_id: str
    coins: int
    gift_id: str = ""


@dataclass(frozen=True)
class RequestPayout:
    request_id: str
    creator_id: str
    diamonds: int


@dataclass(frozen=True)
class CompletePayout:
    request_id: str
    payout_id: str
    success: bool
    failure_reason: str = ""


@dataclass(frozen=True)
class ChangeUserStatus:
    """SuspendUser and ReinstateUser: who is changed, why, under which ticket, by which operator."""

    request_id: str
    user_id: str
    reason: str
    ticket: str
    operator_id: str


@dataclass(frozen=True)
class ForfeitPoints:
    """amount > 0, or all (the whole available balance when the forfeit applies)."""

    request_id: str
    user_id: str
    amount: int
    all: bool
    reason: str
    ticket: str


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def fingerprint(command: object) -> str:
    """domain.fingerprint of the command's fields (flat dataclasses: what asdict gives, without its deep copy)."""
    return domain.fingerprint({name: getattr(command, name) for name in _field_names(cast(type, type(command)))})
