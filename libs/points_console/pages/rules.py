"""The earning rules: edited as JSON, dry-run on one event, saved as a new version."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import Response

from points.earning.v1 import earning_pb2
from points_console.forms import ACTIVITY_TYPES, FormError, read_preview_event, read_request_id, read_version
from points_console.gateway import ServiceRefusedError
from points_console.web import form_values, operator, render, services, signed_in


def rules_page(
    request: Request, current: Any, text: str, values: dict[str, str], errors: list[str], *, saved: bool = False,
    preview: earning_pb2.PreviewEarningResponse | None = None,
) -> Response:
    return render(
        request, "rules.html", 400 if errors else 200, rules=current, text=text, errors=errors,
        version=values.get("expected_version", ""), saved=saved, preview=preview, values=values,
        activity_types=ACTIVITY_TYPES, status=earning_pb2.EventStatus.Name, rule=earning_pb2.RuleKind.Name,
    )


@signed_in
async def rules(request: Request) -> Response:
    """The rules as JSON; a POST either saves them as a new version or, `action=preview`, dry-runs one
    event under them (PreviewEarning) and shows the page again with the edit kept."""
    current = await services(request).rules(operator(request))
    if request.method == "GET":
        return rules_page(request, current, json_format.MessageToJson(current), {}, [])
    values = await form_values(request)
    text = values.get("rules", "")
    try:
        edited = json_format.Parse(text, earning_pb2.Rules())
        if values.get("action") == "preview":
            preview = await services(request).preview_earning(operator(request), edited,
                                                               read_preview_event(values))
            return rules_page(request, current, text, values, [], preview=preview)
        version = read_version(values)
        saved = await services(request).save_rules(operator(request), read_request_id(values), edited, version)
    except json_format.ParseError as bad:
        return rules_page(request, current, text, values, [f"The rules are not valid JSON for Rules: {bad}"])
    except FormError as bad:
        return rules_page(request, current, text, values, bad.errors)
    except ServiceRefusedError as refused:
        # A stale version (someone saved first) or rules the earning service rejects.
        return rules_page(request, current, text, values, [refused.message])
    return rules_page(request, saved, json_format.MessageToJson(saved), {}, [], saved=True)
