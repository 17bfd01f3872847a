"""When `points up` restarts a service process that died, and when it gives up.

Pure: the caller passes the time (`time.monotonic()` in the suite, plain numbers in tests) and
acts on the decision. A worker's crashes within `window_seconds` make a streak: the first
restarts after `first_delay_seconds`, each next one waits twice as long (up to
`max_delay_seconds`), and a streak longer than `max_crashes` is a crash loop — restarting
again would only repeat it, so the suite stops and says why. Crashes older than the window are
forgotten: a process that ran for a while starts its next streak from the short delay.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_seconds: float = 0.5
    max_delay_seconds: float = 8.0
    max_crashes: int = 5
    window_seconds: float = 60.0


@dataclass(frozen=True)
class Restart:
    """Start the worker again at `at` (same clock as the crash); `attempt` counts the streak."""

    at: float
    attempt: int


@dataclass(frozen=True)
class GiveUp:
    """A crash loop: `crashes` exits within `window_seconds`."""

    crashes: int
    window_seconds: float


@dataclass
class CrashHistory:
    """One worker's recent crashes, judged by a policy."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    _crashes: deque[float] = field(default_factory=deque)

    def crashed(self, now: float) -> Restart | GiveUp:
        self._crashes.append(now)
        while self._crashes[0] <= now - self.policy.window_seconds:
            self._crashes.popleft()
        streak = len(self._crashes)
        if streak > self.policy.max_crashes:
            return GiveUp(streak, self.policy.window_seconds)
        delay = min(self.policy.max_delay_seconds, self.policy.first_delay_seconds * 2 ** (streak - 1))
        return Restart(now + delay, streak)


def describe_exit(returncode: int) -> str:
    """ "exit code 3" or "killed by SIGKILL" (Popen reports a signal as a negative code)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
