"""The backlog gauges follow the unpublished rows; failed publishes are counted."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from points_platform.relay import PublishError
from tests.events.conftest import SERVICE, Feed


class Refusing:
    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        raise PublishError("NATS is down")


def sample(name: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": SERVICE})


async def test_backlog_and_its_age_reflect_unpublished_rows(feed: Feed) -> None:
    for user in ["alice", "bob", "carol"]:
        await feed.change(user)
    feed.clock.advance(30)
    for user in ["alice", "dave"]:
        await feed.change(user)
    errors_before = sample("points_outbox_publish_errors_total") or 0.0

    with pytest.raises(PublishError):
        await feed.relay(Refusing()).relay_once()
    assert sample("points_outbox_backlog") == 5
    assert sample("points_outbox_oldest_age_seconds") == 30
    assert sample("points_outbox_publish_errors_total") == errors_before + 1

    feed.clock.advance(15)
    published_before = sample("points_outbox_published_total") or 0.0
    assert await feed.relay().relay_once() == 5
    assert sample("points_outbox_backlog") == 0
    assert sample("points_outbox_oldest_age_seconds") == 0
    assert sample("points_outbox_published_total") == published_before + 5
