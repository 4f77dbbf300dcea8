{%- if cookiecutter.worker != "none" -%}
import uuid
{% endif -%}
from datetime import datetime
{%- if cookiecutter.worker != "none" %}
from typing import Any
{%- endif %}

{% if cookiecutter.worker != "none" -%}
from sqlalchemy import BigInteger, DateTime, Identity, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
{%- else -%}
from sqlalchemy import DateTime, String, func
{%- endif %}
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.core.db import Base


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
{%- if cookiecutter.worker != "none" %}


class Outbox(Base):
    """Events committed with the change they describe; the worker's relay publishes them."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    # What the broker orders by: one item's events stay in sequence.
    key: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditEntry(Base):
    """The worker's effect, one per event: the event id as key makes a redelivery a no-op."""

    __tablename__ = "audit_entries"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    item_id: Mapped[int]
    action: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
{%- endif %}
