"""A user's whole story on one page, and support's forms: adjustment, suspension, reinstatement, forfeiture."""

from __future__ import annotations

import urllib.parse

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from points.common.v1 import common_pb2
from points.earning.v1 import earning_pb2
from points.redemption.v1 import redemption_pb2
from points.wallet.v1 import wallet_pb2
from points_console.forms import FormError, read_adjustment, read_forfeiture, read_request_id, read_standing_change
from points_console.gateway import ServiceRefusedError
from points_console.web import form_request_id, form_values, operator, render, services, signed_in


async def user_page(request: Request, user_id: str, errors: list[str], status_code: int = 200) -> Response:
    if not user_id:
        return render(request, "user.html", user_id="", balances=[], ledger=None)
    me, gateway = operator(request), services(request)
    balances = await gateway.balances(me, user_id)
    ledger = await gateway.ledger(me, user_id, request.query_params.get("page_token", ""))
    today = await gateway.earnings_today(me, user_id)
    redemptions = await gateway.redemptions(me, user_id)
    entitlements = await gateway.entitlements(me, user_id)
    sent = await gateway.gifts(me, user_id, wallet_pb2.GIFT_ROLE_SENDER)
    received = await gateway.gifts(me, user_id, wallet_pb2.GIFT_ROLE_CREATOR)
    standing = await gateway.user_status(me, user_id)
    return render(
        request, "user.html", 400 if errors else status_code, user_id=user_id, balances=balances, ledger=ledger,
        today=today, redemptions=redemptions, entitlements=entitlements, sent=sent, received=received,
        standing=standing, errors=errors, done=request.query_params.get("done", ""),
        request_ids={form: form_request_id() for form in ("adjust", "suspend", "reinstate", "forfeit")},
        currency=common_pb2.Currency.Name, state=redemption_pb2.RedemptionState.Name,
        step=redemption_pb2.SagaStepName.Name, outcome=redemption_pb2.StepOutcome.Name,
        activity=earning_pb2.ActivityType.Name, kind=redemption_pb2.EntitlementKind.Name,
        entitlement_state=redemption_pb2.EntitlementState.Name, user_state=wallet_pb2.UserState.Name,
        status_action=wallet_pb2.UserStatusAction.Name,
    )


@signed_in
async def user(request: Request) -> Response:
    return await user_page(request, request.query_params.get("user_id", "").strip(), [])


@signed_in
async def user_action(request: Request) -> Response:
    """The user page's forms: adjustment, suspension, reinstatement, forfeiture."""
    action = request.url.path.rsplit("/", 1)[1]
    values = await form_values(request)
    user_id = values.get("user_id", "").strip()
    if not user_id:
        return render(request, "error.html", 400, message="The form named no user.")
    me, gateway = operator(request), services(request)
    try:
        request_id = read_request_id(values)
        if action == "adjust":
            await gateway.adjust(me, request_id, read_adjustment(user_id, values))
        elif action in ("suspend", "reinstate"):
            await gateway.set_suspended(me, request_id, read_standing_change(user_id, values), action == "suspend")
        else:
            await gateway.forfeit(me, request_id, read_forfeiture(user_id, values))
    except FormError as bad:
        return await user_page(request, user_id, bad.errors)
    except ServiceRefusedError as refused:
        return await user_page(request, user_id, [refused.message])
    query = urllib.parse.urlencode({"user_id": user_id, "done": action})
    return RedirectResponse(f"/users?{query}", status_code=303)
