"""Catalog use cases, one module per aggregate; `ports.py` says what they need from storage."""
