"""The worker's database work, on the Django ORM.

Django runs transactions on the thread that opened them, and its async ORM runs none, so each
unit of work is a synchronous function run on a thread of its own pool. The relay's transaction
stays open while the broker confirms the batch: its thread hands the publishing back to the event
loop (`async_to_sync`) and waits, holding the claimed rows' locks. Each unit of work ends by
returning its connection to the pool (settings.py), as the end of a request does in the web
service.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import psycopg
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db.backends.postgresql.base import DatabaseWrapper

from {{ cookiecutter.package_name }}.core.views import check_database, database_checker
from {{ cookiecutter.package_name }}.items.models import AuditEntry, OutboxEvent
from {{ cookiecutter.package_name }}.worker.events import ItemCreated, OutboxRecord

P = ParamSpec("P")
T = TypeVar("T")

# SQLSTATE classes that mean "the database cannot serve us now", not "this message is wrong":
# connection exception, insufficient resources, operator intervention (shutdown, cancel).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")


def record_effect(event: ItemCreated) -> bool:
    # The effect of the event, and anything you add to it, in one transaction that starts with
    # the entry keyed by the event: a redelivered event fails there and changes nothing. Inserting
    # first costs one statement for a new event; get_or_create would look it up first.
    try:
        with transaction.atomic():
            AuditEntry.objects.create(
                event_id=event.event_id, item_id=event.item_id, action=event.type
            )
    except IntegrityError:
        if AuditEntry.objects.filter(event_id=event.event_id).exists():
            return False
        raise
    return True


def relay_batch(limit: int, publish: Callable[[Sequence[OutboxRecord]], Awaitable[None]]) -> int:
    with transaction.atomic():
        # SKIP LOCKED: another worker's relay takes the next rows instead of waiting for these.
        rows = list(OutboxEvent.objects.select_for_update(skip_locked=True).order_by("id")[:limit])
        if not rows:
            return 0
        records = [
            OutboxRecord(event_id=str(row.event_id), key=row.key, payload=row.payload)
            for row in rows
        ]
        # Raises when the broker did not confirm: the transaction rolls back, the rows stay.
        async_to_sync(publish)(records)
        OutboxEvent.objects.filter(id__in=[row.id for row in rows]).delete()
    return len(rows)


def release_connection(function: Callable[P, T]) -> Callable[P, T]:
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connections[DEFAULT_DB_ALIAS].close()

    return run


def close_pool() -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    connection.close()
    if isinstance(connection, DatabaseWrapper):
        connection.close_pool()


class Store:
    def __init__(self) -> None:
        # The connection pool holds WORKER_THREADS connections: one for the relay, the others for
        # the handlers.
        self.handlers = ThreadPoolExecutor(
            max_workers=max(1, settings.WORKER_THREADS - 1), thread_name_prefix="handler"
        )
        self.relayer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay")
        self.record_effect = sync_to_async(
            release_connection(record_effect), thread_sensitive=False, executor=self.handlers
        )
        self.relay_batch = sync_to_async(
            release_connection(relay_batch), thread_sensitive=False, executor=self.relayer
        )

    async def record(self, event: ItemCreated) -> bool:
        """Store the event's effect unless it is stored already; True when stored now."""
        return await self.record_effect(event)

    async def relay(
        self, limit: int, publish: Callable[[Sequence[OutboxRecord]], Awaitable[None]]
    ) -> int:
        """Publish up to `limit` outbox rows in id order and delete them; the number published."""
        return await self.relay_batch(limit, publish)

    async def ping(self) -> None:
        """The web service's readiness check: a connection of its own, outside the pool."""
        await asyncio.wrap_future(database_checker.submit(check_database))

    def is_transient(self, exc: BaseException) -> bool:
        """Is this the database unavailable now, rather than something wrong with the event?"""
        if isinstance(exc, InterfaceError):
            # Django's "connection already closed", or the driver's own.
            return True
        if isinstance(exc, OperationalError):
            # Django wraps the driver's error; its SQLSTATE tells an outage from a bad statement.
            exc = exc.__cause__ or exc
        if isinstance(exc, psycopg.InterfaceError | OSError):
            return True
        if isinstance(exc, psycopg.OperationalError):
            # No SQLSTATE: the server never answered (refused, lost, timed out, pool exhausted).
            sqlstate = exc.sqlstate
            return sqlstate is None or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
        return False

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for executor in (self.handlers, self.relayer):
            await loop.run_in_executor(None, executor.shutdown)
        await loop.run_in_executor(None, close_pool)
