"""user_id in the keys of points_lots and user_status_changes (issue 15: every per-user key carries
the distribution column). The ids stay unique (identity columns); the keys only gain the user in
front, which also serves the by-user reads (the separate by-user index of the changes goes).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE points_lots DROP CONSTRAINT points_lots_pkey")
    op.execute("ALTER TABLE points_lots ADD CONSTRAINT points_lots_pkey PRIMARY KEY (user_id, lot_id)")
    op.execute("ALTER TABLE user_status_changes DROP CONSTRAINT user_status_changes_pkey")
    op.execute(
        "ALTER TABLE user_status_changes ADD CONSTRAINT user_status_changes_pkey PRIMARY KEY (user_id, change_id)"
    )
    op.drop_index("user_status_changes_by_user", table_name="user_status_changes")


def downgrade() -> None:
    op.create_index("user_status_changes_by_user", "user_status_changes", ["user_id", "change_id"])
    op.execute("ALTER TABLE user_status_changes DROP CONSTRAINT user_status_changes_pkey")
    op.execute("ALTER TABLE user_status_changes ADD CONSTRAINT user_status_changes_pkey PRIMARY KEY (change_id)")
    op.execute("ALTER TABLE points_lots DROP CONSTRAINT points_lots_pkey")
    op.execute("ALTER TABLE points_lots ADD CONSTRAINT points_lots_pkey PRIMARY KEY (lot_id)")
