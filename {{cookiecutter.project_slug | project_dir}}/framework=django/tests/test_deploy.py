"""The production configuration passes Django's deployment checklist."""

import secrets

import pytest

from tests.support import app_env, run_manage


def production_env(**overrides: str) -> dict[str, str]:
    return app_env(
{%- if cookiecutter.database == "postgresql" %}
        "postgresql://app@db.example.com:5432/app",
{%- endif %}
        ENVIRONMENT="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="orders.example.com",
        **overrides,
    )


def test_production_settings_pass_check_deploy() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stdout + result.stderr


{% if cookiecutter.database == "postgresql" -%}
@pytest.mark.parametrize("variable", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"])
{%- else -%}
@pytest.mark.parametrize("variable", ["SECRET_KEY", "ALLOWED_HOSTS"])
{%- endif %}
def test_production_refuses_to_start_without_a_required_variable(variable: str) -> None:
    env = production_env()
    del env[variable]

    result = run_manage("check", env=env)

    assert result.returncode == 1
    assert f"Set the {variable} environment variable" in result.stderr
