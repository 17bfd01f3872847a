"""Admin replies stored as the RPC's reply message: the keys stored before (their reply the proto
bytes of a `google.protobuf.Struct` of a small JSON object: an id, a version, a participation) move
aside to `idempotency_struct_replies`, the same shape, where the service still finds them: such a
key replays a reply rebuilt from that object and still refuses another request. Nothing new is
written there.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

from points_platform.migrations import create_idempotency_table_v1

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_COLUMNS = "user_id, request_id, method, fingerprint, reply, created_time"


def upgrade() -> None:
    create_idempotency_table_v1(op, "idempotency_struct_replies")
    op.execute(f"INSERT INTO idempotency_struct_replies ({_COLUMNS}) SELECT {_COLUMNS} FROM idempotency")
    op.execute("DELETE FROM idempotency")


def downgrade() -> None:
    """The Struct keys back; typed replies are dropped (the older code cannot read them): after a
    downgrade their keys are judged afresh."""
    op.execute("DELETE FROM idempotency")
    op.execute(f"INSERT INTO idempotency ({_COLUMNS}) SELECT {_COLUMNS} FROM idempotency_struct_replies")
    op.drop_table("idempotency_struct_replies")
