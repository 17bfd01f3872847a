"""Campaigns and the items each covers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.domain import Campaign
from catalog.store.rows import campaign_from_row, campaign_values
from catalog.store.tables import campaign_items, campaigns


def _running_at(moment: datetime) -> tuple[ColumnElement[bool], ...]:
    """A campaign's window contains `moment` and it was not ended before (`domain.applies`)."""
    return (
        campaigns.c.start_time <= moment,
        campaigns.c.end_time > moment,
        or_(campaigns.c.ended_time.is_(None), campaigns.c.ended_time > moment),
    )


class CampaignRepository:
    """Campaigns of one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert_campaign(self, campaign: Campaign) -> None:
        await self.conn.execute(campaigns.insert().values(**campaign_values(campaign)))
        await self.conn.execute(
            campaign_items.insert(),
            [
                {"campaign_id": campaign.campaign_id, "item_id": item_id, "position": n}
                for n, item_id in enumerate(campaign.spec.item_ids)
            ],
        )

    async def get_campaign(self, campaign_id: str, *, for_update: bool = False) -> Campaign | None:
        query = select(campaigns).where(campaigns.c.campaign_id == campaign_id)
        rows = (await self.conn.execute(query.with_for_update() if for_update else query)).mappings().all()
        found = await self._with_items(rows)
        return found[0] if found else None

    async def set_campaign_ended(self, campaign_id: str, ended_time: datetime) -> None:
        await self.conn.execute(
            update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(ended_time=ended_time)
        )

    async def list_campaigns(
        self, region: str, active_at: datetime | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Campaign]:
        query = select(campaigns)
        if region:
            query = query.where(
                or_(func.cardinality(campaigns.c.regions) == 0, campaigns.c.regions.any_() == region)
            )
        if active_at is not None:
            query = query.where(*_running_at(active_at))
        if after is not None:
            query = query.where(
                or_(
                    campaigns.c.create_time > after[0],
                    and_(campaigns.c.create_time == after[0], campaigns.c.campaign_id > after[1]),
                )
            )
        query = query.order_by(campaigns.c.create_time, campaigns.c.campaign_id).limit(limit)
        return await self._with_items((await self.conn.execute(query)).mappings().all())

    async def _with_items(self, rows: Sequence[Any]) -> list[Campaign]:
        if not rows:
            return []
        members: dict[str, list[str]] = {r["campaign_id"]: [] for r in rows}
        links = await self.conn.execute(
            select(campaign_items.c.campaign_id, campaign_items.c.item_id)
            .where(campaign_items.c.campaign_id.in_(list(members)))
            .order_by(campaign_items.c.campaign_id, campaign_items.c.position)
        )
        for link in links:
            members[link.campaign_id].append(link.item_id)
        return [campaign_from_row(r, tuple(members[r["campaign_id"]])) for r in rows]
