"""SQLAlchemy tables of the catalog service (its own database)."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
