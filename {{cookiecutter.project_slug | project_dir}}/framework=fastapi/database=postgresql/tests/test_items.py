import httpx


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
    names = [f"paged-{n}" for n in range(5)]
    ids = []
    for name in names:
        response = await client.post("/api/v1/items", json={"name": name})
        ids.append(response.json()["id"])

    first = await client.get("/api/v1/items", params={"limit": 2, "offset": 0})
    everything = await client.get("/api/v1/items", params={"limit": 100})

    assert first.status_code == 200
    page = first.json()
    assert page["limit"] == 2
    assert len(page["items"]) == 2
    listed_ids = [item["id"] for item in everything.json()["items"]]
    assert listed_ids == sorted(listed_ids)
    assert set(ids) <= set(listed_ids)
    assert everything.json()["total"] >= len(names)


async def test_unknown_item_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/items/999999")

    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}


async def test_invalid_payloads_are_422(client: httpx.AsyncClient) -> None:
    for payload in ({}, {"name": ""}, {"name": "x" * 201}, {"name": "ok", "unknown": 1}):
        response = await client.post("/api/v1/items", json=payload)
        assert response.status_code == 422, payload


async def test_invalid_ids_and_pages_are_422(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/items/abc", "/api/v1/items/0", f"/api/v1/items/{2**63}"):
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
