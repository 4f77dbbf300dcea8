"""URL configuration; /health and /ready are answered before it, by core.middleware."""

{% if cookiecutter.database == "postgresql" -%}
from django.contrib import admin
{% endif -%}
from django.urls import include, path

urlpatterns = [
{%- if cookiecutter.database == "postgresql" %}
    path("admin/", admin.site.urls),
{%- endif %}
    path("", include("{{ cookiecutter.package_name }}.items.urls")),
]

# Errors are JSON, like the API's own answers.
handler400 = "{{ cookiecutter.package_name }}.core.views.bad_request"
handler404 = "{{ cookiecutter.package_name }}.core.views.not_found"
handler500 = "{{ cookiecutter.package_name }}.core.views.server_error"
