from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import func, select

from {{ cookiecutter.package_name }}.api.responses import (
    NOT_FOUND,
    UNAVAILABLE,
    UNPARSEABLE_BODY,
)
from {{ cookiecutter.package_name }}.core.db import Session
{%- if cookiecutter.worker != "none" %}
from {{ cookiecutter.package_name }}.models import Item, Outbox
{%- else %}
from {{ cookiecutter.package_name }}.models import Item
{%- endif %}
from {{ cookiecutter.package_name }}.schemas import ItemCreate, ItemPage, ItemRead
{%- if cookiecutter.worker != "none" %}
from {{ cookiecutter.package_name }}.worker.events import ItemCreated
{%- endif %}

router = APIRouter(prefix="/api/v1/items", tags=["items"])

# The database's limits, so that larger values are a 422, never a driver overflow error:
# the primary key is an integer, OFFSET a bigint.
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]


@router.post("", status_code=status.HTTP_201_CREATED, responses={**UNPARSEABLE_BODY, **UNAVAILABLE})
async def create_item(payload: ItemCreate, session: Session) -> ItemRead:
    item = Item(**payload.model_dump())
    session.add(item)
{%- if cookiecutter.worker != "none" %}
    # The event is committed with the item (a transactional outbox) and published by the
    # worker's relay: a broker outage neither fails a creation nor loses its event.
    await session.flush()
    session.add(Outbox(**ItemCreated.for_item(item.id, item.name).outbox_row()))
{%- endif %}
    await session.commit()
    await session.refresh(item)
    return ItemRead.model_validate(item)


@router.get("", responses=UNAVAILABLE)
async def list_items(
    session: Session,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> ItemPage:
    total = await session.scalar(select(func.count()).select_from(Item))
    rows = await session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset))
    return ItemPage(
        items=[ItemRead.model_validate(row) for row in rows],
        total=total or 0,
        limit=limit,
        offset=offset,
    )


@router.get("/{item_id}", responses={**NOT_FOUND, **UNAVAILABLE})
async def get_item(item_id: ItemId, session: Session) -> ItemRead:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Item not found")
    return ItemRead.model_validate(item)
