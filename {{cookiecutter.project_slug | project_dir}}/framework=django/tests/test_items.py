{% if cookiecutter.database == "none" -%}
from pathlib import Path

{% endif -%}
import pytest
from django.test import Client
{%- if cookiecutter.database == "none" %}
from pytest_django.fixtures import Settings
{%- endif %}

{% if cookiecutter.database == "postgresql" -%}
pytestmark = pytest.mark.django_db


def test_create_then_get_an_item(client: Client) -> None:
    created = client.post(
        "/api/v1/items", {"name": "Widget", "description": "Blue"}, content_type="application/json"
    )

    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Widget"
    assert body["description"] == "Blue"

    fetched = client.get(f"/api/v1/items/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body


def test_list_is_paginated_in_creation_order(client: Client) -> None:
    ids = [
        client.post(
            "/api/v1/items", {"name": f"paged-{n}"}, content_type="application/json"
        ).json()["id"]
        for n in range(5)
    ]

    first = client.get("/api/v1/items", {"limit": 2, "offset": 0}).json()
    rest = client.get("/api/v1/items", {"offset": 2}).json()

    assert [item["id"] for item in first["items"]] == ids[:2]
    assert [first["total"], first["limit"], first["offset"]] == [5, 2, 0]
    assert [item["id"] for item in rest["items"]] == ids[2:]
    assert [rest["limit"], rest["offset"]] == [20, 2]
{%- else -%}
from tests.support import serve


def create(client: Client, payload: object) -> dict:
    response = client.post("/api/v1/items", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_then_get_an_item(client: Client) -> None:
    body = create(client, {"name": "Widget", "description": "Blue"})

    assert body["name"] == "Widget"
    assert body["description"] == "Blue"
    fetched = client.get(f"/api/v1/items/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body


def test_list_is_paginated_in_creation_order(client: Client) -> None:
    # The store lives as long as the test process: other tests' items come first.
    before = client.get("/api/v1/items").json()["total"]
    ids = [create(client, {"name": f"paged-{n}"})["id"] for n in range(5)]

    first = client.get("/api/v1/items", {"limit": 2, "offset": before}).json()
    rest = client.get("/api/v1/items", {"offset": before + 2}).json()

    assert [item["id"] for item in first["items"]] == ids[:2]
    assert [first["total"], first["limit"], first["offset"]] == [before + 5, 2, before]
    assert [item["id"] for item in rest["items"]] == ids[2:]
    assert [rest["limit"], rest["offset"]] == [20, before + 2]
{%- endif %}


def test_unknown_item_is_404(client: Client) -> None:
    for path in ("/api/v1/items/999999", "/api/v1/items/0", f"/api/v1/items/{2**63}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Item not found"}, path


def test_unknown_paths_are_json_404s(client: Client) -> None:
    response = client.get("/api/v1/items/abc")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok", "description": "x" * 2001}, "description"),
        ({"name": "ok", "colour": "blue"}, "__all__"),
        (["name"], "body"),
    ],
)
def test_invalid_payloads_are_400_naming_the_field(
    client: Client, payload: object, field: str
) -> None:
    response = client.post("/api/v1/items", payload, content_type="application/json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


def test_a_body_that_is_not_json_is_400(client: Client) -> None:
    response = client.post("/api/v1/items", "name=Widget", content_type="text/plain")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["body"]


{% if cookiecutter.database == "postgresql" -%}
@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"offset": -1}, {"offset": 2**63}],
)
{%- else -%}
@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"offset": -1}])
{%- endif %}
def test_invalid_pages_are_400(client: Client, params: dict[str, object]) -> None:
    response = client.get("/api/v1/items", params)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == list(params)
{%- if cookiecutter.database == "none" %}


def test_items_live_in_the_process_that_created_them(client: Client, tmp_path: Path) -> None:
    create(client, {"name": "Widget"})
    with serve(tmp_path / "server.log") as server:
        listed = server.get("/api/v1/items").json()

    assert listed["total"] == 0


def test_a_full_store_refuses_new_items_with_507(client: Client, settings: Settings) -> None:
    settings.MAX_ITEMS = client.get("/api/v1/items").json()["total"] + 1
    create(client, {"name": "the last one"})

    response = client.post(
        "/api/v1/items", {"name": "one too many"}, content_type="application/json"
    )

    assert response.status_code == 507
    assert response.json() == {"detail": "Item store full"}
{%- endif %}
