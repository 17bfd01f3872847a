"""Persistence of the redemption service: sagas and their step log, entitlements, raffle draws."""

from redemption.store.entitlements import EntitlementRow, EntitlementStore, EntriesPending, RaffleDrawRow
from redemption.store.sagas import Journal, SagaRecord, SagaStore, StepRecord

__all__ = [
    "EntitlementRow", "EntitlementStore", "EntriesPending", "Journal", "RaffleDrawRow", "SagaRecord", "SagaStore",
    "StepRecord",
]
