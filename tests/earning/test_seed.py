"""The demo seed creates one sponsored challenge against a running earning server, idempotently."""

from __future__ import annotations

from points.earning.v1 import earning_pb2 as pb
from points_cli.seed.earning import seed
from points_cli.targets import CallerContext, SuiteTargets
from tests.earning.conftest import APP, StartSuite
from tests.support.credentials import TOKENS


async def test_seed_is_idempotent(start_suite: StartSuite) -> None:
    s = await start_suite()
    ctx = CallerContext(SuiteTargets("127.0.0.1", {"earning": s.earning.port, "wallet": s.wallet.port}, dict(TOKENS)))
    try:
        await seed(ctx)
        await seed(ctx)
    finally:
        await ctx.close()
    listed = (await s.stub.ListChallenges(pb.ListChallengesRequest(), metadata=APP)).challenges
    assert [(c.sponsor, c.sponsor_budget_points) for c in listed] == [("Acme Sneakers", 100_000)]
    rules = (await s.stub.GetRules(pb.GetRulesRequest(), metadata=APP)).rules
    assert rules.version == 1 and len(rules.activity_rules) == 7
