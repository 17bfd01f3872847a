"""The platform's one idempotency table (points_platform.idempotency) replaces the catalog's own.

Rows carry over whole. The catalog stored each reply as JSON of its domain result; here it becomes
the reply message's proto bytes, built by the servicer's own mapping (`catalog.api.mapping`), so a
retry of an old request is answered exactly as the first call was. The key gains the user a
ReserveStock names (the other RPCs name none: ''), the method its full name, and the fingerprint is
derived from the stored one, the hex request digest the new fingerprint is built on
(`fingerprint_from_digest`), so an old key keeps both its replay and its reuse check. The old key
was (method, request_id): one request id used for two methods keeps its first row only (the new
key refuses the second as a reuse, as it would any new request).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from alembic import op
from google.protobuf.message import Message
from pydantic import TypeAdapter
from sqlalchemy.engine import Connection

from catalog.api import mapping as m
from catalog.domain import Campaign, Item, Reservation, StockReturn
from catalog.store.rows import attributes_from_json
from points.catalog.v1 import catalog_pb2 as pb
from points_platform.idempotency import fingerprint_from_digest, method_name
from points_platform.migrations import replace_idempotency_table_v1, restore_service_idempotency_table_v0

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SERVICE = "points.catalog.v1.CatalogService"
_JSON: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def _item(data: bytes) -> Item:
    """An Item snapshot: its attributes union was stored under its name, as the items table does."""
    raw = _JSON.validate_json(data)
    attributes = attributes_from_json(raw["spec"]["attributes"])
    raw["spec"]["attributes"] = None
    item: Item = TypeAdapter(Item).validate_python(raw)
    return replace(item, spec=replace(item.spec, attributes=attributes))


def _reservation(data: bytes) -> Reservation:
    reservation: Reservation = TypeAdapter(Reservation).validate_json(data)
    return reservation


def _campaign(data: bytes) -> Campaign:
    campaign: Campaign = TypeAdapter(Campaign).validate_json(data)
    return campaign


def _returned(data: bytes) -> pb.ReturnStockResponse:
    result: StockReturn = TypeAdapter(StockReturn).validate_json(data)
    return pb.ReturnStockResponse(reservation=m.reservation_pb(result.reservation),
                                  quantity_returned=result.quantity_returned)


# method -> the reply message of a stored JSON snapshot
_REPLIES: dict[str, Callable[[bytes], Message]] = {
    "CreateItem": lambda d: pb.CreateItemResponse(item=m.item_pb(_item(d))),
    "UpdateItem": lambda d: pb.UpdateItemResponse(item=m.item_pb(_item(d))),
    "CreateCampaign": lambda d: pb.CreateCampaignResponse(campaign=m.campaign_pb(_campaign(d))),
    "EndCampaign": lambda d: pb.EndCampaignResponse(campaign=m.campaign_pb(_campaign(d))),
    "ReserveStock": lambda d: pb.ReserveStockResponse(reservation=m.reservation_pb(_reservation(d))),
    "CommitReservation": lambda d: pb.CommitReservationResponse(reservation=m.reservation_pb(_reservation(d))),
    "ReleaseReservation": lambda d: pb.ReleaseReservationResponse(reservation=m.reservation_pb(_reservation(d))),
    "ReturnStock": _returned,
}


def _carry(bind: Connection, old: str, new: sa.Table) -> None:
    rows = bind.execute(sa.text(
        f"SELECT method, request_id, fingerprint, response, create_time FROM {old} "
        "WHERE response IS NOT NULL ORDER BY create_time, method, request_id")).all()
    for row in rows:
        reply = _REPLIES[row.method](bytes(row.response))
        full = method_name(SERVICE, row.method)
        user_id = reply.reservation.user_id if isinstance(reply, pb.ReserveStockResponse) else ""
        bind.execute(sa.dialects.postgresql.insert(new).values(
            user_id=user_id, request_id=row.request_id, method=full,
            fingerprint=fingerprint_from_digest(full, bytes.fromhex(row.fingerprint)),
            reply=reply.SerializeToString(deterministic=True), created_time=row.create_time,
        ).on_conflict_do_nothing())


def upgrade() -> None:
    replace_idempotency_table_v1(op, _carry)


def downgrade() -> None:
    # Keys are not carried back (neither the old fingerprint nor the JSON reply is recoverable):
    # after a downgrade a retried request is judged afresh.
    restore_service_idempotency_table_v0(op, sa.String(32), key_has_method=True, response_nullable=True)
