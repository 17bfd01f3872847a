"""gRPC transport of the catalog: the servicer and its call policy (`servicer.py`), proto mapping (`mapping.py`)."""

from __future__ import annotations

from catalog.api.servicer import FULL_NAME, POLICY, USER_SCOPED, CatalogApi, service_spec

__all__ = ["FULL_NAME", "POLICY", "USER_SCOPED", "CatalogApi", "service_spec"]
