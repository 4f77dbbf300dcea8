"""The worker's database side over SQLAlchemy: the effect it records, the outbox it relays."""

from collections.abc import Sequence

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert

from {{ cookiecutter.package_name }}.core.db import create_engine
from {{ cookiecutter.package_name }}.core.errors import unavailable_reason
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.models import AuditEntry, Outbox
from {{ cookiecutter.package_name }}.worker.events import ItemCreated, OutboxRecord
from {{ cookiecutter.package_name }}.worker.relay import Publish


class Store:
    def __init__(self, settings: Settings) -> None:
        # No ping per checkout: a connection that died fails its statement, which the consumer
        # retries as a database outage and the relay as a failed batch.
        self.engine = create_engine(settings, pre_ping=False)
        # The effect is one INSERT, a transaction of its own: no BEGIN and COMMIT round trips.
        self.autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def record(self, event: ItemCreated) -> bool:
        """Store the event's effect unless it is there already; True when stored now."""
        statement = (
            insert(AuditEntry)
            .values(event_id=event.event_id, item_id=event.item_id, action=event.type)
            .on_conflict_do_nothing(index_elements=[AuditEntry.event_id])
        )
        async with self.autocommit.connect() as conn:
            result = await conn.execute(statement)
        return result.rowcount == 1

    async def relay(self, limit: int, publish: Publish) -> int:
        """Publish and delete up to `limit` outbox rows in one transaction; their number."""
        claim = (
            select(Outbox.id, Outbox.event_id, Outbox.key, Outbox.payload)
            .order_by(Outbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as conn:
            rows = (await conn.execute(claim)).all()
            if rows:
                records: Sequence[OutboxRecord] = [
                    OutboxRecord(event_id=str(row.event_id), key=row.key, payload=row.payload)
                    for row in rows
                ]
                await publish(records)
                await conn.execute(delete(Outbox).where(Outbox.id.in_([row.id for row in rows])))
        return len(rows)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def is_transient(self, exc: BaseException) -> bool:
        """Whether the database is unavailable for now (down, restarting, not migrated yet)."""
        return unavailable_reason(exc) is not None

    async def close(self) -> None:
        await self.engine.dispose()
