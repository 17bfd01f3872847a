"""The realistic earning workload: who acts and what they do, as a short-video app sees it.

Users are drawn Zipf(1.1) from a million (a few heavy users, a long tail), activities follow the
app's mix, each user has a couple of devices, and a sponsored challenge is joined by ~10 % of
the users that act. Deterministic for a seed, so two runs (or the floor and the services) see
the same users.
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass

USERS = 1_000_000
ZIPF_S = 1.1
# Share of activity by kind (watch time, likes, comments, shares, live joins, game milestones).
MIX: dict[str, float] = {
    "watch": 0.60,
    "like": 0.20,
    "comment": 0.08,
    "share": 0.05,
    "live_join": 0.05,
    "game_milestone": 0.02,
}
DEVICES_PER_USER = 2
CHALLENGE_SHARE = 0.10


@dataclass(frozen=True)
class Activity:
    user: str
    kind: str
    device: str
    target: str
    joined_challenge: bool


@functools.cache
def _cumulative_weights(n: int, s: float) -> list[float]:
    return list(itertools.accumulate(1.0 / k**s for k in range(1, n + 1)))


class ZipfUsers:
    """Ranks 1..n with P(rank k) ∝ 1 / k^s, sampled by bisection over the cumulative weights."""

    def __init__(self, n: int = USERS, s: float = ZIPF_S, *, seed: int = 1) -> None:
        self.n = n
        self._cum = _cumulative_weights(n, s)
        self._ranks = range(1, n + 1)
        self._random = random.Random(seed)

    def draw(self, k: int) -> list[int]:
        return self._random.choices(self._ranks, cum_weights=self._cum, k=k)


class Workload:
    """Activities of Zipf users in the app's mix; `prefix` keeps one run's users apart from another's."""

    def __init__(self, prefix: str, *, users: int = USERS, seed: int = 1) -> None:
        self.prefix = prefix
        self._users = ZipfUsers(users, seed=seed)
        self._random = random.Random(seed + 1)
        self._kinds = list(MIX)
        self._kind_weights = list(itertools.accumulate(MIX.values()))
        self._targets = itertools.count()

    def user_id(self, rank: int) -> str:
        return f"{self.prefix}-u{rank}"

    def joined_challenge(self, rank: int) -> bool:
        # A property of the user, not of the draw: the same user is in or out for the whole run.
        return random.Random(rank).random() < CHALLENGE_SHARE

    def activities(self, k: int) -> list[Activity]:
        ranks = self._users.draw(k)
        kinds = self._random.choices(self._kinds, cum_weights=self._kind_weights, k=k)
        return [
            Activity(
                user=self.user_id(rank),
                kind=kind,
                device=f"{self.prefix}-d{rank}-{self._random.randrange(DEVICES_PER_USER)}",
                target=f"{self.prefix}-t{next(self._targets)}",
                joined_challenge=self.joined_challenge(rank),
            )
            for rank, kind in zip(ranks, kinds, strict=True)
        ]
