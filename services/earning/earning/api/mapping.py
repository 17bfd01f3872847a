"""proto <-> domain mapping with edge validation (field violations name the proto fields)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from earning.domain.challenge import Challenge, ChallengeSpec
from earning.domain.credit import FailedCredit
from earning.domain.evaluation import Decision
from earning.domain.held import HeldEarning
from earning.domain.model import (
    MAX_WATCH_SECONDS,
    AbuseRule,
    ActivityEvent,
    ActivityRule,
    ActivityType,
    RuleApplication,
    RuleError,
    Rules,
    StreakRule,
)
from earning.use_cases.admin import DailySummary, JoinResult
from earning.use_cases.commands import IncomingEvent, Reply
from earning.use_cases.recording import EventOutcome
from points.earning.v1 import earning_pb2 as pb
from points_platform.errors import InvalidArgument, invalid_field
from points_platform.validation import require_id, require_region, require_text

_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_TARGET_TYPES = {ActivityType.LIKE, ActivityType.COMMENT, ActivityType.SHARE, ActivityType.LIVE_JOIN}


def rule_error(exc: RuleError) -> InvalidArgument:
    return invalid_field(exc.field, exc.description)


def to_datetime(field: str, ts: Timestamp) -> datetime:
    if not _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS or not 0 <= ts.nanos < 1_000_000_000:
        raise invalid_field(field, "is not a valid timestamp")
    return ts.ToDatetime(tzinfo=UTC)


def timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def activity_type(field: str, value: int) -> ActivityType:
    try:
        return ActivityType(value)
    except ValueError:
        raise invalid_field(field, "must be a known activity type") from None


def event_from_proto(message: pb.ActivityEvent, field: str = "event") -> IncomingEvent:
    kind = activity_type(f"{field}.type", message.type)
    if not message.HasField("occurred_at"):
        raise invalid_field(f"{field}.occurred_at", "is required")
    if not 0 <= message.watch_seconds <= MAX_WATCH_SECONDS:
        raise invalid_field(f"{field}.watch_seconds", f"must be between 0 and {MAX_WATCH_SECONDS}")
    event = ActivityEvent(
        event_id=require_id(f"{field}.event_id", message.event_id),
        user_id=require_id(f"{field}.user_id", message.user_id),
        type=kind,
        occurred_at=to_datetime(f"{field}.occurred_at", message.occurred_at),
        region=require_region(f"{field}.region", message.region),
        device_id=require_id(f"{field}.device_id", message.device_id) if message.device_id else "",
        watch_seconds=message.watch_seconds,
        target_id=_optional_id(f"{field}.target_id", message.target_id, kind in _TARGET_TYPES),
        game_id=_optional_id(f"{field}.game_id", message.game_id, kind == ActivityType.GAME_MILESTONE),
        milestone_id=_optional_id(f"{field}.milestone_id", message.milestone_id, kind == ActivityType.GAME_MILESTONE),
        challenge_id=_optional_id(
            f"{field}.challenge_id", message.challenge_id, kind == ActivityType.CHALLENGE_PROGRESS
        ),
    )
    digest = hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()
    return IncomingEvent(event, digest)


def _optional_id(field: str, value: str, required: bool) -> str:
    if required or value:
        return require_id(field, value)
    return ""


def rule_application(step: RuleApplication) -> pb.RuleApplication:
    return pb.RuleApplication(
        rule=step.rule.value,  # type: ignore[arg-type]
        points=step.points,
        detail=step.detail,
        challenge_id=step.challenge_id,
    )


def event_result(outcome: EventOutcome) -> pb.EventResult:
    return pb.EventResult(
        event_id=outcome.event_id,
        status=outcome.status.value,  # type: ignore[arg-type]
        points_awarded=outcome.points_awarded,
        breakdown=[rule_application(s) for s in outcome.breakdown],
        rejection_reason=outcome.rejection_reason,
        wallet_transaction_id=outcome.wallet_transaction_id,
        held_earning_id=outcome.held_earning_id,
    )


def earning_preview(decision: Decision) -> pb.EarningPreview:
    return pb.EarningPreview(
        status=decision.status.value,  # type: ignore[arg-type]
        points=decision.points,
        breakdown=[rule_application(s) for s in decision.breakdown],
        rejection_reason=decision.rejection_reason,
        hold_reason=decision.hold_reason.value if decision.hold_reason else "",
    )


def rules_to_proto(rules: Rules) -> pb.Rules:
    return pb.Rules(
        version=rules.version,
        time_zone=rules.time_zone,
        activity_rules=[
            pb.ActivityRule(
                type=r.type.value, points_per_action=r.points_per_action, points_per_minute=r.points_per_minute,  # type: ignore[arg-type]
                daily_cap=r.daily_cap, decay_after=r.decay_after, decay_window_seconds=r.decay_window_seconds,
                decay_bps=r.decay_bps, once_per_target=r.once_per_target,
            )
            for _, r in sorted(rules.activity_rules.items())
        ],
        daily_total_cap=rules.daily_total_cap,
        streak=pb.StreakRule(**vars(rules.streak)),
        abuse=pb.AbuseRule(**vars(rules.abuse)),
        update_time=timestamp(rules.effective_from),
    )


def rules_from_proto(message: pb.Rules) -> Rules:
    activity_rules: dict[ActivityType, ActivityRule] = {}
    for index, r in enumerate(message.activity_rules):
        kind = activity_type(f"rules.activity_rules[{index}].type", r.type)
        if kind in activity_rules:
            raise invalid_field(f"rules.activity_rules[{index}].type", "appears twice")
        activity_rules[kind] = ActivityRule(
            kind, r.points_per_action, r.points_per_minute, r.daily_cap, r.decay_after, r.decay_window_seconds,
            r.decay_bps, r.once_per_target,
        )
    s, a = message.streak, message.abuse
    return Rules(
        version=0,
        time_zone=message.time_zone or "UTC",
        activity_rules=activity_rules,
        daily_total_cap=message.daily_total_cap,
        streak=StreakRule(s.min_days, s.bonus_bps_per_day, s.max_bonus_bps),
        abuse=AbuseRule(
            a.max_future_skew_seconds, a.max_lateness_seconds, a.velocity_max_events_per_minute,
            a.max_accounts_per_device_per_day, a.max_devices_per_account_per_day,
        ),
    )


def challenge_spec(message: pb.ChallengeSpec) -> ChallengeSpec:
    for name in ("start_time", "end_time"):
        if not message.HasField(name):
            raise invalid_field(f"spec.{name}", "is required")
    return ChallengeSpec(
        name=require_text("spec.name", message.name, 200),
        start_time=to_datetime("spec.start_time", message.start_time),
        end_time=to_datetime("spec.end_time", message.end_time),
        regions=tuple(require_region(f"spec.regions[{i}]", r) for i, r in enumerate(message.regions)),
        activity_types=tuple(
            activity_type(f"spec.activity_types[{i}]", t) for i, t in enumerate(message.activity_types)
        ),
        multiplier_bps=message.multiplier_bps or 10_000,
        early_join_window_seconds=message.early_join_window_seconds,
        early_join_bonus_points=message.early_join_bonus_points,
        sponsor=require_text("spec.sponsor", message.sponsor, 200),
        sponsor_budget_points=message.sponsor_budget_points,
    )


def challenge_to_proto(c: Challenge) -> pb.Challenge:
    s = c.spec
    return pb.Challenge(
        challenge_id=c.challenge_id, name=s.name, start_time=timestamp(s.start_time), end_time=timestamp(s.end_time),
        regions=list(s.regions), activity_types=[t.value for t in s.activity_types],  # type: ignore[misc]
        multiplier_bps=s.multiplier_bps, early_join_window_seconds=s.early_join_window_seconds,
        early_join_bonus_points=s.early_join_bonus_points, sponsor=s.sponsor,
        sponsor_budget_points=s.sponsor_budget_points, budget_spent_points=c.budget_spent_points,
        create_time=timestamp(c.create_time),
    )


def join_response(result: JoinResult) -> pb.JoinChallengeResponse:
    p = result.participation
    return pb.JoinChallengeResponse(
        participation=pb.Participation(
            challenge_id=p.challenge_id, user_id=p.user_id, join_time=timestamp(p.join_time), early=p.early
        ),
        early_join_bonus_awarded=result.bonus_awarded,
    )


def held_to_proto(h: HeldEarning, wallet_transaction_id: str) -> pb.HeldEarning:
    return pb.HeldEarning(
        held_earning_id=h.held_earning_id, event_id=h.event_id, user_id=h.user_id, points=h.points, reason=h.reason,
        state=h.state, create_time=timestamp(h.create_time), resolve_time=timestamp(h.resolve_time),  # type: ignore[arg-type]
        resolved_by=h.resolved_by, note=h.note, wallet_transaction_id=wallet_transaction_id,
    )


def update_rules_response(rules: Rules) -> pb.UpdateRulesResponse:
    return pb.UpdateRulesResponse(rules=rules_to_proto(rules))


def create_challenge_response(challenge: Challenge) -> pb.CreateChallengeResponse:
    return pb.CreateChallengeResponse(challenge=challenge_to_proto(challenge))


def resolve_held_response(held: HeldEarning) -> pb.ResolveHeldEarningResponse:
    """Without the wallet transaction, which the servicer fills in (known only after the commit)."""
    return pb.ResolveHeldEarningResponse(held_earning=held_to_proto(held, ""))


def requeue_response(ids: tuple[list[str], list[str]]) -> pb.RequeueFailedCreditsResponse:
    return pb.RequeueFailedCreditsResponse(requeued_credit_ids=ids[0], unchanged_credit_ids=ids[1])


# The replies of the admin mutations as the use cases store them (commands.Reply): proto bytes of
# the reply message, replayed as stored.
UPDATE_RULES_REPLY = Reply(pb.UpdateRulesResponse, update_rules_response)
CREATE_CHALLENGE_REPLY = Reply(pb.CreateChallengeResponse, create_challenge_response)
JOIN_CHALLENGE_REPLY = Reply(pb.JoinChallengeResponse, join_response)
RESOLVE_HELD_REPLY = Reply(pb.ResolveHeldEarningResponse, resolve_held_response)
REQUEUE_REPLY = Reply(pb.RequeueFailedCreditsResponse, requeue_response)


def failed_credit_to_proto(f: FailedCredit) -> pb.FailedCredit:
    c = f.credit
    return pb.FailedCredit(
        credit_id=c.request_id, user_id=c.user_id, amount=c.amount, reason=c.reason, reference=c.reference,
        failure=f.failure, attempts=f.attempts, failed_time=timestamp(f.failed_time),
    )


def summary_to_proto(s: DailySummary) -> pb.GetDailySummaryResponse:
    return pb.GetDailySummaryResponse(
        date=s.day.isoformat(),
        types=[pb.TypeSummary(type=t.type.value, earned=t.earned, cap=t.cap) for t in s.types],  # type: ignore[arg-type]
        total_earned=s.total_earned, total_cap=s.total_cap, streak_days=s.streak_days, held_points=s.held_points,
        pending_credit_points=s.pending_credit_points, failed_credit_points=s.failed_credit_points,
    )


def parse_day(value: str) -> date | None:
    if not value:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise invalid_field("date", "must be YYYY-MM-DD") from None
