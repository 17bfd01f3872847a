"""`points seed`: load the demo data of every service that has a seed module, in order."""

from __future__ import annotations

import importlib

from points_cli.seed.context import SeedContext
from points_cli.targets import SuiteTargets

# Catalog first: earning's challenge and redemption's demo refer to catalog items.
ORDER = ("catalog", "earning", "wallet", "redemption")


async def run_seeds(targets: SuiteTargets) -> list[str]:
    """Run each available seed; return the names seeded."""
    done = []
    ctx = SeedContext(targets)
    try:
        for service in ORDER:
            try:
                module = importlib.import_module(f"points_cli.seed.{service}")
            except ModuleNotFoundError:
                continue
            await module.seed(ctx)
            done.append(service)
    finally:
        await ctx.close()
    return done
