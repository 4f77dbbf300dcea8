"""What the answers imply, derived once (hooks/bakery/facts.py) for templates, hooks and tests."""

import pytest

from hooks.bakery.facts import conditions, derive
from testkit.render import context_for
from testkit.template import supported_combinations


def pairs() -> list[dict[str, str]]:
    unique = {(a["framework"], a["database"]): a for a in supported_combinations()}
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
