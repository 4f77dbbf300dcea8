from django.db import models
{%- if cookiecutter.worker != "none" %}
from django.db.models.functions import Now
{%- endif %}


class Item(models.Model):
    name = models.CharField(max_length=200)
    description = models.CharField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
{%- if cookiecutter.worker != "none" %}


class OutboxEvent(models.Model):
    """An event written in the transaction that made it happen, until the worker publishes it.

    The API never talks to the broker: the worker's relay (worker/relay.py) claims these rows in
    id order, publishes them with the broker's confirmation and deletes them in one transaction.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    # The broker's routing key for the event: the item's id, so one item's events stay in order.
    key = models.TextField()
    payload = models.JSONField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.payload.get('type', 'event')} {self.event_id}"


class AuditEntry(models.Model):
    """The worker's effect of an item event, once per event: its id is the primary key."""

    event_id = models.UUIDField(primary_key=True)
    # Not a foreign key: the audit trail outlives the items it records.
    item_id = models.IntegerField()
    action = models.TextField()
    recorded_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["recorded_at", "event_id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.action} item {self.item_id}"
{%- endif %}
