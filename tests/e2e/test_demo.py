"""`points up --demo` seeds a catalog, rules and a challenge; `points demo` tells the newcomer's story."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.suite_process import SuiteProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_suite(traversable_tmp_path: Path) -> Iterator[SuiteProcess]:
    running = SuiteProcess(traversable_tmp_path / "state", extra_args=["--demo"])
    running.start()
    yield running
    running.stop()
    running.kill_all()


def test_demo_story_runs_end_to_end(demo_suite: SuiteProcess) -> None:
    assert any(line.startswith("demo data seeded: catalog, earning") for line in demo_suite.output)
    args = [sys.executable, "-m", "points_cli.main", "demo", "--state-dir", str(demo_suite.state_dir)]
    for service, port in demo_suite.ports.items():
        args += [f"--{service}-port", str(port)]
    story = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert story.returncode == 0, story.stdout + story.stderr
    out = story.stdout
    # Earned, redeemed a raffle ticket and a cosmetic, sent a coin gift, and the books show it.
    assert "redeem spring-raffle: COMPLETED" in out and "redeem golden-frame: COMPLETED" in out, out
    assert "RAFFLE_TICKET" in out and "COSMETIC" in out, out
    assert "DIAMONDS" in out, out
    # The watching happens after the join, so the challenge's announced multiplier pays on each video.
    assert "x1.5 on watch points" in out, out
    watched = [line for line in out.splitlines() if line.lstrip().startswith("watched ")]
    assert len(watched) == 3 and all("CHALLENGE_MULTIPLIER +" in line for line in watched), out
    # The coin gift appears in both gift histories: 10 coins from the user, 5 diamonds to the creator.
    assert "gifts sent by demo-user-" in out and "gifts received by demo-creator-" in out, out
    assert out.count("10 coins -> 5 diamonds") == 2, out
    # The discount code is redeemed, applied once by fulfilment, and refused the second time.
    assert "redeem ad-free-discount: COMPLETED" in out and "DISCOUNT_CODE" in out, out
    assert "first use of code" in out and "by fulfilment, now CONSUMED (use 1 of 1" in out, out
    assert "refused FAILED_PRECONDITION ENTITLEMENT_CONSUMED" in out, out
    # Suspended: the redemption is refused; reinstated: it completes.
    assert "redeem spring-raffle: refused FAILED_PRECONDITION USER_SUSPENDED" in out, out
    assert "ACTIVE, 2 changes on record" in out, out
    assert out.count("redeem spring-raffle: COMPLETED") == 2, out
    # Last, the story's events from the suite's NATS: each a line of the feed once services publish
    # them, until then a note (never an error).
    heard = out[out.index("6. what other backends heard"):].splitlines()[1:]
    assert heard and (
        heard == ["   no events arrived within 2 s (only services whose outbox is wired publish; docs/events.md)"]
        or all(" user=demo-" in line for line in heard)
    ), out
