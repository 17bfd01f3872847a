"""The overview: charts of points earned per hour, redemptions by state, held earnings by reason; low stock."""

from __future__ import annotations

from collections import Counter

from starlette.requests import Request
from starlette.responses import Response

from points_console.metrics import Charts
from points_console.web import operator, render, services, signed_in


@signed_in
async def overview(request: Request) -> Response:
    held = await services(request).held_earnings(operator(request))
    items = await services(request).items(operator(request))
    low = [i for i in items if i.limited_stock and i.stock_total and i.stock_available * 10 <= i.stock_total]
    board: Charts = request.app.state.charts
    hourly = board.earned.hours() if await board.sample_earned() else None
    by_state = await board.redemptions_by_state()
    return render(request, "overview.html", by_reason=sorted(Counter(h.reason for h in held).items()), low=low,
                  hourly=hourly, by_state=by_state)
