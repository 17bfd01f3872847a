"""Render a ghz config's call data and metadata as ghz does, so a test can make the same calls.

ghz runs Go's text/template over the JSON text of `data` and `metadata` for every request, with
the call template data of its runner (`runner/call_template_data.go`): `.RequestNumber`,
`.Timestamp` (RFC 3339, local time), `.UUID`, … and the functions `newUUID` and `randomString`.
Only that vocabulary is rendered; any other action fails, so a config using something new
fails the test instead of sending the template text.
"""

from __future__ import annotations

import json
import random
import re
import string
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_RANDOM_STRING = re.compile(r"randomString\s+(-?\d+)")


@dataclass(frozen=True)
class CallTemplateData:
    """The fields ghz exposes to a template for one request."""

    call: str  # package.Service/Method, as in the config
    request_number: int
    worker_id: str = "g0c0"

    def fields(self) -> dict[str, str]:
        service, method = self.call.rsplit("/", 1)
        now = datetime.now().astimezone()
        stamp = now.isoformat(timespec="seconds").replace("+00:00", "Z")  # Go's RFC3339 writes UTC as Z
        nanos = int(now.timestamp() * 1e9)
        return {
            "WorkerID": self.worker_id,
            "RequestNumber": str(self.request_number),
            "FullyQualifiedName": f"{service}.{method}",
            "MethodName": method,
            "ServiceName": service.rsplit(".", 1)[-1],
            "Timestamp": stamp,
            "TimestampUnix": str(nanos // 10**9),
            "TimestampUnixMilli": str(nanos // 10**6),
            "TimestampUnixNano": str(nanos),
            "UUID": str(uuid.uuid4()),
        }


def render(text: str, data: CallTemplateData) -> str:
    """`text` with every template action replaced as ghz would for this request."""
    fields = data.fields()

    def action(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr == "newUUID":
            return str(uuid.uuid4())
        if sized := _RANDOM_STRING.fullmatch(expr):
            length = int(sized.group(1))
            length = length if length > 0 else random.randint(2, 16)
            return "".join(random.choices(string.ascii_letters + string.digits, k=length))
        if expr.startswith(".") and expr[1:] in fields:
            return fields[expr[1:]]
        raise ValueError(f"ghz template action not rendered by this test: {{{{{expr}}}}}")

    return _ACTION.sub(action, text)


def render_json(value: Any, data: CallTemplateData) -> Any:
    """A config's `data` or `metadata` object for one request: templates run over its JSON text."""
    return json.loads(render(json.dumps(value), data))
