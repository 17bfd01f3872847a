"""The transactional outbox of the wallet's domain events (transaction_posted; docs/events.md), the
sequence their aggregate versions are drawn from, and the SQL that finishes an event's payload.

The wallet's statements compute a balance and draw a version inside SQL, after the account row is
locked, so an event's last two fields are appended to its payload there: `wallet_event_tail`
encodes `aggregate_version` (envelope field 6) and, when given, `transaction_posted.balance_after`
(field 20, then field 5) as protobuf bytes. Concatenated protobuf messages parse as their merge, so
the prefix serialized in Python plus this tail is the whole event.

The outbox through the frozen helper `create_outbox_table_v1` (docs/contributing.md).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

from points_platform.migrations import create_outbox_table_v1

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_table_v1(op)
    op.execute("CREATE SEQUENCE wallet_event_version AS bigint")
    op.execute(
        r"""
        CREATE FUNCTION wallet_pb_varint(v bigint) RETURNS bytea
        LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
        DECLARE
            encoded bytea := ''::bytea;
        BEGIN
            IF v < 0 THEN
                RAISE EXCEPTION 'wallet_pb_varint: % is negative', v;
            END IF;
            WHILE v >= 128 LOOP
                encoded := encoded || decode(lpad(to_hex((v & 127) | 128), 2, '0'), 'hex');
                v := v >> 7;
            END LOOP;
            RETURN encoded || decode(lpad(to_hex(v), 2, '0'), 'hex');
        END
        $$
        """
    )
    # 0x30: field 6 (aggregate_version), varint; 0xa2 0x01: field 20 (transaction_posted),
    # length-delimited; 0x28: its field 5 (balance_after), varint. The nested length is below 128.
    op.execute(
        r"""
        CREATE FUNCTION wallet_event_tail(version bigint, balance_after bigint) RETURNS bytea
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT '\x30'::bytea || wallet_pb_varint(version)
                || CASE WHEN balance_after IS NULL THEN ''::bytea
                        ELSE '\xa201'::bytea || wallet_pb_varint(1 + length(wallet_pb_varint(balance_after)))
                             || '\x28'::bytea || wallet_pb_varint(balance_after) END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION wallet_event_tail(bigint, bigint)")
    op.execute("DROP FUNCTION wallet_pb_varint(bigint)")
    op.execute("DROP SEQUENCE wallet_event_version")
    op.drop_table("outbox")
