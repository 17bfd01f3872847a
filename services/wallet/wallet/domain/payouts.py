"""Payouts: their states and the cash a number of diamonds is worth."""

from __future__ import annotations

import enum


class PayoutState(enum.IntEnum):
    PENDING = 1
    COMPLETED = 2
    FAILED = 3


def payout_cash_minor(diamonds: int, minor_per_thousand: int) -> int:
    return diamonds * minor_per_thousand // 1_000
