"""URL configuration; /health and /ready are answered before it, by core.middleware."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("{{ cookiecutter.package_name }}.items.urls")),
]

# Errors are JSON, like the API's own answers.
handler400 = "{{ cookiecutter.package_name }}.core.views.bad_request"
handler404 = "{{ cookiecutter.package_name }}.core.views.not_found"
handler500 = "{{ cookiecutter.package_name }}.core.views.server_error"
