"""Request bytes that do not parse as protobuf: what a broken or hostile client may send."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_GROUP_START, _GROUP_END = b"\x7b", b"\x7c"  # field 15, wire types 3 and 4


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _string_field(message: type[Message]) -> int | None:
    fields = message.DESCRIPTOR.fields
    return next((f.number for f in fields if f.type == FieldDescriptor.TYPE_STRING), None)


def malformed_bodies(message: type[Message]) -> dict[str, bytes]:
    """Named byte strings that cannot parse as `message`; invalid UTF-8 only where it has a string."""
    bodies = {
        "truncated length": _tag(1, 2) + _varint(10) + b"ab",
        "bad varint": _tag(2, 0) + b"\xff" * 11,
        "deep group nesting": _GROUP_START * 200 + _GROUP_END * 200,
        "unclosed group": _GROUP_START,
        "field number zero": b"\x00",
    }
    number = _string_field(message)
    if number is not None:
        bodies["invalid UTF-8"] = _tag(number, 2) + _varint(2) + b"\xff\xfe"
    return bodies
