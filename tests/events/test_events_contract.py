"""Envelopes, partitions and subjects: what consumers in any language rely on; no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from points.events.v1 import catalog_pb2, envelope_pb2, wallet_pb2
from points_platform.clock import ManualClock
from points_platform.events import EVENT_TYPES, new_event, partition_of, subject_for
from points_platform.outbox import Outbox, outbox_table
from points_platform.relay import backoff_seconds

WHEN = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_every_payload_of_the_envelope_is_an_event_type() -> None:
    payloads = envelope_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields
    assert {field.name for field in payloads} == EVENT_TYPES
    assert {"points_earned", "transaction_posted", "redemption_refunded", "stock_sold_out"} <= EVENT_TYPES


def test_new_event_names_its_payload_and_gets_a_fresh_id() -> None:
    sold_out = catalog_pb2.StockSoldOut(item_id="item-1", total_stock=100)
    first, second = (
        new_event("catalog", sold_out, user_id="", aggregate_id="item-1", aggregate_version=7, occurred_time=WHEN)
        for _ in range(2)
    )
    assert first.event_type == "stock_sold_out" and first.WhichOneof("payload") == "stock_sold_out"
    assert first.stock_sold_out == sold_out and first.aggregate_version == 7 and first.source_service == "catalog"
    assert first.occurred_time.ToDatetime(tzinfo=UTC) == WHEN
    assert first.event_id != second.event_id


def test_a_message_that_is_no_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="not an event payload"):
        new_event(
            "wallet", envelope_pb2.Event(), user_id="u", aggregate_id="u", aggregate_version=1, occurred_time=WHEN
        )


async def test_append_refuses_an_event_type_that_does_not_name_the_payload() -> None:
    event = new_event(
        "wallet", wallet_pb2.TransactionPosted(), user_id="u", aggregate_id="u", aggregate_version=1, occurred_time=WHEN
    )
    event.event_type = "stock_low"
    outbox = Outbox(outbox_table(sa.MetaData()), "wallet", 4, ManualClock())
    with pytest.raises(ValueError, match="does not name its payload"):
        await outbox.append(None, [event])  # type: ignore[arg-type]  # refused before any statement


def test_partitions_are_crc32_of_the_user_mod_n_stable_across_processes() -> None:
    # CRC-32 (IEEE) of "alice" is 663665735 in every language's zlib.
    assert partition_of("alice", 16) == 663665735 % 16 == 7
    assert partition_of("alice", 1) == 0
    assert subject_for("wallet", "transaction_posted", 7) == "points.wallet.transaction_posted.7"


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_seconds(n, base=0.1, cap=1.0) for n in range(6)] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert backoff_seconds(10_000) == 30.0
