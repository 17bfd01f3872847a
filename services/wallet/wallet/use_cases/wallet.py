"""The wallet's use cases, one object per aggregate, as the composition root wires them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wallet.use_cases.expiry import Expiry
from wallet.use_cases.history import History
from wallet.use_cases.holds import Holds
from wallet.use_cases.ledger import Ledger
from wallet.use_cases.payouts import Payouts
from wallet.use_cases.standing import Standing


@dataclass(frozen=True)
class Wallet:
    ledger: Ledger  # credits, debits, gifts (group commit)
    holds: Holds
    payouts: Payouts
    standing: Standing  # suspension and forfeiture (forfeits join the ledger's batches)
    expiry: Expiry
    history: History

    def background_jobs(self) -> list[Callable[[], Awaitable[None]]]:
        """The hold sweeper, and the points expiry job when expiry is on."""
        jobs: list[Callable[[], Awaitable[None]]] = [self.holds.run_sweeper]
        if self.expiry.enabled:
            jobs.append(self.expiry.run_expiry)
        return jobs
