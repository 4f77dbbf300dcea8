"""The events the service publishes, as they travel through the outbox and the broker."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ItemCreated(BaseModel):
    """Published once per item created; `event_id` makes a redelivery recognisable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    type: Literal["item.created"] = "item.created"
    item_id: int
    name: str
    occurred_at: datetime

    @classmethod
    def for_item(cls, item_id: int, name: str) -> "ItemCreated":
        return cls(event_id=uuid.uuid4(), item_id=item_id, name=name, occurred_at=datetime.now(UTC))

    def outbox_row(self) -> dict[str, Any]:
{%- if cookiecutter.worker == "kafka" %}
        """The outbox row's columns; the key keeps one item's events in order (one partition)."""
{%- else %}
        """The outbox row's columns; the key is the item's id."""
{%- endif %}
        return {
            "event_id": self.event_id,
            "key": str(self.item_id),
            "payload": self.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class OutboxRecord:
    """An outbox row claimed by the relay, as it is published."""

    event_id: str
    key: str
    payload: dict[str, Any]
