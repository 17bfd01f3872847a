"""Wallet use cases: one module per aggregate (ledger, holds, payouts, standing, expiry, history),
the commands they take (`commands`), what they answer (`results`) and the storage they need
(`ports`). Requests arrive validated by the api layer; the use cases apply the caller's rights and
the domain rules, and run the effect through a port."""

from wallet.use_cases.commands import (
    ChangeUserStatus,
    CommitHold,
    CompletePayout,
    Credit,
    Debit,
    ForfeitPoints,
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
    "RefundHold",
    "ReleaseHold",
    "RequestPayout",
    "Reserve",
    "SendGift",
    "Wallet",
]
