"""Persistence of the redemption service: sagas and their step log, entitlements, raffle draws."""

from redemption.store.entitlements import EntitlementRow, EntitlementStore, RaffleDrawRow
from redemption.store.sagas import Journal, SagaRecord, SagaStore, StepRecord

__all__ = ["EntitlementRow", "EntitlementStore", "Journal", "RaffleDrawRow", "SagaRecord", "SagaStore", "StepRecord"]
