"""The example resource as a small JSON API, in plain Django."""

import json
from typing import Any

{% if cookiecutter.worker != "none" -%}
from django.db import transaction
{% endif -%}
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from {{ cookiecutter.package_name }}.items.forms import ItemForm, PageForm
{%- if cookiecutter.worker != "none" %}
from {{ cookiecutter.package_name }}.items.models import Item, OutboxEvent
from {{ cookiecutter.package_name }}.worker.events import ItemCreated
{%- elif cookiecutter.database == "postgresql" %}
from {{ cookiecutter.package_name }}.items.models import Item
{%- else %}
from {{ cookiecutter.package_name }}.items.store import Item, StoreFullError, items
{%- endif %}


def item_json(item: Item) -> dict[str, Any]:
    return {
{%- if cookiecutter.database == "postgresql" %}
        "id": item.pk,
{%- else %}
        "id": item.id,
{%- endif %}
        "name": item.name,
        "description": item.description,
        "created_at": item.created_at,
    }


def invalid(errors: ErrorDict | dict[str, Any]) -> JsonResponse:
    if isinstance(errors, ErrorDict):
        errors = errors.get_json_data()
    return JsonResponse({"detail": "Invalid request", "errors": errors}, status=400)


# CSRF protection is for browsers that send cookies; this API reads none. Add authentication
# (a token header, or a proxy that checks one) before exposing it.
@method_decorator(csrf_exempt, name="dispatch")
class ApiView(View):
    """HEAD is answered like GET, OPTIONS with the allowed methods, any other method with 405."""

    def allow_header(self) -> str:
        return ", ".join(sorted(m.upper() for m in self.http_method_names if hasattr(self, m)))

    def http_method_not_allowed(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> JsonResponse:
        response = JsonResponse({"detail": "Method not allowed"}, status=405)
        response["Allow"] = self.allow_header()
        return response

    def options(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = HttpResponse(status=204)
        # Nothing follows, so no Content-Type either.
        del response["Content-Type"]
        response["Allow"] = self.allow_header()
        return response


class ItemCollectionView(ApiView):
    def get(self, request: HttpRequest) -> JsonResponse:
        page = PageForm(request.GET)
        if not page.is_valid():
            return invalid(page.errors)
        limit, offset = page.cleaned_data["limit"], page.cleaned_data["offset"]
{%- if cookiecutter.database == "postgresql" %}
        items = Item.objects.all()[offset : offset + limit]
{%- else %}
        found, total = items.page(limit, offset)
{%- endif %}
        return JsonResponse(
            {
{%- if cookiecutter.database == "postgresql" %}
                "items": [item_json(item) for item in items],
                "total": Item.objects.count(),
{%- else %}
                "items": [item_json(item) for item in found],
                "total": total,
{%- endif %}
                "limit": limit,
                "offset": offset,
            }
        )

    def post(self, request: HttpRequest) -> JsonResponse:
        try:
            payload = json.loads(request.body)
        except ValueError:
            return invalid({"body": [{"message": "Must be JSON.", "code": "invalid"}]})
        if not isinstance(payload, dict):
            return invalid({"body": [{"message": "Must be a JSON object.", "code": "invalid"}]})
        form = ItemForm(payload)
        if not form.is_valid():
            return invalid(form.errors)
{%- if cookiecutter.worker != "none" %}
        # The event is committed with the item and published later by the worker's outbox
        # relay: the request never waits for the broker, and an event it acknowledged survives
        # a broker outage.
        with transaction.atomic():
            item = form.save()
            OutboxEvent.objects.create(**ItemCreated.for_item(item.pk, item.name).outbox_row())
        return JsonResponse(item_json(item), status=201)
{%- elif cookiecutter.database == "postgresql" %}
        return JsonResponse(item_json(form.save()), status=201)
{%- else %}
        try:
            item = items.add(form.cleaned_data["name"], form.cleaned_data["description"])
        except StoreFullError:
            return JsonResponse({"detail": "Item store full"}, status=507)
        return JsonResponse(item_json(item), status=201)
{%- endif %}


class ItemDetailView(ApiView):
    def get(self, request: HttpRequest, item_id: int) -> JsonResponse:
{%- if cookiecutter.database == "postgresql" %}
        try:
            item = Item.objects.get(pk=item_id)
        except Item.DoesNotExist:
{%- else %}
        item = items.get(item_id)
        if item is None:
{%- endif %}
            return JsonResponse({"detail": "Item not found"}, status=404)
        return JsonResponse(item_json(item))
