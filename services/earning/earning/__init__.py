"""The earning service (points.earning.v1.EarningService)."""
