"""Persistence of the redemption service: sagas and their step log, entitlements, raffle draws."""

from redemption.store.entitlements import (
    Consumption,
    EntitlementRow,
    EntitlementStore,
    EntriesPending,
    RaffleDrawRow,
    UseRequest,
    UseRow,
)
from redemption.store.sagas import Journal, SagaRecord, SagaStore, StepRecord

__all__ = [
    "Consumption", "EntitlementRow", "EntitlementStore", "EntriesPending", "Journal", "RaffleDrawRow", "SagaRecord",
    "SagaStore", "StepRecord", "UseRequest", "UseRow",
]
