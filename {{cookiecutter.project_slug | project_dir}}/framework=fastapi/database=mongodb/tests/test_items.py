import httpx
import pytest
from bson import ObjectId


async def test_create_then_get_an_item(mongodb_client: httpx.AsyncClient) -> None:
    created = await mongodb_client.post(
        "/api/v1/items", json={"name": "Widget", "description": "Blue"}
    )

    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Widget"
    assert body["description"] == "Blue"
    assert ObjectId.is_valid(body["id"])

    fetched = await mongodb_client.get(f"/api/v1/items/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_list_is_paginated_in_creation_order(mongodb_client: httpx.AsyncClient) -> None:
    ids = []
    for number in range(5):
        response = await mongodb_client.post("/api/v1/items", json={"name": f"paged-{number}"})
        ids.append(response.json()["id"])

    first = await mongodb_client.get("/api/v1/items", params={"limit": 2, "offset": 0})
    everything = await mongodb_client.get("/api/v1/items", params={"limit": 100})

    assert first.status_code == 200
    page = first.json()
    assert page["limit"] == 2
    assert len(page["items"]) == 2
    listed_ids = [item["id"] for item in everything.json()["items"]]
    assert [item_id for item_id in listed_ids if item_id in ids] == ids
    assert everything.json()["total"] >= len(ids)


async def test_unknown_item_is_404(mongodb_client: httpx.AsyncClient) -> None:
    response = await mongodb_client.get(f"/api/v1/items/{ObjectId()}")

    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}


@pytest.mark.parametrize(
    "payload",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": "ok", "unknown": 1}],
)
async def test_invalid_payloads_are_422(client: httpx.AsyncClient, payload: dict) -> None:
    # Validation answers before the database is asked: `client` has none.
    response = await client.post("/api/v1/items", json=payload)

    assert response.status_code == 422


@pytest.mark.parametrize(
    "item_id",
    ["abc", "0", "0" * 23, "0" * 25, "g" * 24, "5f2b6c0e8a1d4e3f9b7c6a5d-"],
)
async def test_ids_that_are_not_object_ids_are_422(client: httpx.AsyncClient, item_id: str) -> None:
    response = await client.get(f"/api/v1/items/{item_id}")

    assert response.status_code == 422


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": 2**63}]
)
async def test_invalid_pages_are_422(client: httpx.AsyncClient, params: dict) -> None:
    response = await client.get("/api/v1/items", params=params)

    assert response.status_code == 422


async def test_a_body_with_nan_is_422_not_500(client: httpx.AsyncClient) -> None:
    # Python's JSON parser reads NaN; the 422 that echoes it must still be JSON.
    response = await client.post(
        "/api/v1/items", content='{"name": NaN}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["input"] == "nan"
