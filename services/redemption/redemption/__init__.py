"""The redemption service (points.redemption.v1.RedemptionService)."""
