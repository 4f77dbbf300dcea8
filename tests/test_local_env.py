"""The per-project development `.env` that the post-generation hook writes."""

from pathlib import Path

import pytest

from hooks.bakery.facts import derive
from hooks.bakery.local_env import local_secrets, write_local_env
from testkit.render import context_for
from testkit.template import choice_options, supported_combinations


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
    write_local_env(tmp_path, context_for({"framework": framework}))

    env_file = tmp_path / ".env"
    if framework == "django":
        lines = [line for line in env_file.read_text().splitlines() if not line.startswith("#")]
        assert [line.partition("=")[0] for line in lines] == ["ENVIRONMENT", "SECRET_KEY"]
        assert "ENVIRONMENT=development" in lines
    else:
        assert not env_file.exists()


def dev_secrets(project: Path) -> dict[str, str]:
    """NAME -> value of the dev overlay's generated secrets.env."""
    text = (project / "k8s" / "overlays" / "dev" / "secrets.env").read_text()
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


DATABASE_PAIRS = list(
    dict.fromkeys((c["framework"], c["database"]) for c in supported_combinations())
)


@pytest.mark.parametrize(("framework", "database"), DATABASE_PAIRS)
def test_dev_overlay_gets_its_own_development_secrets_at_bake_time(
    framework: str, database: str, tmp_path: Path
) -> None:
    answers = context_for({"framework": framework, "database": database})
    facts = derive(answers)
    first, second = tmp_path / "first", tmp_path / "second"
    for project in (first, second):
        project.mkdir()
        write_local_env(project, answers)
    if not facts.has_secrets:
        assert not (first / "k8s").exists()
        return
    values, again = dev_secrets(first), dev_secrets(second)
    expected = set(facts.secret_names) | ({"DATABASE_PASSWORD"} if facts.has_database else set())
    assert set(values) == expected
    assert not [name for name, value in values.items() if "change-me" in value]
    # Each project gets its own: nothing is shared between two bakes.
    assert not [name for name in values if values[name] == again[name]]
    if facts.has_database:
        url_variable = {"postgresql": "DATABASE_URL", "mongodb": "MONGODB_URL"}[database]
        assert f":{values['DATABASE_PASSWORD']}@" in values[url_variable]
    if framework == "django":
        assert values["SECRET_KEY"] != (first / ".env").read_text().split("SECRET_KEY=")[1].strip()


# Each framework, broker and autoscaler (RABBITMQ_MANAGEMENT_URL comes with KEDA), once.
WORKER_ANSWERS = [
    dict(zip(("framework", "worker", "autoscaling"), choices, strict=True))
    for choices in dict.fromkeys(
        (c["framework"], c["worker"], c["autoscaling"])
        for c in supported_combinations()
        if c["worker"] != "none"
    )
]


@pytest.mark.parametrize("choices", WORKER_ANSWERS, ids=lambda choices: "-".join(choices.values()))
def test_dev_overlay_secrets_reach_the_overlays_own_broker(
    choices: dict[str, str], tmp_path: Path
) -> None:
    answers = context_for({"database": "postgresql", **choices})
    facts = derive(answers)
    broker = facts.worker.dev_broker
    write_local_env(tmp_path, answers)
    values = dev_secrets(tmp_path)
    # Exactly the Secret's variables and the passwords of the overlay's own servers.
    passwords = {"DATABASE_PASSWORD"} | ({broker.password_key} if broker.password_key else set())
    assert set(values) == set(facts.secret_names) | passwords
    assert not [name for name, value in values.items() if "change-me" in value]
    assert values["BROKER_URL"] == broker.url(values.get(broker.password_key or "", ""))
    if broker.password_key:
        assert f":{values[broker.password_key]}@" in values["BROKER_URL"]
    if "RABBITMQ_MANAGEMENT_URL" in facts.secret_names:
        assert values["RABBITMQ_MANAGEMENT_URL"] == broker.management_url(
            values[broker.password_key]
        )
    # The .env of a checkout needs nothing for the worker: its defaults reach a local broker.
    env_file = tmp_path / ".env"
    assert not env_file.exists() or "BROKER_URL" not in env_file.read_text()


@pytest.mark.parametrize("database", choice_options()["database"])
def test_dev_overlay_secrets_reach_the_overlays_own_redis(database: str, tmp_path: Path) -> None:
    answers = context_for({"framework": "fastapi", "database": database, "websockets": "yes"})
    redis = derive(answers).channels.dev_redis
    write_local_env(tmp_path, answers)
    values = dev_secrets(tmp_path)

    assert values["REDIS_URL"] == redis.url(values[redis.password_key])
    assert len(values[redis.password_key]) >= 32
    # A checkout's own Redis needs nothing in .env: the default URL reaches the local server.
    env_file = tmp_path / ".env"
    assert not env_file.exists() or "REDIS_URL" not in env_file.read_text()
