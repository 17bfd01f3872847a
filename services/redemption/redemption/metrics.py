"""Domain metrics of the saga (docs/architecture.md, Operations), exported by the platform's Prometheus endpoint.

Label values are bounded: steps, outcomes and states are enums, and cancel reasons outside
KNOWN_CANCEL_REASONS are reported as OTHER (a peer could invent new reasons).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from redemption.domain.entitlements import EntitlementKind
from redemption.domain.saga import Mode, Outcome, State, Step

SAGAS_FINISHED = Counter(
    "points_redemption_sagas_finished_total",
    "Sagas reaching a terminal state (reason: the cancel reason, 'none' unless CANCELLED)",
    ["state", "reason"],
)
SAGA_STEPS = Counter(
    "points_redemption_saga_steps_total",
    "Outcomes of saga steps (TRANSIENT = a retried peer failure)",
    ["step", "outcome"],
)
SAGAS_PENDING = Gauge(
    "points_redemption_sagas_pending",
    "Non-terminal sagas by direction, counted in the database by the recovery loop",
    ["mode"],
)

ENTITLEMENT_USES = Counter(
    "points_redemption_entitlement_uses_total",
    "ConsumeEntitlement decisions (outcome: USED, or the refusal reason; replays are not counted)",
    ["kind", "outcome"],
)
USED = "USED"

KNOWN_CANCEL_REASONS = frozenset({
    "INSUFFICIENT_FUNDS", "OUT_OF_STOCK", "PER_USER_LIMIT_REACHED", "NOT_AVAILABLE_IN_REGION",
    "NOT_YET_AVAILABLE", "NO_LONGER_AVAILABLE", "ITEM_ARCHIVED", "ITEM_NOT_FOUND", "HOLD_EXPIRED",
    "RESERVATION_EXPIRED", "RESERVATION_RELEASED", "RECIPIENT_REQUIRED", "RECIPIENT_NOT_ALLOWED",
    "SELF_GIFT_NOT_ALLOWED", "NOT_REDEEMABLE", "CURRENCY_NOT_ALLOWED", "GIFT_TOO_SMALL", "SELF_GIFT",
    "BALANCE_LIMIT_EXCEEDED", "INVALID_ARGUMENT", "RAFFLE_CLOSED",
})
PENDING_MODES = (Mode.FORWARD, Mode.COMPENSATING, Mode.REFUNDING)
TRANSIENT = "TRANSIENT"


def cancel_reason_label(reason: str) -> str:
    return reason if reason in KNOWN_CANCEL_REASONS else "OTHER"


def saga_finished(state: State, cancel_reason: str) -> None:
    reason = cancel_reason_label(cancel_reason) if state is State.CANCELLED else "none"
    SAGAS_FINISHED.labels(state=state.value, reason=reason).inc()


def step_outcome(step: Step, outcome: Outcome | str) -> None:
    SAGA_STEPS.labels(step=step.value, outcome=str(outcome)).inc()


def entitlement_use(kind: EntitlementKind, outcome: str) -> None:
    """outcome: USED or one of domain.Usage.consume_refusal's reasons (a fixed set)."""
    ENTITLEMENT_USES.labels(kind=kind.value, outcome=outcome).inc()


def set_pending(counts: dict[str, int]) -> None:
    """Set the gauge from a COUNT of pending sagas per mode (modes without rows are 0)."""
    for mode in PENDING_MODES:
        SAGAS_PENDING.labels(mode=mode.value).set(counts.get(mode.value, 0))
