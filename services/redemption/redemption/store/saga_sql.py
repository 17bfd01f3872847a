"""The saga hot path as single SQL statements on the raw asyncpg connection.

Each statement is one round trip in autocommit (a single statement is its own transaction), so a
saga transition costs no BEGIN/COMMIT round trips and no SQLAlchemy statement building, and one
statement carries the writes of many concurrent sagas (`saga_batches`). The step-log rows (and a
grant's entitlement rows) ride in data-modifying CTEs of the same statement: they are written if
and only if their saga row moved.
"""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace
from typing import Any

# Transitions of several sagas (distinct redemption ids), one array element per saga.
# $1..$4: who/where (id, lease owner, expected mode, expected step); $5..$21 the new saga columns;
# $22..$25 the step-log rows of all of them (redemption id, name, outcome, detail: written in array
# order); $26..$38 granted entitlement rows (redemption id, entitlement id, unit, discount code,
# kind, state, raffle/event/cosmetic/gift ids, max uses, unlimited uses, expire time); $39..$44 outbox
# rows (redemption id, the granted entitlement id or '', event id, subject, partition, payload: the
# domain events, store/events.py). Returns the ids that moved; the step log, the entitlements and the
# events are written only for those. A retried grant hits (redemption_id, unit) and adds nothing, and
# neither does its event.
MOVE = """
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::timestamptz[],
                         $14::text[], $15::bool[], $16::bool[], $17::int[], $18::text[], $19::timestamptz[],
                         $20::timestamptz[], $21::timestamptz[])
        AS i(rid, owner, was_mode, was_step, state, mode, step, cancel_reason, item, currency, amount,
             reservation_id, reserved_at, hold_id, entitlements_granted, funds_committed, stock_attempt, notes,
             now, lease_until, completed_at)),
moved AS (
    UPDATE sagas s SET state = i.state, mode = i.mode, step = i.step, cancel_reason = i.cancel_reason,
           item = i.item::jsonb, currency = i.currency, amount = i.amount, reservation_id = i.reservation_id,
           reserved_at = i.reserved_at, hold_id = i.hold_id, entitlements_granted = i.entitlements_granted,
           funds_committed = i.funds_committed, stock_attempt = i.stock_attempt, notes = i.notes::jsonb,
           update_time = i.now, lease_until = i.lease_until, attempts = 0,
           completed_at = COALESCE(i.completed_at, s.completed_at)
    FROM i
    WHERE s.redemption_id = i.rid AND s.lease_owner = i.owner AND s.mode = i.was_mode
      AND s.step IS NOT DISTINCT FROM i.was_step
    RETURNING s.redemption_id, s.user_id, s.item_id, s.recipient_id, i.now),
logged AS (
    INSERT INTO saga_steps (redemption_id, name, outcome, detail, time)
    SELECT m.redemption_id, l.name, l.outcome, l.detail, m.now
    FROM unnest($22::text[], $23::text[], $24::text[], $25::text[]) WITH ORDINALITY AS l(rid, name, outcome, detail, n)
    JOIN moved m ON m.redemption_id = l.rid
    ORDER BY l.n),
granted AS (
    INSERT INTO entitlements (entitlement_id, user_id, redemption_id, unit, kind, item_id, state, discount_code,
                              raffle_id, event_id, recipient_id, cosmetic_id, gift_id, create_time, max_uses,
                              unlimited_uses, expire_time)
    SELECT g.id, m.user_id, m.redemption_id, g.unit, g.kind, m.item_id, g.state, g.code, g.raffle_id, g.event_id,
           m.recipient_id, g.cosmetic_id, g.gift_id, m.now, g.max_uses, g.unlimited_uses, g.expire_time
    FROM unnest($26::text[], $27::text[], $28::int[], $29::text[], $30::text[], $31::text[], $32::text[],
                $33::text[], $34::text[], $35::text[], $36::int[], $37::bool[], $38::timestamptz[])
        AS g(rid, id, unit, code, kind, state, raffle_id, event_id, cosmetic_id, gift_id, max_uses, unlimited_uses,
             expire_time)
    JOIN moved m ON m.redemption_id = g.rid
    ON CONFLICT (redemption_id, unit) DO NOTHING
    RETURNING entitlement_id),
outboxed AS (
    INSERT INTO outbox (event_id, subject, partition, payload, created_time)
    SELECT o.event_id::uuid, o.subject, o.partition, o.payload, m.now
    FROM unnest($39::text[], $40::text[], $41::text[], $42::text[], $43::smallint[], $44::bytea[])
        WITH ORDINALITY AS o(rid, entitlement_id, event_id, subject, partition, payload, n)
    JOIN moved m ON m.redemption_id = o.rid
    WHERE o.entitlement_id = '' OR o.entitlement_id IN (SELECT entitlement_id FROM granted)
    ORDER BY o.n)
SELECT redemption_id FROM moved
"""

