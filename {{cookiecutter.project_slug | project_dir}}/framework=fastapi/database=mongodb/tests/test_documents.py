"""The mapping between the API's items and MongoDB documents, which needs no server."""

from datetime import UTC, datetime

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions

from {{ cookiecutter.package_name }}.documents import (
    ITEM_VALIDATOR,
    item_from_document,
    new_item_document,
    utc_now,
)
from {{ cookiecutter.package_name }}.schemas import ItemCreate


def test_a_new_document_reads_back_as_the_item_it_came_from() -> None:
    created_at = utc_now()
    document = new_item_document(ItemCreate(name="Widget", description="Blue"), created_at)

    item = item_from_document(document)

    assert item.id == str(document["_id"])
    assert ObjectId(item.id) == document["_id"]
    assert (item.name, item.description, item.created_at) == ("Widget", "Blue", created_at)


def test_a_document_stored_as_bson_reads_back_as_the_same_item() -> None:
    """What the server stores and returns, without a server: BSON keeps dates to the millisecond."""
    document = new_item_document(ItemCreate(name="Widget"), utc_now())

    stored = bson.decode(bson.encode(document), CodecOptions(tz_aware=True))

    assert item_from_document(stored) == item_from_document(document)


def test_each_new_document_gets_its_own_id() -> None:
    item = ItemCreate(name="Widget")
    first, second = (new_item_document(item, utc_now()) for _ in range(2))

    assert first["_id"] != second["_id"]
    assert first["description"] is None


def test_times_are_utc_to_the_millisecond_as_mongodb_stores_them() -> None:
    now = utc_now()

    assert now.tzinfo == UTC
    assert now.microsecond % 1000 == 0
    assert abs((datetime.now(UTC) - now).total_seconds()) < 1


def test_the_validator_allows_exactly_the_fields_a_new_document_has() -> None:
    schema = ITEM_VALIDATOR["$jsonSchema"]
    document = new_item_document(ItemCreate(name="Widget"), utc_now())

    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(document) == set(schema["properties"])


def test_the_validator_holds_the_apis_limits() -> None:
    properties = ITEM_VALIDATOR["$jsonSchema"]["properties"]
    fields = ItemCreate.model_json_schema()["properties"]

    assert properties["name"]["maxLength"] == fields["name"]["maxLength"]
    assert properties["name"]["minLength"] == fields["name"]["minLength"]
    description_limits = {
        limit["maxLength"] for limit in fields["description"]["anyOf"] if limit.get("maxLength")
    }
    assert description_limits == {properties["description"]["maxLength"]}
