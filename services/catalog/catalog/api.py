"""gRPC transport of the catalog service: proto <-> use case mapping and the call policy."""

from __future__ import annotations

import grpc

from points.catalog.v1 import catalog_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow
from points_platform.server import ServiceSpec

FULL_NAME = "points.catalog.v1.CatalogService"

# Who may call what (DESIGN §7); finer rules (e.g. per currency) live in the use cases.
POLICY: Policy = {
    "CreateItem": allow("admin"),
    "UpdateItem": allow("admin"),
    "CreateCampaign": allow("admin"),
    "GetItem": ALL_CALLERS,
    "ListItems": ALL_CALLERS,
    "ListCampaigns": ALL_CALLERS,
    "Quote": ALL_CALLERS,
    "ReserveStock": allow("redemption"),
    "CommitReservation": allow("redemption"),
    "ReleaseReservation": allow("redemption"),
    "GetReservation": allow("redemption", "admin"),
}


class CatalogApi(catalog_pb2_grpc.CatalogServiceServicer):
    """Every RPC not overridden here answers UNIMPLEMENTED."""


def service_spec(api: CatalogApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.catalog", POLICY, register)
