"""gRPC transport of the wallet service: proto <-> use case mapping and the call policy."""

from __future__ import annotations

import grpc

from points.wallet.v1 import wallet_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow
from points_platform.server import ServiceSpec

FULL_NAME = "points.wallet.v1.WalletService"

# Who may call what (DESIGN §7); finer rules (e.g. per currency) live in the use cases.
POLICY: Policy = {
    "GetBalance": ALL_CALLERS,
    "ListTransactions": ALL_CALLERS,
    "GetHold": ALL_CALLERS,
    "Credit": allow("earning", "payments", "admin"),
    "CreditBatch": allow("earning", "admin"),
    "Debit": allow("redemption", "admin"),
    "Reserve": allow("redemption", "admin"),
    "CommitHold": allow("redemption", "admin"),
    "ReleaseHold": allow("redemption", "admin"),
    "SendGift": allow("app", "redemption", "admin"),
    "RequestPayout": allow("app", "admin"),
    "CompletePayout": allow("payments", "admin"),
}


class WalletApi(wallet_pb2_grpc.WalletServiceServicer):
    """Every RPC not overridden here answers UNIMPLEMENTED."""


def service_spec(api: WalletApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        wallet_pb2_grpc.add_WalletServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.wallet", POLICY, register)
