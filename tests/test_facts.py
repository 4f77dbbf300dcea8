"""What the answers imply, derived once (hooks/bakery/facts.py) for templates, hooks and tests."""

import pytest

from hooks.bakery.facts import conditions, derive
from testkit.render import context_for
from testkit.template import choice_options, defaults, supported_combinations


def pairs() -> list[dict[str, str]]:
    """One combination per framework and database, with the other answers' defaults."""
    unique = {
        (a["framework"], a["database"]): a
        for a in supported_combinations()
        if all(a[name] == defaults()[name] for name in ("worker", "websockets", "inference"))
    }
    return list(unique.values())


def pair_id(answers: dict[str, str]) -> str:
    return f"{answers['framework']}-{answers['database']}"


# The one hand-written statement of these facts: every other place reads them from facts.py.
EXPECTED = {
    ("fastapi", "postgresql"): (
        ("DATABASE_URL",),
        5432,
        ("python", "-m", "orders_service.migrate"),
    ),
    ("fastapi", "mongodb"): (("MONGODB_URL",), 27017, ("python", "-m", "orders_service.migrate")),
    ("fastapi", "none"): ((), None, ()),
    ("django", "postgresql"): (
        ("DATABASE_URL", "SECRET_KEY"),
        5432,
        ("python", "manage.py", "migrate_locked"),
    ),
    ("django", "none"): (("SECRET_KEY",), None, ()),
}


@pytest.mark.parametrize("answers", pairs(), ids=pair_id)
def test_secrets_port_and_migration_command_follow_framework_and_database(
    answers: dict[str, str],
) -> None:
    facts = derive(context_for(answers))

    secrets, port, command = EXPECTED[answers["framework"], answers["database"]]
    assert (facts.secret_names, facts.database_port, facts.migrate_command) == (
        secrets,
        port,
        command,
    )
    assert facts.has_secrets == bool(secrets)
    assert facts.has_database == (port is not None)


def test_every_supported_pair_is_stated() -> None:
    assert {(a["framework"], a["database"]) for a in pairs()} == set(EXPECTED)


@pytest.mark.parametrize("answers", pairs(), ids=pair_id)
def test_condition_folders_can_name_every_answer_and_the_secrets_fact(
    answers: dict[str, str],
) -> None:
    context = context_for(answers)
    present = conditions(context)

    assert {name: present[name] for name in answers} == answers
    assert present["secrets"] == ("yes" if derive(context).has_secrets else "no")
    assert not any(name.startswith("_") for name in present)


BROKERS = [broker for broker in choice_options()["worker"] if broker != defaults()["worker"]]


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize("autoscaling", choice_options()["autoscaling"])
@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_a_worker_brings_its_command_and_the_broker_secrets(
    framework: str, autoscaling: str, broker: str
) -> None:
    answers = defaults() | {"framework": framework, "worker": broker, "autoscaling": autoscaling}
    facts = derive(context_for(answers))
    without = derive(context_for(answers | {"worker": defaults()["worker"]}))

    assert facts.worker is not None
    assert without.worker is None
    assert (
        facts.worker.command
        == {
            "fastapi": ("python", "-m", "orders_service.worker"),
            "django": ("python", "manage.py", "worker"),
        }[framework]
    )
    # KEDA counts a RabbitMQ queue's unacknowledged messages through the management API only.
    management = broker == "rabbitmq" and autoscaling == "keda"
    added = ("BROKER_URL", "RABBITMQ_MANAGEMENT_URL") if management else ("BROKER_URL",)
    assert facts.secret_names == (*without.secret_names, *added)
    assert facts.worker.termination_grace_period > facts.worker.graceful_timeout
    assert (facts.worker.consumer_group is not None) == (broker == "kafka")


WITH_CHANNELS = list(
    dict.fromkeys(
        (a["database"], a["worker"]) for a in supported_combinations() if a["websockets"] == "yes"
    )
)


@pytest.mark.parametrize(("database", "worker"), WITH_CHANNELS)
def test_channels_bring_the_redis_secret_for_the_web_pods_only(database: str, worker: str) -> None:
    answers = defaults() | {"database": database, "worker": worker, "websockets": "yes"}
    facts = derive(context_for(answers))
    without = derive(context_for(answers | {"websockets": defaults()["websockets"]}))

    assert facts.channels is not None
    assert without.channels is None
    assert facts.secret_names == (*without.secret_names, "REDIS_URL")
    assert "REDIS_URL" in facts.web_secret_names
    assert "REDIS_URL" not in facts.worker_secret_names
    assert facts.channels.dev_redis.port == facts.channels.redis_port


WITH_INFERENCE = list(
    dict.fromkeys(
        (a["framework"], a["database"], a["worker"], a["websockets"])
        for a in supported_combinations()
        if a["inference"] == "yes"
    )
)


@pytest.mark.parametrize(("framework", "database", "worker", "websockets"), WITH_INFERENCE)
def test_inference_brings_a_longer_start_up_and_a_queue_target_but_no_secret(
    framework: str, database: str, worker: str, websockets: str
) -> None:
    answers = defaults() | {
        "framework": framework,
        "database": database,
        "worker": worker,
        "websockets": websockets,
        "inference": "yes",
    }
    facts = derive(context_for(answers))
    without = derive(context_for(answers | {"inference": "no"}))

    assert facts.inference is not None
    assert without.inference is None
    assert facts.secret_names == without.secret_names
    # Each worker loads the model and runs a warm-up inference before it answers.
    assert facts.startup_seconds == facts.inference.startup_seconds > without.startup_seconds
    # KEDA adds pods while a pod's one worker still lets more wait: before 503s.
    assert 0 < facts.inference.queued_per_pod < facts.inference.queue_size
    assert facts.inference.concurrency >= 1
    assert facts.inference.max_batch_size >= 1


def test_inference_is_served_by_fastapi_alone() -> None:
    assert {framework for framework, *_ in WITH_INFERENCE} == {"fastapi"}
