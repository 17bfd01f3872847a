"""Campaign use cases: create, end early, read, list."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import structlog

from catalog import domain
from catalog.domain import Campaign
from catalog.use_cases.commands import CreateCampaign, EndCampaign, Page
from catalog.use_cases.ids import derived_id
from catalog.use_cases.items import item_not_found
from catalog.use_cases.ports import Database, UnitOfWork
from points_platform.clock import Clock
from points_platform.errors import FailedPrecondition, InvalidArgument, NotFound

log = structlog.get_logger("catalog")


def campaign_not_found(campaign_id: str) -> NotFound:
    return NotFound("CAMPAIGN_NOT_FOUND", "no such campaign", metadata={"campaign_id": campaign_id})


class Campaigns:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create_campaign(self, cmd: CreateCampaign, uow: UnitOfWork) -> Campaign:
        tx, now = self._db.on(uow), self._clock.now()
        for item_id in cmd.spec.item_ids:
            item = await tx.items.get_item(item_id)
            if item is None:
                raise item_not_found(item_id)
            fixed = cmd.spec.fixed_price
            if fixed is not None and fixed.currency != item.spec.price.currency:
                raise InvalidArgument(
                    "CURRENCY_MISMATCH",
                    f"fixed_price is in {fixed.currency.name}, item {item_id} in {item.spec.price.currency.name}",
                    field_violations=[("spec.fixed_price.currency", "must match every item's currency")],
                )
        campaign = Campaign(derived_id("campaign", cmd.request_id), cmd.spec, now)
        await tx.campaigns.insert_campaign(campaign)
        log.info("campaign_created", campaign_id=campaign.campaign_id, sponsor=cmd.spec.sponsor)
        return campaign

    async def end_campaign(self, cmd: EndCampaign, uow: UnitOfWork) -> Campaign:
        tx, now = self._db.on(uow), self._clock.now()
        campaign = await tx.campaigns.get_campaign(cmd.campaign_id, for_update=True)
        if campaign is None:
            raise campaign_not_found(cmd.campaign_id)
        if domain.has_ended(campaign, now):
            raise FailedPrecondition(
                "CAMPAIGN_ALREADY_ENDED", "the campaign has already ended",
                metadata={"campaign_id": cmd.campaign_id},
            )
        ended = replace(campaign, ended_time=now)
        await tx.campaigns.set_campaign_ended(cmd.campaign_id, now)
        log.info("campaign_ended", campaign_id=cmd.campaign_id)
        return ended

    async def get_campaign(self, campaign_id: str) -> Campaign:
        found = await self._db.run(lambda uow: self._db.on(uow).campaigns.get_campaign(campaign_id))
        if found is None:
            raise campaign_not_found(campaign_id)
        return found

    async def list_campaigns(
        self, region: str, active_at: datetime | None, after: tuple[datetime, str] | None, size: int
    ) -> Page[Campaign]:
        found = await self._db.run(
            lambda uow: self._db.on(uow).campaigns.list_campaigns(region, active_at, after, size + 1))
        page = found[:size]
        more = len(found) > size
        return Page(page, (page[-1].create_time, page[-1].campaign_id) if more else None)
