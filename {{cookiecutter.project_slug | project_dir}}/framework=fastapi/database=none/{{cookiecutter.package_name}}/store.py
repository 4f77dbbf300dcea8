"""The items, kept in this process's memory: the example resource without a database.

Each gunicorn worker has its own store, and a restart or a new pod starts empty: what one
request creates, a request served by another worker or pod does not see. Choose a database before
anything depends on the data.
"""

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

from {{ cookiecutter.package_name }}.schemas import ItemCreate


@dataclass(frozen=True)
class Item:
    id: int
    name: str
    description: str | None
    created_at: datetime


class StoreFullError(Exception):
    pass


class ItemStore:
    """At most `max_items` items: without a bound, any client could fill the worker's memory."""

    def __init__(self, max_items: int) -> None:
        self._items: dict[int, Item] = {}
        self._ids = itertools.count(1)
        self.max_items = max_items

    # No awaits inside: on the event loop each method runs to its end without interruption.
    def add(self, item: ItemCreate) -> Item:
        if len(self._items) >= self.max_items:
            raise StoreFullError
        stored = Item(id=next(self._ids), created_at=datetime.now(UTC), **item.model_dump())
        self._items[stored.id] = stored
        return stored

    def page(self, limit: int, offset: int) -> list[Item]:
        # Dicts keep insertion order: the items come out in creation order, as ids rise.
        return list(self._items.values())[offset : offset + limit]

    def count(self) -> int:
        return len(self._items)

    def get(self, item_id: int) -> Item | None:
        return self._items.get(item_id)
