"""Validation of the API's input, with Django's own forms."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
{%- if cookiecutter.database == "postgresql" %}

from {{ cookiecutter.package_name }}.items.models import Item

# PostgreSQL's OFFSET is a bigint: larger values are a 400, not a database error.
MAX_OFFSET = 2**63 - 1
{%- endif %}


{% if cookiecutter.database == "postgresql" -%}
class ItemForm(forms.ModelForm):
    class Meta:
        model = Item
        fields = ["name", "description"]
{%- else -%}
class ItemForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(max_length=2000, required=False)
{%- endif %}

    def clean(self) -> dict[str, Any]:
        # A misspelt field would otherwise be ignored without a word.
        unknown = sorted(set(self.data) - set(self.fields))
        if unknown:
            fields = ", ".join(unknown)
            raise ValidationError("Unknown fields: %(fields)s", params={"fields": fields})
        # Form fields turn any JSON value into text ({} into ""): text must arrive as text.
        not_text = sorted(
            name
            for name, value in self.data.items()
            if value is not None and not isinstance(value, str)
        )
        if not_text:
            fields = ", ".join(not_text)
            raise ValidationError("Must be strings: %(fields)s", params={"fields": fields})
        return super().clean() or {}


class PageForm(forms.Form):
    limit = forms.IntegerField(min_value=1, max_value=100, required=False)
{%- if cookiecutter.database == "postgresql" %}
    offset = forms.IntegerField(min_value=0, max_value=MAX_OFFSET, required=False)
{%- else %}
    offset = forms.IntegerField(min_value=0, required=False)
{%- endif %}

    def clean_limit(self) -> int:
        return self.cleaned_data["limit"] or 20

    def clean_offset(self) -> int:
        return self.cleaned_data["offset"] or 0
