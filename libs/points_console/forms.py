"""Reading the console's forms: every bad field becomes a sentence for the page, never an exception."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_POINTS = 10**12
REGION = re.compile(r"^[A-Z]{2}$")


class FormError(Exception):
    """What is wrong with a form, one readable sentence per field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class CosmeticItemForm:
    """The fields an operator sets on a cosmetic item; stock_total 0 = unlimited."""

    title: str
    description: str
    price_points: int
    regions: list[str]
    stock_total: int
    cosmetic_id: str


def _whole_number(errors: list[str], label: str, raw: str, *, minimum: int, maximum: int = MAX_POINTS) -> int:
    text = raw.strip()
    if not re.fullmatch(r"\d+", text) or not minimum <= int(text) <= maximum:
        errors.append(f"{label} must be a whole number from {minimum} to {maximum}.")
        return 0
    return int(text)


def read_item_form(form: Mapping[str, str]) -> CosmeticItemForm:
    errors: list[str] = []
    title = form.get("title", "").strip()
    if not 1 <= len(title) <= 200:
        errors.append("Title is required (at most 200 characters).")
    description = form.get("description", "").strip()
    if len(description) > 2000:
        errors.append("Description is at most 2000 characters.")
    price = _whole_number(errors, "Price", form.get("price_points", ""), minimum=1)
    regions = [r.strip().upper() for r in form.get("regions", "").split(",") if r.strip()]
    if bad := [r for r in regions if not REGION.match(r)]:
        errors.append(f"Regions are two-letter codes separated by commas (not {', '.join(bad)}).")
    stock_raw = form.get("stock_total", "").strip()
    stock = _whole_number(errors, "Stock", stock_raw, minimum=1) if stock_raw else 0
    cosmetic_id = form.get("cosmetic_id", "").strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", cosmetic_id):
        errors.append("Cosmetic id is 1-64 lower-case letters, digits and dashes.")
    if errors:
        raise FormError(errors)
    return CosmeticItemForm(title, description, price, regions, stock, cosmetic_id)


def read_version(form: Mapping[str, str]) -> int:
    errors: list[str] = []
    version = _whole_number(errors, "Version", form.get("expected_version", ""), minimum=1)
    if errors:
        raise FormError(errors)
    return version
