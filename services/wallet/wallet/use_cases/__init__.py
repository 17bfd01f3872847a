"""Wallet use cases: validate a command, apply the caller's rights, run it in the store."""

from wallet.use_cases.commands import (
    ChangeUserStatus,
    CommitHold,
    CompletePayout,
    Credit,
    Debit,
    ForfeitPoints,
    GiftResult,
    RefundHold,
    ReleaseHold,
    RequestPayout,
    Reserve,
    SendGift,
)
from wallet.use_cases.wallet import Wallet

__all__ = [
    "ChangeUserStatus",
    "CommitHold",
    "CompletePayout",
    "Credit",
    "Debit",
    "ForfeitPoints",
    "GiftResult",
    "RefundHold",
    "ReleaseHold",
    "RequestPayout",
    "Reserve",
    "SendGift",
    "Wallet",
]
