"""The wallet service (points.wallet.v1.WalletService)."""
