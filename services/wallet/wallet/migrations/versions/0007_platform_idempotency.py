"""The platform's idempotency (points_platform.idempotency): the shared table, and hold_requests
for the hold statements' folded replies; the old table's rows carried over.

The old table kept (op, request_id) -> (hex command digest, JSON of the use case's result). Each
row moves to the key (user_id, request_id) of the user the request acted for ('' for RefundHold and
CompletePayout, which name no user; store/idempotency.py), with the fingerprint
derived from the old digest and the RPC (`fingerprint_from_digest`: a reused key is still refused)
and the JSON converted to the RPC's reply message (proto bytes), here in Python:
- credit / debit / gift / forfeit / refund / payout_request / payout_complete / suspended /
  reinstated: the shared table, the reply of Credit (a CreditBatch entry is a Credit), Debit,
  SendGift, ForfeitPoints, RefundHold, RequestPayout, CompletePayout, SuspendUser, ReinstateUser;
- reserve / commit / release: a `hold_requests` row (the balance after the call, a commit's
  transaction id), from which the hold statements rebuild the reply.
Old rows of one user with one request id under different ops collide on the new key: the oldest is
kept (a key now names one request of a user, whatever its method).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from google.protobuf import json_format
from google.protobuf.message import Message
from sqlalchemy.engine import Connection

from points.wallet.v1 import wallet_pb2 as pb
from points_platform.idempotency import fingerprint_from_digest, method_name
from points_platform.migrations import replace_idempotency_table_v1

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SERVICE = "points.wallet.v1.WalletService"

# old op -> (method, reply type) of the rows that go to the shared table
_TABLE_OPS: dict[str, tuple[str, type[Message]]] = {
    "credit": ("Credit", pb.CreditResponse),
    "debit": ("Debit", pb.DebitResponse),
    "gift": ("SendGift", pb.SendGiftResponse),
    "forfeit": ("ForfeitPoints", pb.ForfeitPointsResponse),
    "refund": ("RefundHold", pb.RefundHoldResponse),
    "payout_request": ("RequestPayout", pb.RequestPayoutResponse),
    "payout_complete": ("CompletePayout", pb.CompletePayoutResponse),
    "suspended": ("SuspendUser", pb.SuspendUserResponse),
    "reinstated": ("ReinstateUser", pb.ReinstateUserResponse),
}
_HOLD_OPS = {"reserve": "Reserve", "commit": "CommitHold", "release": "ReleaseHold"}


def _present(value: Any) -> Any:
    """The JSON without its nulls (an unset message field)."""
    if isinstance(value, dict):
        return {k: _present(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_present(v) for v in value]
    return value


def _reply(old_op: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The user the request acted for, and the reply message's fields."""
    if old_op in ("credit", "debit", "forfeit"):
        balance = body["balances"][0]
        fields = {"transaction": body["transaction"], "balance": balance}
        if old_op == "forfeit":
            fields["amount"] = -body["transaction"]["postings"][0]["amount"]
        return balance["user_id"], fields
    if old_op == "gift":
        sender, creator = body["balances"]
        credited = next(p["amount"] for p in body["transaction"]["postings"] if p["user_id"] == creator["user_id"])
        return sender["user_id"], {
            "transaction": body["transaction"], "diamonds_credited": credited, "sender_balance": sender,
            "creator_balance": creator, "gift_rate_bps": body["gift_rate_bps"],
        }
    if old_op == "refund":  # RefundHold and CompletePayout name no user: ''
        return "", body
    if old_op.startswith("payout_"):
        return body["creator_id"] if old_op == "payout_request" else "", {"payout": body}
    state = pb.USER_STATE_SUSPENDED if body["suspended"] else pb.USER_STATE_ACTIVE
    return body["user_id"], {"status": {"user_id": body["user_id"], "state": state, "last_change": body["last_change"]}}


def upgrade() -> None:
    hold_requests = op.create_table(
        "hold_requests",
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.LargeBinary, nullable=False),
        sa.Column("hold_id", sa.Text, nullable=False),
        sa.Column("available", sa.BigInteger, nullable=False),
        sa.Column("held", sa.BigInteger, nullable=False),
        sa.Column("transaction_id", sa.Text, nullable=True),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "request_id", name="hold_requests_pkey"),
    )

    def carry(bind: Connection, old: str, shared: sa.Table) -> None:
        rows = bind.execute(sa.text(
            f"SELECT op, request_id, fingerprint, response, create_time FROM {old} ORDER BY create_time, op, request_id"
        ))
        taken: set[tuple[str, str]] = set()
        to_table: list[dict[str, object]] = []
        to_holds: list[dict[str, object]] = []
        for row in rows:
            body = json.loads(row.response)
            if row.op in _HOLD_OPS:
                user_id = body["hold"]["user_id"]
                method = method_name(SERVICE, _HOLD_OPS[row.op])
            else:
                short, reply_type = _TABLE_OPS[row.op]
                user_id, fields = _reply(row.op, body)
                method = method_name(SERVICE, short)
            if (user_id, row.request_id) in taken:
                continue
            taken.add((user_id, row.request_id))
            kept = {"user_id": user_id, "request_id": row.request_id, "method": method,
                    "fingerprint": fingerprint_from_digest(method, bytes.fromhex(row.fingerprint)),
                    "created_time": row.create_time}
            if row.op in _HOLD_OPS:
                transaction = body.get("transaction")
                to_holds.append(kept | {
                    "hold_id": body["hold"]["hold_id"], "available": body["balance"]["available"],
                    "held": body["balance"]["held"],
                    "transaction_id": transaction["transaction_id"] if transaction else None,
                })
            else:
                reply = json_format.ParseDict(_present(fields), reply_type())
                to_table.append(kept | {"reply": reply.SerializeToString(deterministic=True)})
        if to_table:
            op.bulk_insert(shared, to_table)
        if to_holds:
            op.bulk_insert(hold_requests, to_holds)

    replace_idempotency_table_v1(op, carry)


def downgrade() -> None:
    """The old shape, empty: its fingerprints cannot be derived back from the new ones."""
    op.drop_table("hold_requests")
    op.drop_table("idempotency")
    op.create_table(
        "idempotency",
        sa.Column("op", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("op", "request_id", name="idempotency_pkey"),
    )
