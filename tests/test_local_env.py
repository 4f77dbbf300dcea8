"""The per-project development `.env` that the post-generation hook writes."""

from pathlib import Path

import pytest

from hooks.bakery.local_env import local_secrets, write_local_env
from testkit.template import choice_options, defaults


def test_each_django_project_gets_its_own_strong_secret_key() -> None:
    keys = {local_secrets({"framework": "django"})["SECRET_KEY"] for _ in range(20)}

    assert len(keys) == 20
    # Django's deployment check wants 50 characters and at least 5 distinct ones.
    assert all(len(key) >= 50 and len(set(key)) >= 5 for key in keys)
    assert not any(key.startswith("django-insecure-") for key in keys)


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_written_env_file_holds_exactly_the_frameworks_secrets(
    framework: str, tmp_path: Path
) -> None:
    write_local_env(tmp_path, {**defaults(), "framework": framework})

    env_file = tmp_path / ".env"
    if framework == "django":
        lines = [line for line in env_file.read_text().splitlines() if not line.startswith("#")]
        assert [line.partition("=")[0] for line in lines] == ["SECRET_KEY"]
    else:
        assert not env_file.exists()
