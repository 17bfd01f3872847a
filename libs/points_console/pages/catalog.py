"""The catalog: items with stock bars, create and edit (versioned), campaigns ended now."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from points.common.v1 import common_pb2
from points_console.forms import FormError, read_item_form, read_request_id, read_version
from points_console.gateway import ServiceRefusedError
from points_console.web import form_values, operator, render, services, signed_in


@signed_in
async def catalog(request: Request) -> Response:
    return await catalog_page(request, {}, [])


async def catalog_page(request: Request, values: dict[str, str], errors: list[str]) -> Response:
    items = await services(request).items(operator(request))
    campaigns = await services(request).campaigns(operator(request))
    return render(
        request, "catalog.html", 400 if errors else 200, items=items, campaigns=campaigns, values=values,
        errors=errors,
    )


@signed_in
async def create_item(request: Request) -> Response:
    values = await form_values(request)
    try:
        spec = read_item_form(values)
        item = await services(request).create_item(operator(request), read_request_id(values), spec)
    except FormError as bad:
        return await catalog_page(request, values, bad.errors)
    except ServiceRefusedError as refused:
        return await catalog_page(request, values, [refused.message])
    return RedirectResponse(f"/catalog/items/{item.item_id}", status_code=303)


async def item_page(request: Request, item_id: str, values: dict[str, str] | None, errors: list[str]) -> Response:
    item = await services(request).item(operator(request), item_id)
    quote = await services(request).quote(operator(request), item)
    if values is None:
        values = {
            "title": item.title, "description": item.description, "price_points": str(item.price.amount),
            "regions": ", ".join(item.regions), "stock_total": str(item.stock_total) if item.limited_stock else "",
            "cosmetic_id": item.cosmetic.cosmetic_id, "expected_version": str(item.version),
        }
    return render(
        request, "item.html", 400 if errors else 200, item=item, quote=quote, values=values, errors=errors,
        currency=common_pb2.Currency.Name,
    )


@signed_in
async def item(request: Request) -> Response:
    item_id = request.path_params["item_id"]
    if request.method == "GET":
        return await item_page(request, item_id, None, [])
    values = await form_values(request)
    try:
        version, spec = read_version(values), read_item_form(values)
        await services(request).update_item(operator(request), read_request_id(values), item_id, version, spec)
    except FormError as bad:
        return await item_page(request, item_id, values, bad.errors)
    except ServiceRefusedError as refused:
        # A stale edit (someone saved a newer version first) is refused by the catalog; say so.
        return await item_page(request, item_id, values, [refused.message])
    return RedirectResponse(f"/catalog/items/{item_id}", status_code=303)


@signed_in
async def end_campaign(request: Request) -> Response:
    values = await form_values(request)
    campaign_id = values.get("campaign_id", "").strip()
    if not campaign_id:
        return await catalog_page(request, {}, ["Which campaign? The form named none."])
    try:
        await services(request).end_campaign(operator(request), read_request_id(values), campaign_id)
    except FormError as bad:
        return await catalog_page(request, {}, bad.errors)
    except ServiceRefusedError as refused:
        return await catalog_page(request, {}, [refused.message])
    return RedirectResponse("/catalog", status_code=303)
