"""The items, kept in this process's memory: the example resource without a database.

Each gunicorn worker has its own store, shared by its threads, and a restart or a new pod starts
empty: what one request creates, a request served by another worker or pod does not see. Choose
a database before anything depends on the data.
"""

import itertools
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings


@dataclass(frozen=True)
class Item:
    id: int
    name: str
    description: str
    created_at: datetime


class StoreFullError(Exception):
    pass


class ItemStore:
    """At most MAX_ITEMS items: without a bound, any client could fill the worker's memory."""

    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._ids = itertools.count(1)
        # gunicorn's threads share the store.
        self._lock = threading.Lock()

    def add(self, name: str, description: str) -> Item:
        with self._lock:
            if len(self._items) >= settings.MAX_ITEMS:
                raise StoreFullError
            item = Item(next(self._ids), name, description, datetime.now(UTC))
            self._items[item.id] = item
        return item

    def page(self, limit: int, offset: int) -> tuple[list[Item], int]:
        """One page of items in creation order, and how many there are in all."""
        with self._lock:
            items = list(self._items.values())
        return items[offset : offset + limit], len(items)

    def get(self, item_id: int) -> Item | None:
        return self._items.get(item_id)


items = ItemStore()