# New sagas (distinct request ids) leased to their creator, with their first step-log rows
# ($26..$29: redemption id, name, outcome, detail). Returns the request ids inserted; one that
# already exists is skipped (the caller reads the stored saga).
CREATE = """
WITH created AS (
    INSERT INTO sagas (redemption_id, request_id, fingerprint, user_id, item_id, quantity, region, recipient_id,
                       state, mode, step, cancel_reason, item, currency, amount, reservation_id, reserved_at,
                       hold_id, entitlements_granted, funds_committed, stock_attempt, notes, next_attempt_at,
                       lease_owner, lease_until, create_time, update_time)
    SELECT c.rid, c.request_id, c.fingerprint, c.user_id, c.item_id, c.quantity, c.region, c.recipient_id, c.state,
           c.mode, c.step, c.cancel_reason, c.item::jsonb, c.currency, c.amount, c.reservation_id, c.reserved_at,
           c.hold_id, c.entitlements_granted, c.funds_committed, c.stock_attempt, c.notes::jsonb, c.now, c.owner,
           c.lease_until, c.now, c.now
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[],
                $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[],
                $16::text[], $17::timestamptz[], $18::text[], $19::bool[], $20::bool[], $21::int[], $22::text[],
                $23::timestamptz[], $24::text[], $25::timestamptz[])
        AS c(rid, request_id, fingerprint, user_id, item_id, quantity, region, recipient_id, state, mode, step,
             cancel_reason, item, currency, amount, reservation_id, reserved_at, hold_id, entitlements_granted,
             funds_committed, stock_attempt, notes, now, owner, lease_until)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING redemption_id, request_id, create_time),
logged AS (
    INSERT INTO saga_steps (redemption_id, name, outcome, detail, time)
    SELECT c.redemption_id, l.name, l.outcome, l.detail, c.create_time
    FROM unnest($26::text[], $27::text[], $28::text[], $29::text[]) WITH ORDINALITY AS l(rid, name, outcome, detail, n)
    JOIN created c ON c.redemption_id = l.rid
    ORDER BY l.n)
SELECT request_id FROM created
"""

# A saga with its step log and entitlement ids, in one round trip (what GetRedemption shows).
VIEW = """
SELECT s.*,
       (SELECT coalesce(json_agg(json_build_array(st.name, st.outcome, st.detail, st.time) ORDER BY st.id), '[]')
        FROM saga_steps st WHERE st.redemption_id = s.redemption_id) AS step_log,
       (SELECT coalesce(array_agg(e.entitlement_id ORDER BY e.unit), '{}')
        FROM entitlements e WHERE e.redemption_id = s.redemption_id) AS entitlement_ids
FROM sagas s WHERE s.redemption_id = $1
"""


def jsonb(value: Any) -> str:
    return json.dumps(value)


def decoded(value: Any) -> Any:
    """JSON from the raw connection: SQLAlchemy's asyncpg dialect installs decoding codecs, a bare one would not."""
    return json.loads(value) if isinstance(value, str) else value


def row_namespace(record: Any) -> SimpleNamespace:
    """An asyncpg record as the attribute-style row the store's mappers read (JSON decoded)."""
    data = dict(record)
    for key in ("item", "notes", "step_log"):
        data[key] = decoded(data.get(key))
    return SimpleNamespace(**data)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)
