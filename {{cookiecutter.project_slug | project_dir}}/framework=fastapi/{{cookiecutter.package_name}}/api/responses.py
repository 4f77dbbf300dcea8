"""The error answers the routes declare in the OpenAPI document, besides FastAPI's own 422.

Clients generate code from the document: every status the API can answer is in it.
"""

from typing import Any

from {{ cookiecutter.package_name }}.schemas import Error

Responses = dict[int | str, dict[str, Any]]

NOT_FOUND: Responses = {404: {"model": Error, "description": "No item with this id"}}
UNPARSEABLE_BODY: Responses = {400: {"model": Error, "description": "The body is not valid JSON"}}
{%- if cookiecutter.database == "none" %}
STORE_FULL: Responses = {
    507: {"model": Error, "description": "The store holds MAX_ITEMS items: no room for more"}
}
{%- else %}
UNAVAILABLE: Responses = {
    503: {
        "model": Error,
        "description": "The database is unavailable; try again after Retry-After seconds",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
    }
}
{%- endif %}
