from typing import Annotated

from bson import ObjectId
from fastapi import APIRouter, HTTPException, Path, Query, status

from {{ cookiecutter.package_name }}.api.responses import (
    NOT_FOUND,
    UNAVAILABLE,
    UNPARSEABLE_BODY,
)
from {{ cookiecutter.package_name }}.core.db import Items
from {{ cookiecutter.package_name }}.documents import (
    LIST_ORDER,
    item_from_document,
    new_item_document,
    utc_now,
)
from {{ cookiecutter.package_name }}.schemas import ItemCreate, ItemPage, ItemRead

router = APIRouter(prefix="/api/v1/items", tags=["items"])

# An ObjectId's 24 hexadecimal digits: any other id is a 422, never a query.
ItemId = Annotated[str, Path(pattern="^[0-9a-fA-F]{24}$")]
# MongoDB's skip is a 64-bit integer: larger offsets are a 422, not a driver error.
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]


@router.post("", status_code=status.HTTP_201_CREATED, responses={**UNPARSEABLE_BODY, **UNAVAILABLE})
async def create_item(payload: ItemCreate, items: Items) -> ItemRead:
    document = new_item_document(payload, created_at=utc_now())
    await items.insert_one(document)
    return item_from_document(document)


@router.get("", responses=UNAVAILABLE)
async def list_items(
    items: Items,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> ItemPage:
    total = await items.count_documents({})
    documents = await items.find().sort(LIST_ORDER).skip(offset).limit(limit).to_list()
    return ItemPage(
        items=[item_from_document(document) for document in documents],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{item_id}", responses={**NOT_FOUND, **UNAVAILABLE})
async def get_item(item_id: ItemId, items: Items) -> ItemRead:
    document = await items.find_one({"_id": ObjectId(item_id)})
    if document is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Item not found")
    return item_from_document(document)
