"""A user's standing: the suspension actions and the refusal a suspended user gets."""

from __future__ import annotations

import enum

from points_platform.errors import FailedPrecondition


class UserStatusAction(enum.IntEnum):
    SUSPENDED = 1
    REINSTATED = 2



def user_suspended(user_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "USER_SUSPENDED",
        "the user is suspended: this operation is refused until reinstatement",
        metadata={"user_id": user_id},
    )
