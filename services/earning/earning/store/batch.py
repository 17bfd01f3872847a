"""Set-based reads and writes of a batch of events: a fixed number of statements per batch.

Every statement is built once, here, at import (`text()` over arrays with `unnest`), so a batch
costs the same few round trips whether it carries 1 event or 1,000. Reads happen after the
devices' and users' rows are locked (sorted: batches cannot deadlock on them), the challenge rows
are locked in id order, so what is read stays true until commit.
"""

from __future__ import annotations

import json
import uuid
from collections import namedtuple
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from earning.domain.batch import BatchWrites, KnownFacts, group_joined
from earning.domain.credit import PendingCredit
from earning.domain.evaluation import ReceiveRate, Streak
from earning.domain.model import ActivityEvent, ActivityType, EventStatus, RuleApplication
from earning.store.activity import CHARGE_SQL, breakdown_from, challenge_from_row
from earning.store.events import EarningEvents, Written, batch_events, budget_exhausted
from earning.use_cases.ports import LockedUsers, NewEvent, NewHeld, Replay, StoredEvent

# Locks the batch's devices, then its users, each class in one global order, so batches cannot
# deadlock on them. The devices serialize the shared-device count: two batches with first-time
# accounts on one device would otherwise both read the device's accounts before either commits.
# A device's lock is a transaction-scoped advisory lock on the hash of its id (in hash order; two
# devices sharing a hash only wait for each other): it writes no WAL and no row, where a lock row
# per device cost an insert, its index entry and a confirmation for every new device and a lock
# record for every known one (docs/benchmarks.md, 2026-12-06). Users' rows are locked by the
# upsert (missing rows are created; the DO UPDATE takes the lock, bumps the user's event version and
# returns the row: it wrote the row before the version too, so the version adds no WAL record). The
# device CTE is an InitPlan of the users' insert (the `>= 0` filter), so it runs to completion
# before any user is locked.
# The first key of the devices' advisory locks (the second is the device id's hash): "devi".
DEVICE_LOCK_SPACE = 0x64657669
_LOCK_BATCH = text(
    f"WITH locked_devices AS (SELECT count(pg_advisory_xact_lock({DEVICE_LOCK_SPACE}, q.h)) AS n"
    " FROM (SELECT DISTINCT hashtext(d) AS h FROM unnest(CAST(:devices AS text[])) AS d ORDER BY 1) AS q)"
    " INSERT INTO user_state AS s (user_id, event_version) SELECT unnest(CAST(:users AS text[])), 1"
    " WHERE (SELECT n FROM locked_devices) >= 0"
    " ON CONFLICT (user_id) DO UPDATE SET event_version = s.event_version + 1"
    " RETURNING s.user_id, s.streak_last_day, s.streak_days, s.rate_level, s.rate_time, s.event_version,"
    " (SELECT coalesce(max(version), 0) FROM rule_versions) AS rules_version"
)
# Everything a batch reads, in one statement (one snapshot, taken after the users are locked):
# stored events (replays) with their credit, today's counters, paid targets and milestones,
# recent accepted events (velocity, decay), device accounts, account devices, and the joined challenges active
# during the batch, whose rows are locked in id order (their budgets are charged by the batch).
_READ_ALL_SQL = (
    "WITH joined AS (SELECT c.challenge_id, c.name, c.start_time, c.end_time,"
    # arrays inside an anonymous record have no asyncpg decoder: sent as comma-separated text
    " array_to_string(c.regions, ',') AS regions, array_to_string(c.activity_types, ',') AS activity_types,"
    " c.multiplier_bps, c.early_join_window_seconds, c.early_join_bonus_points, c.sponsor,"
    " c.sponsor_budget_points, c.budget_spent_points, c.create_time, p.user_id AS participant, p.join_time"
    " FROM participations p JOIN challenges c ON c.challenge_id = p.challenge_id"
    " WHERE p.user_id = ANY(CAST(:users AS text[])) AND c.start_time <= :until AND c.end_time > :since"
    " ORDER BY c.challenge_id FOR UPDATE OF c)"
    " SELECT"
    " ARRAY(SELECT ROW(e.event_id, e.fingerprint, e.user_id, e.status, e.points, CAST(e.breakdown AS text),"
    " e.rejection_reason, e.held_earning_id, e.credit_request_id,"
    " c.user_id, c.amount, c.reason, c.reference, c.pending, c.wallet_transaction_id)"
    " FROM events e LEFT JOIN credits c ON c.request_id = e.credit_request_id AND e.credit_request_id <> ''"
    " WHERE e.event_id = ANY(CAST(:ids AS text[]))) AS stored,"
    " ARRAY(SELECT ROW(user_id, day, type, capped_points) FROM daily_counters"
    " WHERE user_id = ANY(CAST(:users AS text[])) AND day = ANY(CAST(:days AS date[]))) AS counters,"
    " ARRAY(SELECT ROW(p.user_id, p.type, p.target_id) FROM paid_targets p"
    " JOIN unnest(CAST(:pt_users AS text[]), CAST(:pt_types AS smallint[]), CAST(:pt_targets AS text[])) AS q(u, t, g)"
    " ON p.user_id = q.u AND p.type = q.t AND p.target_id = q.g) AS targets,"
    " ARRAY(SELECT ROW(p.user_id, p.game_id, p.milestone_id) FROM paid_milestones p"
    " JOIN unnest(CAST(:pm_users AS text[]), CAST(:pm_games AS text[]), CAST(:pm_milestones AS text[]))"
    " AS q(u, g, m) ON p.user_id = q.u AND p.game_id = q.g AND p.milestone_id = q.m) AS milestones,"
    " ARRAY(SELECT ROW(e.user_id, e.type, e.occurred_at) FROM events e"
    " JOIN unnest(CAST(:re_users AS text[]), CAST(:re_since AS timestamptz[]), CAST(:re_until AS timestamptz[]))"
    " AS q(u, s, t) ON e.user_id = q.u AND e.occurred_at >= q.s AND e.occurred_at <= q.t"
    " WHERE e.status IN (1, 2, 4)) AS recent,"  # AWARDED, CAPPED, HELD_FOR_REVIEW: the accepted ones
    " ARRAY(SELECT ROW(d.device_id, d.day, d.user_id) FROM device_accounts d"
    " JOIN unnest(CAST(:da_devices AS text[]), CAST(:da_days AS date[])) AS q(v, d)"
    " ON d.device_id = q.v AND d.day = q.d) AS devices,"
    # the users' devices today (account sharing): read under the users' locks, as the devices' accounts
    # are under the devices' locks, so concurrent batches of one user count its devices in turn
    " ARRAY(SELECT ROW(d.user_id, d.day, d.device_id) FROM device_accounts d"
    " WHERE d.user_id = ANY(CAST(:ad_users AS text[])) AND d.day = ANY(CAST(:days AS date[]))) AS account_devices,"
    " ARRAY(SELECT ROW(j.*) FROM joined j) AS joined"
)
_READ_ALL = text(_READ_ALL_SQL)
# The same reads for a preview, which changes nothing and so locks nothing (a read-only transaction
# refuses FOR UPDATE).
_PEEK_ALL = text(_READ_ALL_SQL.replace(" FOR UPDATE OF c", ""))
assert _PEEK_ALL.text != _READ_ALL.text

