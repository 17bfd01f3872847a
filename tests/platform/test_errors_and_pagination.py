"""Domain errors map to status + ErrorInfo; page tokens round-trip and reject garbage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from points_platform.errors import InvalidArgument, NotFound, idempotency_key_reused, invalid_field, to_rpc_status
from points_platform.pagination import decode_after, decode_before, encode_after, encode_before, page_size
from points_platform.validation import require_region, require_text
from tests.support.page_tokens import FORGED_TOKENS


def test_domain_error_becomes_status_with_error_info() -> None:
    status = to_rpc_status(NotFound("HOLD_NOT_FOUND", "no such hold", metadata={"hold_id": "h1"}), "points.wallet")
    assert status.code == code_pb2.NOT_FOUND
    assert status.message == "no such hold"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == ("HOLD_NOT_FOUND", "points.wallet", {"hold_id": "h1"})


def test_invalid_field_carries_bad_request_violation() -> None:
    status = to_rpc_status(invalid_field("amount", "must be positive"), "points.wallet")
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [("amount", "must be positive")]


def test_idempotency_reuse_is_already_exists() -> None:
    err = idempotency_key_reused("r1")
    assert err.code == grpc.StatusCode.ALREADY_EXISTS and err.reason == "IDEMPOTENCY_KEY_REUSED"


def test_page_tokens_round_trip_in_utc() -> None:
    assert decode_after("") is None and decode_before("") is None
    paris = datetime(2026, 3, 2, 13, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    moment, key = decode_after(encode_after(paris, "item-1")) or (None, None)
    assert (moment, key) == (paris, "item-1") and moment is not None and moment.utcoffset() == timedelta(0)
    assert decode_before(encode_before(42)) == 42
    assert decode_before(encode_before(2**63 - 1)) == 2**63 - 1
    with pytest.raises(ValueError):
        encode_after(datetime(2026, 3, 2), "x")  # a token the decoder would refuse is never issued


@pytest.mark.parametrize("token", FORGED_TOKENS)
def test_forged_page_tokens_are_invalid_page_token(token: str) -> None:
    for decode in (decode_after, decode_before):
        with pytest.raises(InvalidArgument) as caught:
            decode(token)
        assert caught.value.reason == "INVALID_PAGE_TOKEN"


def test_a_token_of_one_shape_is_refused_by_the_other() -> None:
    with pytest.raises(InvalidArgument):
        decode_before(encode_after(datetime(2026, 3, 2, tzinfo=UTC), "x"))
    with pytest.raises(InvalidArgument):
        decode_after(encode_before(42))


def test_page_size_defaults_and_clamps() -> None:
    assert page_size(0) == 50
    assert page_size(10_000) == 500
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_free_text_refuses_nul_which_postgresql_cannot_store() -> None:
    assert require_text("note", "line one\nline two", 100) == "line one\nline two"
    with pytest.raises(InvalidArgument) as nul:
        require_text("note", "bad\x00note", 100)
    assert nul.value.reason == "INVALID_FIELD" and "note" in str(nul.value)
    with pytest.raises(InvalidArgument):
        require_text("note", "x" * 101, 100)


@pytest.mark.parametrize("code", ["US", "DE", "JP", "BR"])
def test_assigned_region_codes_pass(code: str) -> None:
    assert require_region("region", code) == code


@pytest.mark.parametrize("code", ["ZZ", "QQ", "us", "USA", "", "U"])
def test_unassigned_or_malformed_region_codes_are_invalid(code: str) -> None:
    with pytest.raises(InvalidArgument):
        require_region("region", code)
