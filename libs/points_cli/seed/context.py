"""What a demo seed gets: channels to the running suite and caller metadata."""

from __future__ import annotations

from points_cli.targets import CallerContext

SeedContext = CallerContext
