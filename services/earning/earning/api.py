"""gRPC transport of the earning service: proto <-> use case mapping and the call policy."""

from __future__ import annotations

import grpc

from points.earning.v1 import earning_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow
from points_platform.server import ServiceSpec

FULL_NAME = "points.earning.v1.EarningService"

# Who may call what (DESIGN §7); finer rules (e.g. per currency) live in the use cases.
POLICY: Policy = {
    "RecordActivity": allow("app", "admin"),
    "RecordActivities": allow("app", "admin"),
    "StreamActivities": allow("app", "admin"),
    "GetRules": ALL_CALLERS,
    "UpdateRules": allow("admin"),
    "CreateChallenge": allow("admin"),
    "JoinChallenge": allow("app", "admin"),
    "ListChallenges": ALL_CALLERS,
    "GetDailySummary": ALL_CALLERS,
    "ListHeldEarnings": allow("admin"),
    "ResolveHeldEarning": allow("admin"),
}


class EarningApi(earning_pb2_grpc.EarningServiceServicer):
    """Every RPC not overridden here answers UNIMPLEMENTED."""


def service_spec(api: EarningApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        earning_pb2_grpc.add_EarningServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.earning", POLICY, register)
