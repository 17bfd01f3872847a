"""gRPC clients of the peers (wallet, catalog), implementing the ports of `redemption.use_cases.ports`."""
