"""The catalog service (points.catalog.v1.CatalogService)."""
