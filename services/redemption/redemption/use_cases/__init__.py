"""Use cases of the redemption service."""

from redemption.use_cases.service import RedeemCommand, RedemptionService

__all__ = ["RedeemCommand", "RedemptionService"]
