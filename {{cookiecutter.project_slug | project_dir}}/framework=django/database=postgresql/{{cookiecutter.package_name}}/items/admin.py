from django.contrib import admin
{%- if cookiecutter.worker != "none" %}
from django.db.models import Model
from django.http import HttpRequest
{%- endif %}

{% if cookiecutter.worker != "none" -%}
from {{ cookiecutter.package_name }}.items.models import AuditEntry, Item, OutboxEvent
{%- else -%}
from {{ cookiecutter.package_name }}.items.models import Item
{%- endif %}


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created_at"]
    search_fields = ["name"]
{%- if cookiecutter.worker != "none" %}


class RecordAdmin(admin.ModelAdmin):
    """Rows the API and the worker write: shown, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(RecordAdmin):
    # Events committed but not yet published: a growing list means no worker is relaying.
    list_display = ["id", "event_id", "key", "created_at"]


@admin.register(AuditEntry)
class AuditEntryAdmin(RecordAdmin):
    list_display = ["event_id", "item_id", "action", "recorded_at"]
    search_fields = ["event_id"]
{%- endif %}
