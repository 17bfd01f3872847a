"""`points bench wrapper`: the call wrapper against a bare handler, each a real server process."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from points_cli.bench import h2load, wrapper
from points_cli.bench.wrapper import Sample

SUMMARY = """
finished in 3.00s, 4241.00 req/s, 256.37KB/s
requests: 12723 total, 12787 started, 12723 done, 12720 succeeded, 0 failed, 0 errored, 0 timeout
"""


def test_an_h2load_run_reads_rate_answered_and_started() -> None:
    assert h2load.parse_run(SUMMARY) == h2load.Run(4241.0, 12720, 12787)


def test_a_request_body_is_one_uncompressed_grpc_message() -> None:
    assert h2load.grpc_frame(b"\x0a\x01u") == b"\x00\x00\x00\x00\x03\x0a\x01u"
    assert h2load.grpc_frame(b"") == b"\x00\x00\x00\x00\x00"


def test_ratios_compare_servers_within_each_round_only() -> None:
    samples = [
        Sample("bare", 1, 100, 4000.0, 250.0), Sample("wrapped", 1, 100, 3000.0, 300.0),
        Sample("health", 2, 100, 9000.0, 100.0), Sample("wrapped", 2, 100, 1000.0, 400.0),
        Sample("bare", 2, 100, 2000.0, 200.0),
    ]
    assert wrapper.ratios(samples) == [(1, 0.75, 1.2), (2, 0.5, 2.0)]
    report = wrapper.format_report(samples)
    assert "median    0.62     1.60" in report


@pytest.mark.skipif(not h2load.available(), reason="h2load is not installed (Debian: nghttp2-client)")
async def test_a_round_measures_every_server_and_every_call_reaches_the_handler() -> None:
    samples = await asyncio.to_thread(
        wrapper.run_rounds, rounds=2, warmup=1, duration=1, concurrency=8, connections=2
    )
    assert [(s.round, s.mode) for s in samples] == [
        (1, "bare"), (1, "wrapped"), (1, "health"), (2, "health"), (2, "wrapped"), (2, "bare")
    ]
    assert all(s.calls > 0 and s.calls_per_second > 0 and s.cpu_us_per_call > 0 for s in samples)
    assert [n for n, _, _ in wrapper.ratios(samples)] == [1, 2]


@pytest.mark.skipif(not h2load.available(), reason="h2load is not installed (Debian: nghttp2-client)")
async def test_calls_the_chain_refused_are_not_measured_as_answered() -> None:
    """h2load counts a refused gRPC call (HTTP 200, grpc-status 16) as a success."""
    with pytest.raises(RuntimeError, match="reached the handler"):
        await asyncio.to_thread(
            wrapper.measure, "wrapped", 1, token=secrets.token_urlsafe(32), server_token=secrets.token_urlsafe(32),
            warmup=1, duration=1, concurrency=4, connections=1,
        )
