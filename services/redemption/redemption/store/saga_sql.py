"""The saga hot path as single SQL statements on the raw asyncpg connection.

Each statement is one round trip in autocommit (a single statement is its own transaction), so a
saga transition costs no BEGIN/COMMIT round trips and no SQLAlchemy statement building. The
step-log rows (and a grant's entitlement rows) ride in data-modifying CTEs of the same statement:
they are written if and only if the saga row moved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

# $1..$4: who/where (id, lease owner, expected mode, expected step); $5..$21 the new saga columns;
# $22..$24 the step log (name, outcome, detail arrays, written in array order).
_MOVE = """
    moved AS (
        UPDATE sagas SET state = $5, mode = $6, step = $7, cancel_reason = $8, item = $9::jsonb,
               currency = $10, amount = $11, reservation_id = $12, reserved_at = $13, hold_id = $14,
               entitlements_granted = $15, funds_committed = $16, stock_attempt = $17, notes = $18::jsonb,
               update_time = $19, lease_until = $20, attempts = 0, completed_at = COALESCE($21, completed_at)
        WHERE redemption_id = $1 AND lease_owner = $2 AND mode = $3 AND step IS NOT DISTINCT FROM $4
        RETURNING redemption_id, user_id, item_id, recipient_id),
    logged AS (
        INSERT INTO saga_steps (redemption_id, name, outcome, detail, time)
        SELECT m.redemption_id, l.name, l.outcome, l.detail, $19
        FROM moved m, unnest($22::text[], $23::text[], $24::text[]) WITH ORDINALITY AS l(name, outcome, detail, n)
        ORDER BY l.n)
"""

TRANSITION = f"WITH {_MOVE} SELECT count(*) FROM moved"

# Also grants entitlements ($25.. : kind, state, raffle/event/cosmetic/gift ids, then per unit:
# entitlement ids, units, discount codes); a retried grant hits (redemption_id, unit) and adds nothing.
TRANSITION_GRANTING = f"""
WITH {_MOVE},
    granted AS (
        INSERT INTO entitlements (entitlement_id, user_id, redemption_id, unit, kind, item_id, state, discount_code,
                                  raffle_id, event_id, recipient_id, cosmetic_id, gift_id, create_time)
        SELECT e.id, m.user_id, m.redemption_id, e.unit, $25, m.item_id, $26, e.code, $27, $28, m.recipient_id,
               $29, $30, $19
        FROM moved m, unnest($31::text[], $32::int[], $33::text[]) AS e(id, unit, code)
        ON CONFLICT (redemption_id, unit) DO NOTHING)
SELECT count(*) FROM moved
"""

# A new saga leased to its creator, with its first step-log rows; 0 rows when request_id exists.
CREATE = """
WITH created AS (
    INSERT INTO sagas (redemption_id, request_id, fingerprint, user_id, item_id, quantity, region, recipient_id,
                       state, mode, step, cancel_reason, item, currency, amount, reservation_id, reserved_at,
                       hold_id, entitlements_granted, funds_committed, stock_attempt, notes, next_attempt_at,
                       lease_owner, lease_until, create_time, update_time)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15, $16, $17, $18, $19, $20, $21,
            $22::jsonb, $23, $24, $25, $23, $23)
    ON CONFLICT (request_id) DO NOTHING
    RETURNING redemption_id),
logged AS (
    INSERT INTO saga_steps (redemption_id, name, outcome, detail, time)
    SELECT c.redemption_id, l.name, l.outcome, l.detail, $23
    FROM created c, unnest($26::text[], $27::text[], $28::text[]) WITH ORDINALITY AS l(name, outcome, detail, n)
    ORDER BY l.n)
SELECT count(*) FROM created
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


def log_arrays(logs: Sequence[tuple[str, str, str]]) -> tuple[list[str], list[str], list[str]]:
    return [s for s, _, _ in logs], [o for _, o, _ in logs], [d[:500] for _, _, d in logs]


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
