"""gRPC transport of the redemption service: proto <-> use case mapping and the call policy."""

from __future__ import annotations

import grpc

from points.redemption.v1 import redemption_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow
from points_platform.server import ServiceSpec

FULL_NAME = "points.redemption.v1.RedemptionService"

# Who may call what (DESIGN §7); finer rules (e.g. per currency) live in the use cases.
POLICY: Policy = {
    "Redeem": allow("app", "admin"),
    "GetRedemption": ALL_CALLERS,
    "ListRedemptions": ALL_CALLERS,
    "ListEntitlements": ALL_CALLERS,
    "RefundRedemption": allow("admin"),
    "PrepareRaffleDraw": allow("admin"),
    "DrawRaffle": allow("admin"),
    "GetRaffleDraw": ALL_CALLERS,
}


class RedemptionApi(redemption_pb2_grpc.RedemptionServiceServicer):
    """Every RPC not overridden here answers UNIMPLEMENTED."""


def service_spec(api: RedemptionApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        redemption_pb2_grpc.add_RedemptionServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.redemption", POLICY, register)
