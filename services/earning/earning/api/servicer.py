"""The gRPC servicer of the earning service and its call policy; mapping and validation in `mapping`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import Message

from earning.api import mapping
from earning.domain.model import EventStatus, RuleError
from earning.use_cases import commands
from earning.use_cases.admin import Administration
from earning.use_cases.preview import Previewer
from earning.use_cases.recording import EventOutcome, Recorder
from points.earning.v1 import earning_pb2 as pb
from points.earning.v1 import earning_pb2_grpc
from points_platform.auth import ALL_CALLERS, Policy, allow, current_caller
from points_platform.errors import DomainError, invalid_field
from points_platform.idempotency import RequestKey, method_name
from points_platform.pagination import decode_after, encode_after, page_size
from points_platform.server import ServiceSpec
from points_platform.validation import require_id, require_region, require_request_id, require_text

# Quoted: grpc classes are generic only in their stubs.
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

FULL_NAME = "points.earning.v1.EarningService"
MAX_BATCH = 1000
MAX_REQUEUE = 1000
STREAM_CHUNK = 500

# Who may call what (docs/architecture.md, Policy); finer rules (e.g. per currency) live in the use cases.
POLICY: Policy = {
    "RecordActivity": allow("app", "admin"),
    "RecordActivities": allow("app", "admin"),
    "StreamActivities": allow("app", "admin"),
    "GetRules": ALL_CALLERS,
    "UpdateRules": allow("admin"),
    "CreateChallenge": allow("admin"),
    "JoinChallenge": allow("app", "admin"),
    "ListChallenges": ALL_CALLERS,
    "GetDailySummary": ALL_CALLERS,
    "ListHeldEarnings": allow("admin"),
    "ResolveHeldEarning": allow("admin"),
    "ListFailedCredits": allow("admin"),
    "RequeueFailedCredits": allow("admin"),
    "PreviewEarning": allow("admin"),
}
# One user's data: an `app` call names that user (platform auth.USER_HEADER, docs/architecture.md, Policy): the
# request field that must be that user. Activity events are not scoped: the app forwards every
# user's events, in batches and streams that mix users.
USER_SCOPED = {"GetDailySummary": "user_id", "JoinChallenge": "user_id"}


class EarningApi(earning_pb2_grpc.EarningServiceServicer):
    def __init__(self, recorder: Recorder, administration: Administration, previewer: Previewer) -> None:
        self._recorder = recorder
        self._admin = administration
        self._previewer = previewer

    async def RecordActivity(self, request: pb.RecordActivityRequest, context: Context) -> pb.RecordActivityResponse:
        if not request.HasField("event"):
            raise invalid_field("event", "is required")
        outcome = await self._recorder.record_one(mapping.event_from_proto(request.event))
        return pb.RecordActivityResponse(result=mapping.event_result(outcome))

    async def RecordActivities(

        self, request: pb.RecordActivitiesRequest, context: Context

    ) -> pb.RecordActivitiesResponse:
        if len(request.events) > MAX_BATCH:
            raise invalid_field("events", f"at most {MAX_BATCH} events per call")
        batch = [mapping.event_from_proto(e, f"events[{i}]") for i, e in enumerate(request.events)]
        outcomes = await self._recorder.record(batch) if batch else []
        return pb.RecordActivitiesResponse(results=[mapping.event_result(o) for o in outcomes])

    async def StreamActivities(

        self, request_iterator: AsyncIterator[pb.StreamActivitiesRequest], context: Context

    ) -> pb.StreamActivitiesResponse:
        """Malformed events on a stream count as rejected; the rest are recorded in chunks."""
        summary = pb.StreamActivitiesResponse()
        chunk = []
        async for message in request_iterator:
            summary.events_received += 1
            try:
                chunk.append(mapping.event_from_proto(message.event))
            except DomainError:
                summary.events_rejected += 1
            if len(chunk) >= STREAM_CHUNK:
                _tally(summary, await self._recorder.record(chunk))
                chunk = []
        if chunk:
            _tally(summary, await self._recorder.record(chunk))
        return summary

    async def GetRules(self, request: pb.GetRulesRequest, context: Context) -> pb.GetRulesResponse:
        return pb.GetRulesResponse(rules=mapping.rules_to_proto(await self._admin.current_rules()))

    async def UpdateRules(self, request: pb.UpdateRulesRequest, context: Context) -> pb.UpdateRulesResponse:
        require_request_id(request.request_id)
        if not request.HasField("rules"):
            raise invalid_field("rules", "is required")
        if request.expected_version < 0:
            raise invalid_field("expected_version", "must not be negative")
        try:
            return await self._admin.update_rules(
                commands.UpdateRules(
                    _key("UpdateRules", request), mapping.rules_from_proto(request.rules), request.expected_version
                ),
                mapping.UPDATE_RULES_REPLY,
            )
        except RuleError as exc:
            raise mapping.rule_error(exc) from None

    async def CreateChallenge(self, request: pb.CreateChallengeRequest, context: Context) -> pb.CreateChallengeResponse:
        require_request_id(request.request_id)
        if not request.HasField("spec"):
            raise invalid_field("spec", "is required")
        try:
            return await self._admin.create_challenge(
                commands.CreateChallenge(_key("CreateChallenge", request), mapping.challenge_spec(request.spec)),
                mapping.CREATE_CHALLENGE_REPLY,
            )
        except RuleError as exc:
            raise mapping.rule_error(exc) from None

    async def JoinChallenge(self, request: pb.JoinChallengeRequest, context: Context) -> pb.JoinChallengeResponse:
        require_request_id(request.request_id)
        challenge_id = require_id("challenge_id", request.challenge_id)
        user_id = require_id("user_id", request.user_id)
        return await self._admin.join_challenge(
            commands.JoinChallenge(_key("JoinChallenge", request, user_id), challenge_id, user_id),
            mapping.JOIN_CHALLENGE_REPLY,
        )

    async def ListChallenges(self, request: pb.ListChallengesRequest, context: Context) -> pb.ListChallengesResponse:
        region = require_region("region", request.region) if request.region else ""
        active_at = mapping.to_datetime("active_at", request.active_at) if request.HasField("active_at") else None
        limit = page_size(request.page_size)
        found = await self._admin.list_challenges(region, active_at, decode_after(request.page_token), limit + 1)
        page = found[:limit]
        token = encode_after(page[-1].create_time, page[-1].challenge_id) if len(found) > limit else ""
        return pb.ListChallengesResponse(
            challenges=[mapping.challenge_to_proto(c) for c in page], next_page_token=token
        )

    async def GetDailySummary(self, request: pb.GetDailySummaryRequest, context: Context) -> pb.GetDailySummaryResponse:
        user_id = require_id("user_id", request.user_id)
        summary = await self._admin.daily_summary(user_id, mapping.parse_day(request.date))
        return mapping.summary_to_proto(summary)

    async def ListHeldEarnings(

        self, request: pb.ListHeldEarningsRequest, context: Context

    ) -> pb.ListHeldEarningsResponse:
        user_id = require_id("user_id", request.user_id) if request.user_id else ""
        if request.state not in (0, 1, 2, 3):
            raise invalid_field("state", "must be a known held earning state")
        limit = page_size(request.page_size)
        found = await self._admin.list_held(user_id, request.state, decode_after(request.page_token), limit + 1)
        page = found[:limit]
        token = encode_after(page[-1][0].create_time, page[-1][0].held_earning_id) if len(found) > limit else ""
        return pb.ListHeldEarningsResponse(
            held_earnings=[mapping.held_to_proto(h, tx) for h, tx in page], next_page_token=token
        )

    async def ResolveHeldEarning(

        self, request: pb.ResolveHeldEarningRequest, context: Context

    ) -> pb.ResolveHeldEarningResponse:
        require_request_id(request.request_id)
        reply, transaction_id = await self._admin.resolve_held(
            commands.ResolveHeldEarning(
                _key("ResolveHeldEarning", request),
                require_id("held_earning_id", request.held_earning_id),
                request.approve,
                require_text("note", request.note, 1000),
                current_caller.get(),
            ),
            mapping.RESOLVE_HELD_REPLY,
        )
        # Known only once the approved credit lands, after the commit: filled in on every answer.
        reply.held_earning.wallet_transaction_id = transaction_id
        return reply

    async def ListFailedCredits(

        self, request: pb.ListFailedCreditsRequest, context: Context

    ) -> pb.ListFailedCreditsResponse:
        user_id = require_id("user_id", request.user_id) if request.user_id else ""
        limit = page_size(request.page_size)
        found = await self._admin.list_failed_credits(user_id, decode_after(request.page_token), limit + 1)
        page = found[:limit]
        token = encode_after(page[-1].failed_time, page[-1].credit.request_id) if len(found) > limit else ""
        return pb.ListFailedCreditsResponse(
            credits=[mapping.failed_credit_to_proto(f) for f in page], next_page_token=token
        )

    async def RequeueFailedCredits(

        self, request: pb.RequeueFailedCreditsRequest, context: Context

    ) -> pb.RequeueFailedCreditsResponse:
        require_request_id(request.request_id)
        if not request.credit_ids:
            raise invalid_field("credit_ids", "at least one credit id is required")
        if len(request.credit_ids) > MAX_REQUEUE:
            raise invalid_field("credit_ids", f"at most {MAX_REQUEUE} per call")
        ids = [require_id(f"credit_ids[{i}]", c) for i, c in enumerate(request.credit_ids)]
        return await self._admin.requeue_failed_credits(
            commands.RequeueFailedCredits(_key("RequeueFailedCredits", request), ids), mapping.REQUEUE_REPLY
        )

    async def PreviewEarning(self, request: pb.PreviewEarningRequest, context: Context) -> pb.PreviewEarningResponse:
        if not request.HasField("rules"):
            raise invalid_field("rules", "is required")
        if not request.HasField("event"):
            raise invalid_field("event", "is required")
        cmd = commands.PreviewEarning(
            mapping.rules_from_proto(request.rules), mapping.event_from_proto(request.event).event
        )
        try:
            preview = await self._previewer.preview(cmd)
        except RuleError as exc:
            raise mapping.rule_error(exc) from None
        return pb.PreviewEarningResponse(
            current=mapping.earning_preview(preview.current),
            proposed=mapping.earning_preview(preview.proposed),
            current_version=preview.current_version,
        )


def _key(method: str, request: Message, user_id: str = "") -> RequestKey:
    """A mutation's idempotency key (its request_id, validated before) and fingerprint."""
    return RequestKey.of(method_name(FULL_NAME, method), request, user_id=user_id)


def _tally(summary: pb.StreamActivitiesResponse, outcomes: list[EventOutcome]) -> None:
    counters = {
        EventStatus.AWARDED: "events_awarded",
        EventStatus.DUPLICATE: "events_duplicate",
        EventStatus.HELD_FOR_REVIEW: "events_held",
        EventStatus.REJECTED: "events_rejected",
        EventStatus.CAPPED: "events_capped",
    }
    for outcome in outcomes:
        setattr(summary, counters[outcome.status], getattr(summary, counters[outcome.status]) + 1)
        if outcome.status == EventStatus.AWARDED:
            summary.points_awarded += outcome.points_awarded


def service_spec(api: EarningApi) -> ServiceSpec:
    def register(server: grpc.aio.Server) -> None:
        earning_pb2_grpc.add_EarningServiceServicer_to_server(api, server)

    return ServiceSpec(FULL_NAME, "points.earning", POLICY, register, USER_SCOPED)
