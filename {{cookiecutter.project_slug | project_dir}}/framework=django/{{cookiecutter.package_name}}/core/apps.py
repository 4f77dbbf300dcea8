from django.apps import AppConfig

from {{ cookiecutter.package_name }}.logging_config import configure_structlog


class CoreConfig(AppConfig):
    """What every deployment needs: probes, draining, structured logs."""

    name = "{{ cookiecutter.package_name }}.core"

    def ready(self) -> None:
        configure_structlog()
