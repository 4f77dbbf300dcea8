"""How items are stored in MongoDB: the collection, its validator, its index and the mapping.

MongoDB itself enforces the API's limits (schemas.py) with a JSON-schema validator, so documents
written by other tools cannot break the API either; `migrate.py` applies it and the index.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel

from {{ cookiecutter.package_name }}.schemas import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    ItemCreate,
    ItemRead,
)

COLLECTION = "items"

ITEM_VALIDATOR: dict[str, Any] = {
    "$jsonSchema": {
        "bsonType": "object",
        "required": ["_id", "name", "description", "created_at"],
        "additionalProperties": False,
        "properties": {
            "_id": {"bsonType": "objectId"},
            "name": {"bsonType": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH},
            "description": {"bsonType": ["string", "null"], "maxLength": DESCRIPTION_MAX_LENGTH},
            "created_at": {"bsonType": "date"},
        },
    }
}
# Creation order, oldest first: ObjectIds from different processes are ordered only to the second,
# so the timestamp comes first and the index serves the sort.
LIST_ORDER = [("created_at", ASCENDING), ("_id", ASCENDING)]
ITEM_INDEXES = [IndexModel(LIST_ORDER, name="created_at_id")]


def utc_now() -> datetime:
    """The current time as MongoDB stores it: UTC, to the millisecond."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_item_document(item: ItemCreate, created_at: datetime) -> dict[str, Any]:
    # The id is made here rather than by the server, so the new item is known without a read.
    return {"_id": ObjectId(), **item.model_dump(), "created_at": created_at}


def item_from_document(document: Mapping[str, Any]) -> ItemRead:
    return ItemRead(
        id=str(document["_id"]),
        name=document["name"],
        description=document["description"],
        created_at=document["created_at"],
    )
