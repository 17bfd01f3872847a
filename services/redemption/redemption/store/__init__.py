"""Persistence of the redemption service: sagas and their step log, entitlements, raffle draws."""

from redemption.store.entitlements import EntitlementRow, EntitlementStore, RaffleDrawRow
from redemption.store.sagas import SagaRecord, SagaStore, StepRecord

__all__ = ["EntitlementRow", "EntitlementStore", "RaffleDrawRow", "SagaRecord", "SagaStore", "StepRecord"]