_SNAPSHOT = text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
_PEEK_USERS = text(
    "SELECT user_id, streak_last_day, streak_days, rate_level, rate_time FROM user_state"
    " WHERE user_id = ANY(CAST(:users AS text[]))"
)

_ChallengeRow = namedtuple(
    "_ChallengeRow",
    "challenge_id name start_time end_time regions activity_types multiplier_bps early_join_window_seconds"
    " early_join_bonus_points sponsor sponsor_budget_points budget_spent_points create_time participant join_time",
)


# All of a batch's writes in one statement (data-modifying CTEs on distinct tables; empty arrays
# write nothing). The budget charge is conditional; `charged` must equal the challenges charged.
# Counters, paid targets, milestones, device accounts and credits are plain INSERTs (and the
# counters read as stored plain UPDATEs): each row is new by construction (its absence was read
# under the users' and devices' locks, which its batch writers hold; a credit's id derives from
# new event ids). ON CONFLICT's speculative insertion would cost an index probe and a WAL record
# more per new row, and its DO UPDATE a lock record more per updated one. A row that another
# writer (a held earning's resolution) inserted meanwhile fails the batch with a unique
# violation, which `Database.retrying` runs again.
_WRITE_ALL = text(
    "WITH ev AS (INSERT INTO events (event_id, fingerprint, user_id, type, occurred_at, received_at, day, status,"
    " points, breakdown, rejection_reason, held_earning_id, credit_request_id)"
    " SELECT e, f, u, t, o, CAST(:now AS timestamptz), d, s, p, CAST(b AS jsonb), r, h, c FROM unnest("
    " CAST(:ev_ids AS text[]), CAST(:ev_fingerprints AS text[]), CAST(:ev_users AS text[]),"
    " CAST(:ev_types AS smallint[]), CAST(:ev_occurred AS timestamptz[]), CAST(:ev_days AS date[]),"
    " CAST(:ev_statuses AS smallint[]), CAST(:ev_points AS bigint[]), CAST(:ev_breakdowns AS text[]),"
    " CAST(:ev_reasons AS text[]), CAST(:ev_held AS text[]), CAST(:ev_credits AS text[]))"
    " AS q(e, f, u, t, o, d, s, p, b, r, h, c)),"
    " dc AS (INSERT INTO daily_counters (user_id, day, type, capped_points, credited_points, held_points)"
    " SELECT * FROM unnest(CAST(:dc_users AS text[]), CAST(:dc_days AS date[]), CAST(:dc_types AS smallint[]),"
    " CAST(:dc_capped AS bigint[]), CAST(:dc_credited AS bigint[]), CAST(:dc_held AS bigint[]))),"
    " du AS (UPDATE daily_counters c SET capped_points = c.capped_points + q.x,"
    " credited_points = c.credited_points + q.y, held_points = c.held_points + q.z"
    " FROM unnest(CAST(:du_users AS text[]), CAST(:du_days AS date[]),"
    " CAST(:du_types AS smallint[]), CAST(:du_capped AS bigint[]), CAST(:du_credited AS bigint[]),"
    " CAST(:du_held AS bigint[])) AS q(u, d, t, x, y, z) WHERE c.user_id = q.u AND c.day = q.d AND c.type = q.t),"
    " pt AS (INSERT INTO paid_targets (user_id, type, target_id)"
    " SELECT * FROM unnest(CAST(:pt_users AS text[]), CAST(:pt_types AS smallint[]), CAST(:pt_targets AS text[]))"
    "),"
    " pm AS (INSERT INTO paid_milestones (user_id, game_id, milestone_id)"
    " SELECT * FROM unnest(CAST(:pm_users AS text[]), CAST(:pm_games AS text[]), CAST(:pm_milestones AS text[]))"
    "),"
    " da AS (INSERT INTO device_accounts (device_id, day, user_id)"
    " SELECT * FROM unnest(CAST(:da_devices AS text[]), CAST(:da_days AS date[]), CAST(:da_users AS text[]))"
    "),"
    " st AS (UPDATE user_state s SET streak_last_day = q.d, streak_days = q.n, rate_level = q.l, rate_time = q.t"
    " FROM unnest(CAST(:st_users AS text[]), CAST(:st_days AS date[]), CAST(:st_lengths AS integer[]),"
    " CAST(:st_levels AS double precision[]), CAST(:st_times AS timestamptz[])) AS q(u, d, n, l, t)"
    " WHERE s.user_id = q.u),"
    " he AS (INSERT INTO held_earnings (held_earning_id, event_id, user_id, type, day, points, sponsored, reason,"
    " state, create_time) SELECT i, e, u, t, d, p, CAST(s AS jsonb), r, 1, CAST(:now AS timestamptz) FROM unnest("
    " CAST(:he_ids AS text[]), CAST(:he_events AS text[]), CAST(:he_users AS text[]), CAST(:he_types AS smallint[]),"
    " CAST(:he_days AS date[]), CAST(:he_points AS bigint[]), CAST(:he_sponsored AS text[]),"
    " CAST(:he_reasons AS text[])) AS q(i, e, u, t, d, p, s, r)),"
    " cr AS (INSERT INTO credits (request_id, user_id, amount, reason, reference, pending, create_time)"
    " SELECT r, u, a, why, ref, true, CAST(:now AS timestamptz)"
    " FROM unnest(CAST(:cr_ids AS text[]), CAST(:cr_users AS text[]),"
    " CAST(:cr_amounts AS bigint[]), CAST(:cr_reasons AS text[]), CAST(:cr_refs AS text[])) AS q(r, u, a, why, ref)"
    "),"
    " ob AS (INSERT INTO outbox (event_id, subject, partition, payload, created_time)"
    " SELECT i, s, p, b, CAST(:now AS timestamptz) FROM unnest(CAST(:ob_ids AS uuid[]), CAST(:ob_subjects AS text[]),"
    " CAST(:ob_partitions AS smallint[]), CAST(:ob_payloads AS bytea[])) AS q(i, s, p, b)),"
    f" ch AS ({CHARGE_SQL})"
    " SELECT count(*) AS charged, coalesce(array_agg(ROW(challenge_id, sponsor_budget_points, budget_exhaustions))"
    " FILTER (WHERE exhausted), '{}') AS exhausted FROM ch"
)


