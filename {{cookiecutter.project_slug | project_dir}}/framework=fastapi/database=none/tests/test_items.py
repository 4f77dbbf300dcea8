import httpx
import pytest

from {{ cookiecutter.package_name }}.core.settings import Settings
from tests.support import serve


async def test_create_then_get_an_item(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/items", json={"name": "Widget", "description": "Blue"})

    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Widget"
    assert body["description"] == "Blue"

    fetched = await client.get(f"/api/v1/items/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_list_is_paginated_in_creation_order(client: httpx.AsyncClient) -> None:
    ids = [
        (await client.post("/api/v1/items", json={"name": f"paged-{n}"})).json()["id"]
        for n in range(5)
    ]

    first = (await client.get("/api/v1/items", params={"limit": 2, "offset": 0})).json()
    rest = (await client.get("/api/v1/items", params={"offset": 2})).json()

    assert [item["id"] for item in first["items"]] == ids[:2]
    assert [first["total"], first["limit"], first["offset"]] == [5, 2, 0]
    assert [item["id"] for item in rest["items"]] == ids[2:]


async def test_items_live_in_one_process_and_a_new_one_starts_empty(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await client.post("/api/v1/items", json={"name": "Widget"})

    async with serve(settings) as another_worker:
        response = await another_worker.get("/api/v1/items")

    assert response.json()["total"] == 0


async def test_unknown_item_is_404(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/items/999999", f"/api/v1/items/{2**63}"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Item not found"}, path


@pytest.mark.parametrize(
    "payload",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": "ok", "unknown": 1}],
)
async def test_invalid_payloads_are_422(client: httpx.AsyncClient, payload: dict) -> None:
    response = await client.post("/api/v1/items", json=payload)

    assert response.status_code == 422


async def test_invalid_ids_and_pages_are_422(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/items/abc", "/api/v1/items/0"):
        response = await client.get(path)
        assert response.status_code == 422, path
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        response = await client.get("/api/v1/items", params=params)
        assert response.status_code == 422, params


async def test_a_body_with_nan_is_422_not_500(client: httpx.AsyncClient) -> None:
    # Python's JSON parser reads NaN; the 422 that echoes it must still be JSON.
    response = await client.post(
        "/api/v1/items", content='{"name": NaN}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["input"] == "nan"
