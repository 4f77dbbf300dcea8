from django.apps import AppConfig


class ItemsConfig(AppConfig):
    """The example resource; replace it with your own apps."""

    name = "{{ cookiecutter.package_name }}.items"
