from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status

from {{ cookiecutter.package_name }}.api.responses import (
    NOT_FOUND,
    STORE_FULL,
    UNPARSEABLE_BODY,
)
from {{ cookiecutter.package_name }}.schemas import ItemCreate, ItemPage, ItemRead
from {{ cookiecutter.package_name }}.store import ItemStore, StoreFullError

router = APIRouter(prefix="/api/v1/items", tags=["items"])


def get_store(request: Request) -> ItemStore:
    return request.app.state.items


Store = Annotated[ItemStore, Depends(get_store)]


@router.post("", status_code=status.HTTP_201_CREATED, responses={**UNPARSEABLE_BODY, **STORE_FULL})
async def create_item(payload: ItemCreate, store: Store) -> ItemRead:
    try:
        item = store.add(payload)
    except StoreFullError:
        raise HTTPException(
            status_code=status.HTTP_507_INSUFFICIENT_STORAGE, detail="Item store full"
        ) from None
    return ItemRead.model_validate(item)


@router.get("")
async def list_items(
    store: Store,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ItemPage:
    return ItemPage(
        items=[ItemRead.model_validate(item) for item in store.page(limit, offset)],
        total=store.count(),
        limit=limit,
        offset=offset,
    )


@router.get("/{item_id}", responses=NOT_FOUND)
async def get_item(item_id: Annotated[int, Path(ge=1)], store: Store) -> ItemRead:
    item = store.get(item_id)
    if item is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Item not found")
    return ItemRead.model_validate(item)
