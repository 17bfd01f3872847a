"""Every user's redemptions with their saga step timelines, filtered by state and age."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from points.redemption.v1 import redemption_pb2
from points_console.web import operator, render, services, signed_in

# The sagas page's filters: the state choices (the default is what needs an operator's eye) and the ages.
SAGA_STATES = {
    "PENDING,CANCELLED": [redemption_pb2.REDEMPTION_STATE_PENDING, redemption_pb2.REDEMPTION_STATE_CANCELLED],
    "PENDING": [redemption_pb2.REDEMPTION_STATE_PENDING],
    "CANCELLED": [redemption_pb2.REDEMPTION_STATE_CANCELLED],
    "COMPLETED": [redemption_pb2.REDEMPTION_STATE_COMPLETED],
    "REFUNDED": [redemption_pb2.REDEMPTION_STATE_REFUNDED],
    "ANY": [],
}
SAGA_AGES = {"3600": "last hour", "86400": "last 24 hours", "604800": "last 7 days", "0": "any age"}


@signed_in
async def sagas(request: Request) -> Response:
    chosen = request.query_params.get("state", "PENDING,CANCELLED")
    age = request.query_params.get("age", "86400")
    if chosen not in SAGA_STATES or age not in SAGA_AGES:
        return render(request, "sagas.html", 400, redemptions=[], next_page_token="", chosen=chosen, age=age,
                      errors=["Choose a state and an age from the lists."], states=SAGA_STATES, ages=SAGA_AGES)
    page = await services(request).all_redemptions(
        operator(request), SAGA_STATES[chosen], int(age), request.query_params.get("page_token", ""))
    return render(
        request, "sagas.html", redemptions=page.redemptions, next_page_token=page.next_page_token, chosen=chosen,
        age=age, errors=[], states=SAGA_STATES, ages=SAGA_AGES, state=redemption_pb2.RedemptionState.Name,
        step=redemption_pb2.SagaStepName.Name, outcome=redemption_pb2.StepOutcome.Name,
    )
