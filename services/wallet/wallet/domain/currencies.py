"""Currencies and accounts: who may move which currency, payments, gift arithmetic, request fingerprints.

Enum values equal the proto numbers.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from points_platform.errors import AlreadyExists, FailedPrecondition, InvalidArgument

# No single balance may exceed this (well inside int64), so sums never overflow the column.
MAX_BALANCE = 2**62
MAX_AMOUNT = 10**15


class Currency(enum.IntEnum):
    POINTS = 1
    COINS = 2
    DIAMONDS = 3


class Kind(enum.IntEnum):
    CREDIT = 1
    DEBIT = 2
    HOLD_COMMIT = 3
    GIFT = 4
    PAYOUT = 5
    EXPIRY = 6
    REFUND = 7
    FORFEIT = 8


# stored balance row, because a row every credit updates would serialize the whole service.
POINTS_ISSUANCE = "system:points_issuance"
POINTS_REDEMPTION = "system:points_redemption"
# Points taken back from a user: admin forfeits (ForfeitPoints) and expired lots.
FORFEITED = "system:forfeited"
COIN_SALES = "system:coin_sales"
COIN_REDEMPTION = "system:coin_redemption"
GIFT_CONVERSION = "system:gift_conversion"
GIFT_REVENUE = "system:gift_revenue"
PAYOUTS = "system:payouts"


def user_account(user_id: str) -> str:
    return f"user:{user_id}"


def currency_not_allowed(message: str, currency: Currency) -> FailedPrecondition:
    return FailedPrecondition("CURRENCY_NOT_ALLOWED", message, metadata={"currency": currency.name})


# --- who may move which currency (docs/architecture.md, Currencies and Policy) -------------

# Credit: POINTS by earning (activity), redemption (refunds) and admin (adjustments);
# COINS only by payments (with a payment reference); DIAMONDS never (only gifts make them).
_CREDITORS: Mapping[Currency, frozenset[str]] = {
    Currency.POINTS: frozenset({"earning", "redemption", "admin"}),
    Currency.COINS: frozenset({"payments"}),
    Currency.DIAMONDS: frozenset(),
}


def check_credit(caller: str, currency: Currency, reference: str) -> None:
    if caller not in _CREDITORS[currency]:
        raise currency_not_allowed(f"{caller or 'caller'} may not credit {currency.name}", currency)
    if currency is Currency.COINS and not reference:
        raise InvalidArgument(
            "PAYMENT_REFERENCE_REQUIRED",
            "reference: a COINS credit needs the payment reference",
            field_violations=[("reference", "required for COINS")],
        )
    if caller == "admin" and not reference:
        # Points made by hand (support adjustments) are the one path outside activity and refunds:
        # each names the ticket that justifies it, in the ledger for audit.
        raise InvalidArgument(
            "ADJUSTMENT_REFERENCE_REQUIRED",
            "reference: an admin adjustment names its support ticket",
            field_violations=[("reference", "required for admin adjustments")],
        )
    if currency is Currency.POINTS and caller != "earning" and not reference:
        # Activity (earning) is the one source of points whose reason is the rule itself; every other
        # point made (a refund names its redemption) is traceable to what justified it.
        raise InvalidArgument(
            "REFERENCE_REQUIRED",
            "reference: a POINTS credit outside earning names what it is for (e.g. the redemption refunded)",
            field_violations=[("reference", "required for POINTS credits other than earning's")],
        )


# A COINS credit is a payment: one per (user, currency, payment reference), whatever its request id.
PaymentKey = tuple[str, Currency, str]


@dataclass(frozen=True)
class PaidCredit:
    """The credit that already used a payment reference."""

    transaction_id: str
    request_id: str


def payment_key(currency: Currency, user_id: str, reference: str) -> PaymentKey | None:
    """The key under which a credit claims its payment reference (COINS credits only)."""
    return (user_id, currency, reference) if currency is Currency.COINS else None


def payment_already_credited(key: PaymentKey, first: PaidCredit) -> AlreadyExists:
    """A second credit of one payment (another request id): refused, naming the first credit. Replaying
    the first request id returns that credit's full answer."""
    return AlreadyExists(
        "PAYMENT_ALREADY_CREDITED",
        "this payment reference was already credited to the user in this currency",
        metadata={"reference": key[2], "transaction_id": first.transaction_id, "request_id": first.request_id},
    )


def check_spend(currency: Currency) -> None:
    """Debits and holds by redemption/admin: POINTS and COINS. Diamonds leave only as payouts."""
    if currency is Currency.DIAMONDS:
        raise currency_not_allowed("DIAMONDS leave a wallet only through payouts", currency)


def credit_source(currency: Currency) -> str:
    return POINTS_ISSUANCE if currency is Currency.POINTS else COIN_SALES


def spend_sink(currency: Currency) -> str:
    return {Currency.POINTS: POINTS_REDEMPTION, Currency.COINS: COIN_REDEMPTION}.get(currency, PAYOUTS)


# Metrics label: who moved the money, in words with a bounded set of values (the free-text reason
# of a request would make unbounded label cardinality).
_REASON_CLASSES: Mapping[tuple[Kind, str], str] = {
    (Kind.CREDIT, "earning"): "earning",
    (Kind.CREDIT, "redemption"): "refund",
    (Kind.CREDIT, "admin"): "adjustment",
    (Kind.CREDIT, "payments"): "purchase",
    (Kind.DEBIT, "redemption"): "redemption",
    (Kind.DEBIT, "admin"): "adjustment",
}


def reason_class(kind: Kind, caller: str) -> str:
    fixed = {
        Kind.HOLD_COMMIT: "hold_commit", Kind.GIFT: "gift", Kind.PAYOUT: "payout", Kind.EXPIRY: "expiry",
        Kind.REFUND: "refund",
        Kind.FORFEIT: "forfeit",
    }
    return fixed.get(kind) or _REASON_CLASSES.get((kind, caller), "other")


def gift_diamonds(coins: int, rate_bps: int) -> int:
    """floor(coins * rate): the rounding is in the platform's favour."""
    return coins * rate_bps // 10_000



def fingerprint(fields: Mapping[str, object]) -> str:
    """Stable hash of a command's parameters (without its request_id)."""
    body = json.dumps({k: v for k, v in fields.items() if k != "request_id"}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()