def _challenge_row(values: tuple[Any, ...]) -> _ChallengeRow:
    row = _ChallengeRow(*values)
    return row._replace(
        regions=[r for r in row.regions.split(",") if r],
        activity_types=[int(t) for t in row.activity_types.split(",") if t],
    )


def _breakdown_text(steps: Sequence[RuleApplication]) -> str:
    return json.dumps([[s.rule.value, s.points, s.detail, s.challenge_id] for s in steps])


class BatchRepository:
    """A batch's locks, reads and writes, on the connection of the caller's transaction."""

    def __init__(self, conn: AsyncConnection, events: EarningEvents, written: Written) -> None:
        self._conn = conn
        self._events = events
        self._written = written

    async def lock_batch(self, user_ids: Sequence[str], device_ids: Sequence[str]) -> LockedUsers:
        """Lock the devices' and the users' rows (created if missing), each in id order: the users'
        streaks and receive-time buckets, and the latest rules version."""
        params = {"users": sorted(set(user_ids)), "devices": sorted({d for d in device_ids if d})}
        rows = (await self._conn.execute(_LOCK_BATCH, params)).all()
        return LockedUsers(
            {r.user_id: Streak(r.streak_last_day, r.streak_days) for r in rows},
            {r.user_id: ReceiveRate(r.rate_level, r.rate_time) for r in rows},
            rows[0].rules_version,
            {r.user_id: r.event_version for r in rows},
        )

    async def begin_snapshot(self) -> None:
        """Make the connection's transaction one read-only snapshot: every read sees the same state,
        and a write would fail."""
        await self._conn.execute(_SNAPSHOT)

    async def peek_users(self, user_ids: Sequence[str], rules_version: int) -> LockedUsers:
        """The users' streaks and receive-time buckets as `lock_batch` returns them, without locking or
        creating anything (a preview)."""
        rows = (await self._conn.execute(_PEEK_USERS, {"users": sorted(set(user_ids))})).all()
        return LockedUsers(
            {r.user_id: Streak(r.streak_last_day, r.streak_days) for r in rows},
            {r.user_id: ReceiveRate(r.rate_level, r.rate_time) for r in rows},
            rules_version,
        )

    async def read_batch(
        self,
        events: Sequence[tuple[ActivityEvent, date]],
        users: LockedUsers,
        lookback: timedelta,
        *,
        lock: bool = True,
    ) -> tuple[dict[str, Replay], KnownFacts]:
        """Stored events (replays) and everything the batch's evaluations read, in one round trip.
        `lock=False` (a preview) leaves the joined challenges' rows unlocked."""
        targets = sorted({(e.user_id, e.type.value, e.target_id) for e, _ in events if e.target_id})
        milestones = sorted(
            {(e.user_id, e.game_id, e.milestone_id) for e, _ in events if e.type == ActivityType.GAME_MILESTONE}
        )
        spans: dict[str, tuple[datetime, datetime]] = {}
        for e, _ in events:
            low, high = spans.get(e.user_id, (e.occurred_at, e.occurred_at))
            spans[e.user_id] = (min(low, e.occurred_at), max(high, e.occurred_at))
        device_days = sorted({(e.device_id, d) for e, d in events if e.device_id})
        params = {
            "ids": sorted({e.event_id for e, _ in events}),
            "users": sorted(spans),
            "days": sorted({d for _, d in events}),
            "since": min(low for low, _ in spans.values()),
            "until": max(high for _, high in spans.values()),
            "pt_users": [t[0] for t in targets],
            "pt_types": [t[1] for t in targets],
            "pt_targets": [t[2] for t in targets],
            "pm_users": [m[0] for m in milestones],
            "pm_games": [m[1] for m in milestones],
            "pm_milestones": [m[2] for m in milestones],
            "re_users": list(spans),
            "re_since": [low - lookback for low, _ in spans.values()],
            "re_until": [high for _, high in spans.values()],
            "da_devices": [d[0] for d in device_days],
            "da_days": [d[1] for d in device_days],
            "ad_users": sorted({e.user_id for e, _ in events if e.device_id}),
        }
        row = (await self._conn.execute(_READ_ALL if lock else _PEEK_ALL, params)).one()
        replays = {}
        for (event_id, fingerprint, user_id, status, points, breakdown, reason, held_id, credit_id,
             credit_user, amount, credit_reason, reference, pending, transaction_id) in row.stored:
            stored = StoredEvent(
                event_id, fingerprint, user_id, EventStatus(status), points, breakdown_from(json.loads(breakdown)),
                reason, held_id, credit_id,
            )
            credit = PendingCredit(credit_id, credit_user, amount, credit_reason, reference) if pending else None
            replays[event_id] = Replay(stored, credit, transaction_id if pending is False else "")
        devices: dict[tuple[str, date], set[str]] = {}
        for device, day, user in row.devices:
            devices.setdefault((device, day), set()).add(user)
        account_devices: dict[tuple[str, date], set[str]] = {}
        for user, day, device in row.account_devices:
            account_devices.setdefault((user, day), set()).add(device)
        joined = group_joined(
            (r.participant, challenge_from_row(r), r.join_time) for r in (_challenge_row(j) for j in row.joined)
        )
        known = KnownFacts(
            streaks=users.streaks,
            rates=users.rates,
            capped_today={(u, d, t): capped for u, d, t, capped in row.counters},
            paid_targets={(u, t, g) for u, t, g in row.targets},
            paid_milestones={(u, g, m) for u, g, m in row.milestones},
            recent=list(row.recent),
            device_accounts=devices,
            account_devices=account_devices,
            joined=joined,
        )
        return replays, known

    async def write(
        self,
        now: datetime,
        new_events: Sequence[NewEvent],
        held: Sequence[NewHeld],
        credits: Sequence[PendingCredit],
        writes: BatchWrites,
        versions: Mapping[str, int],
    ) -> None:
        """The batch's effects and their events in one round trip (`versions`: the users' event versions
        from `lock_batch`). A budget the batch exhausts adds one statement for its event (once per budget)."""
        events = batch_events(str(uuid.uuid4()), now, new_events, held, credits, versions)
        counters = sorted(k for k in writes.counters if k not in writes.stored_counters)
        stored = sorted(writes.stored_counters)
        states = sorted(writes.user_states.items())
        charges = sorted(writes.budget_charges.items())
        pt, pm, da = sorted(writes.paid_targets), sorted(writes.paid_milestones), sorted(writes.device_accounts)
        params = {
            "now": now,
            "ev_ids": [n.event.event_id for n in new_events],
            "ev_fingerprints": [n.stored.fingerprint for n in new_events],
            "ev_users": [n.event.user_id for n in new_events],
            "ev_types": [n.event.type.value for n in new_events],
            "ev_occurred": [n.event.occurred_at for n in new_events],
            "ev_days": [n.day for n in new_events],
            "ev_statuses": [n.stored.status.value for n in new_events],
            "ev_points": [n.stored.points for n in new_events],
            "ev_breakdowns": [_breakdown_text(n.stored.breakdown) for n in new_events],
            "ev_reasons": [n.stored.rejection_reason for n in new_events],
            "ev_held": [n.stored.held_earning_id for n in new_events],
            "ev_credits": [n.stored.credit_request_id for n in new_events],
            "dc_users": [k[0] for k in counters],
            "dc_days": [k[1] for k in counters],
            "dc_types": [k[2] for k in counters],
            "dc_capped": [writes.counters[k][0] for k in counters],
            "dc_credited": [writes.counters[k][1] for k in counters],
            "dc_held": [writes.counters[k][2] for k in counters],
            "du_users": [k[0] for k in stored],
            "du_days": [k[1] for k in stored],
            "du_types": [k[2] for k in stored],
            "du_capped": [writes.counters[k][0] for k in stored],
            "du_credited": [writes.counters[k][1] for k in stored],
            "du_held": [writes.counters[k][2] for k in stored],
            "pt_users": [t[0] for t in pt],
            "pt_types": [t[1] for t in pt],
            "pt_targets": [t[2] for t in pt],
            "pm_users": [m[0] for m in pm],
            "pm_games": [m[1] for m in pm],
            "pm_milestones": [m[2] for m in pm],
            "da_devices": [d[0] for d in da],
            "da_days": [d[1] for d in da],
            "da_users": [d[2] for d in da],
            "st_users": [u for u, _ in states],
            "st_days": [streak.last_day for _, (streak, _) in states],
            "st_lengths": [streak.days for _, (streak, _) in states],
            "st_levels": [rate.level for _, (_, rate) in states],
            "st_times": [rate.at for _, (_, rate) in states],
            "he_ids": [h.held_earning_id for h in held],
            "he_events": [h.event.event_id for h in held],
            "he_users": [h.event.user_id for h in held],
            "he_types": [h.event.type.value for h in held],
            "he_days": [h.day for h in held],
            "he_points": [h.points for h in held],
            "he_sponsored": [json.dumps([list(s) for s in h.sponsored]) for h in held],
            "he_reasons": [h.reason for h in held],
            "cr_ids": [c.request_id for c in credits],
            "cr_users": [c.user_id for c in credits],
            "cr_amounts": [c.amount for c in credits],
            "cr_reasons": [c.reason for c in credits],
            "cr_refs": [c.reference for c in credits],
            "ch_ids": [c for c, _ in charges],
            "ch_points": [p for _, p in charges],
            **self._events.columns(events),
        }
        row = (await self._conn.execute(_WRITE_ALL, params)).one()
        if row.charged != len(charges):  # the rows are locked and were checked: a bug, never an overspend
            raise RuntimeError(f"sponsor budgets {charges} would be overspent")
        await self._events.append(
            self._conn, [budget_exhausted(c, budget, n, now) for c, budget, n in sorted(row.exhausted)]
        )
        self._written.events = self._written.events or bool(events) or bool(row.exhausted)
